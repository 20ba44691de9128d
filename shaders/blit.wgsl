// The second pass of a cached slice view (src/app/viewer/render_cache.rs): the slice was drawn
// once per voxel into a small texture; here each screen pixel fetches its voxel's colour.
// Nearest-voxel, so identical to drawing the slice shader at every pixel, at a fraction of
// the cost on a software rasteriser.

struct Blit {
    // Texture uv = map.xz + map.yw * screen uv (per axis: offset, scale).
    map: vec4<f32>,
    // Texture size in texels (x, y).
    size: vec4<f32>,
};

@group(0) @binding(0) var<uniform> b: Blit;
@group(0) @binding(1) var img: texture_2d<f32>;

struct VsOut {
    @builtin(position) pos: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    let x = f32(i & 1u);
    let y = f32((i >> 1u) & 1u);
    var out: VsOut;
    out.pos = vec4<f32>(x * 2.0 - 1.0, 1.0 - y * 2.0, 0.0, 1.0);
    out.uv = vec2<f32>(x, y);
    return out;
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let t = vec2<f32>(b.map.x + b.map.y * in.uv.x, b.map.z + b.map.w * in.uv.y);
    let texel = floor(t * b.size.xy);
    if (any(texel < vec2<f32>(0.0)) || any(texel >= b.size.xy)) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    return vec4<f32>(textureLoad(img, vec2<i32>(texel), 0).rgb, 1.0);
}
