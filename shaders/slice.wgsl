// Slice display: a plane through up to two 3D volumes, window/level, colormap, and
// combination (single layer, checkerboard, or blend). One draw per view, covering the
// callback's viewport; volumes live in 3D textures uploaded once.

struct Layer {
    // Continuous voxel index at uv = (0, 0), and its change per unit of u and v.
    origin: vec4<f32>,
    du: vec4<f32>,
    dv: vec4<f32>,
    // Grid size (x, y, z) and enabled flag in w.
    dims: vec4<f32>,
    // Window low, window width, dequantisation scale and offset (value = q * scale + offset).
    window: vec4<f32>,
    // Colormap row, invert (MONOCHROME1), opacity, unused.
    cmap: vec4<f32>,
};

struct Uniforms {
    layers: array<Layer, 2>,
    // Mode (0 = layer 0 only, 1 = checkerboard, 2 = blend), checker tile (mm), blend weight, unused.
    mode: vec4<f32>,
    // In-plane mm at uv = (0, 0) and the extent in mm of the whole rect (u, v).
    plane: vec4<f32>,
};

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var vol0: texture_3d<u32>;
@group(0) @binding(2) var vol1: texture_3d<u32>;
@group(0) @binding(3) var cmaps: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    // Triangle strip over the viewport egui sets to the callback rect.
    let x = f32(i & 1u);
    let y = f32((i >> 1u) & 1u);
    var out: VsOut;
    out.pos = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

fn windowed(l: Layer, q: u32) -> f32 {
    let v = f32(q) * l.window.z + l.window.w;
    var t = clamp((v - l.window.x) / max(l.window.y, 1e-6), 0.0, 1.0);
    if (l.cmap.y > 0.5) {
        t = 1.0 - t;
    }
    return t;
}

fn colormap(t: f32, row: f32) -> vec3<f32> {
    let idx = i32(round(clamp(t, 0.0, 1.0) * 255.0));
    return textureLoad(cmaps, vec2<i32>(idx, i32(row)), 0).rgb;
}

fn shade(l: Layer, q: u32) -> vec3<f32> {
    return colormap(windowed(l, q), l.cmap.x);
}

// Windowed value of a layer at uv, and whether uv falls inside it (w).
fn value0(uv: vec2<f32>) -> vec2<f32> {
    let v = voxel(u.layers[0], uv);
    if (v.w == 0) {
        return vec2<f32>(0.0, 0.0);
    }
    return vec2<f32>(windowed(u.layers[0], textureLoad(vol0, v.xyz, 0).r), 1.0);
}

// Raw value (image units) of a layer at uv, and whether uv falls inside it (y).
fn raw0(uv: vec2<f32>) -> vec2<f32> {
    let v = voxel(u.layers[0], uv);
    if (v.w == 0) { return vec2<f32>(0.0, 0.0); }
    let q = textureLoad(vol0, v.xyz, 0).r;
    return vec2<f32>(f32(q) * u.layers[0].window.z + u.layers[0].window.w, 1.0);
}

fn raw1(uv: vec2<f32>) -> vec2<f32> {
    let v = voxel(u.layers[1], uv);
    if (v.w == 0) { return vec2<f32>(0.0, 0.0); }
    let q = textureLoad(vol1, v.xyz, 0).r;
    return vec2<f32>(f32(q) * u.layers[1].window.z + u.layers[1].window.w, 1.0);
}

fn value1(uv: vec2<f32>) -> vec2<f32> {
    let v = voxel(u.layers[1], uv);
    if (v.w == 0) {
        return vec2<f32>(0.0, 0.0);
    }
    return vec2<f32>(windowed(u.layers[1], textureLoad(vol1, v.xyz, 0).r), 1.0);
}

fn voxel(l: Layer, uv: vec2<f32>) -> vec4<i32> {
    let p = l.origin.xyz + uv.x * l.du.xyz + uv.y * l.dv.xyz;
    let idx = floor(p + vec3<f32>(0.5));
    let inside = all(idx >= vec3<f32>(0.0)) && all(idx < l.dims.xyz) && l.dims.w > 0.5;
    return vec4<i32>(vec3<i32>(idx), select(0, 1, inside));
}

fn sample0(uv: vec2<f32>) -> vec4<f32> {
    let v = voxel(u.layers[0], uv);
    if (v.w == 0) {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let q = textureLoad(vol0, v.xyz, 0).r;
    return vec4<f32>(shade(u.layers[0], q), 1.0);
}

fn sample1(uv: vec2<f32>) -> vec4<f32> {
    let v = voxel(u.layers[1], uv);
    if (v.w == 0) {
        return vec4<f32>(0.0, 0.0, 0.0, 0.0);
    }
    let q = textureLoad(vol1, v.xyz, 0).r;
    return vec4<f32>(shade(u.layers[1], q), 1.0);
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let a = sample0(in.uv);
    var c = a;
    let mode = i32(u.mode.x);
    if (mode == 1) {
        let mm = u.plane.xy + in.uv * u.plane.zw;
        let tile = floor(mm / max(u.mode.y, 0.1));
        let odd = (i32(tile.x) + i32(tile.y)) & 1;
        if (odd == 1) {
            c = sample1(in.uv);
        }
    } else if (mode == 2) {
        let b = sample1(in.uv);
        c = mix(a, b, u.mode.z * b.a);
    } else if (mode == 3) {
        let x = value0(in.uv);
        let y = value1(in.uv);
        // Inside both images and not background in both (air stays black, as in the panes).
        if (x.y > 0.5 && y.y > 0.5 && max(x.x, y.x) > 0.02) {
            c = vec4<f32>(colormap(0.5 + 0.5 * (x.x - y.x), u.mode.w), 1.0);
        } else {
            c = vec4<f32>(0.0, 0.0, 0.0, 0.0);
        }
    } else if (mode == 4 || mode == 5) {
        // Layer 1 minus layer 0 in image units (synthetic minus reference): signed on a diverging
        // map centred on zero (mode 4) or absolute error (mode 5), over +-range (mode.y);
        // voxels where both are below the background threshold (mode.z) stay black.
        let x = raw0(in.uv);
        let y = raw1(in.uv);
        if (x.y > 0.5 && y.y > 0.5 && max(x.x, y.x) > u.mode.z) {
            let d = (y.x - x.x) / max(u.mode.y, 1e-6);
            var t = 0.5 + 0.5 * d;
            if (mode == 5) { t = abs(d); }
            c = vec4<f32>(colormap(t, u.mode.w), 1.0);
        } else {
            c = vec4<f32>(0.0, 0.0, 0.0, 0.0);
        }
    }
    // Opaque black background outside the volumes, as viewers show it.
    return vec4<f32>(c.rgb * c.a, 1.0);
}
