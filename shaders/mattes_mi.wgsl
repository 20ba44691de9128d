// Mattes mutual information on the GPU: for every fixed sample, map it into the moving image,
// interpolate value and gradient (exact derivative of the trilinear interpolant), and add its
// cubic B-spline Parzen weights and their parameter derivatives to the joint histogram.
// f32 sums use compare-exchange loops on u32 storage (WGSL has no float atomics).

struct Params {
    vox: array<vec4<f32>, 3>,     // fixed world -> moving voxel index (rows of a 3x4 affine)
    minv: array<vec4<f32>, 3>,    // moving voxel_from_world linear part (rows), for dm/dw
    dr: array<vec4<f32>, 9>,      // rigid: dR/dangle_k, 3 matrices of 3 rows
    center: vec4<f32>,            // transform centre
    dims: vec4<u32>,              // moving nx, ny, nz; number of samples
    misc: vec4<f32>,              // m_min, m_scale, highest continuous bin (bins - 3)
    cfg: vec4<u32>,               // bins, number of parameters, kind (0 rigid, 1 affine)
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> samples: array<vec4<f32>>;   // x, y, z, fixed bin
@group(0) @binding(2) var<storage, read> moving: array<f32>;
@group(0) @binding(3) var<storage, read_write> hist: array<atomic<u32>>;
@group(0) @binding(4) var<storage, read_write> dhist: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> counter: array<atomic<u32>>;

fn add_hist(i: u32, v: f32) {
    var old = atomicLoad(&hist[i]);
    loop {
        let r = atomicCompareExchangeWeak(&hist[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (r.exchanged) { break; }
        old = r.old_value;
    }
}

fn add_dhist(i: u32, v: f32) {
    var old = atomicLoad(&dhist[i]);
    loop {
        let r = atomicCompareExchangeWeak(&dhist[i], old, bitcast<u32>(bitcast<f32>(old) + v));
        if (r.exchanged) { break; }
        old = r.old_value;
    }
}

fn bspline3(u: f32) -> f32 {
    let a = abs(u);
    if (a < 1.0) { return (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0; }
    if (a < 2.0) { let t = 2.0 - a; return t * t * t / 6.0; }
    return 0.0;
}

fn bspline3_deriv(u: f32) -> f32 {
    let a = abs(u);
    if (a < 1.0) { return -2.0 * u + 1.5 * u * a; }
    if (a < 2.0) { let t = 2.0 - a; return -0.5 * t * t * sign(u); }
    return 0.0;
}

fn at(x: u32, y: u32, z: u32) -> f32 {
    return moving[x + P.dims.x * (y + P.dims.y * z)];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = gid.x + gid.y * 65535u * 64u;
    if (s >= P.dims.w) { return; }
    let smp = samples[s];
    let x = vec4<f32>(smp.xyz, 1.0);
    let p = vec3<f32>(dot(P.vox[0], x), dot(P.vox[1], x), dot(P.vox[2], x));
    let d = vec3<f32>(P.dims.xyz);
    if (any(p < vec3<f32>(0.0)) || any(p > d - vec3<f32>(1.0))) { return; }
    let fl = min(floor(p), max(d - vec3<f32>(2.0), vec3<f32>(0.0)));
    let f = p - fl;
    let i0 = vec3<u32>(fl);
    let i1 = min(i0 + vec3<u32>(1u), P.dims.xyz - vec3<u32>(1u));
    let c000 = at(i0.x, i0.y, i0.z);
    let c100 = at(i1.x, i0.y, i0.z);
    let c010 = at(i0.x, i1.y, i0.z);
    let c110 = at(i1.x, i1.y, i0.z);
    let c001 = at(i0.x, i0.y, i1.z);
    let c101 = at(i1.x, i0.y, i1.z);
    let c011 = at(i0.x, i1.y, i1.z);
    let c111 = at(i1.x, i1.y, i1.z);
    let x00 = c000 + (c100 - c000) * f.x;
    let x10 = c010 + (c110 - c010) * f.x;
    let x01 = c001 + (c101 - c001) * f.x;
    let x11 = c011 + (c111 - c011) * f.x;
    let y0 = x00 + (x10 - x00) * f.y;
    let y1 = x01 + (x11 - x01) * f.y;
    let m = y0 + (y1 - y0) * f.z;
    let gp = vec3<f32>(
        ((c100 - c000) * (1.0 - f.y) + (c110 - c010) * f.y) * (1.0 - f.z) + ((c101 - c001) * (1.0 - f.y) + (c111 - c011) * f.y) * f.z,
        (x10 - x00) * (1.0 - f.z) + (x11 - x01) * f.z,
        y1 - y0);
    // dm/dw = minv^T dm/dp
    let gm = vec3<f32>(
        P.minv[0].x * gp.x + P.minv[1].x * gp.y + P.minv[2].x * gp.z,
        P.minv[0].y * gp.x + P.minv[1].y * gp.y + P.minv[2].y * gp.z,
        P.minv[0].z * gp.x + P.minv[1].z * gp.y + P.minv[2].z * gp.z);
    atomicAdd(&counter[0], 1u);
    let bins = P.cfg.x;
    let n = P.cfg.y;
    let raw = 2.0 + (m - P.misc.x) * P.misc.y;
    let hi = P.misc.z;
    let kc = clamp(raw, 2.0, hi);
    var dk_dm = 0.0;
    if (raw > 2.0 && raw < hi) { dk_dm = P.misc.y; }
    // dm/dp for every parameter.
    var dmdp: array<f32, 12>;
    let dd = smp.xyz - P.center.xyz;
    if (P.cfg.z == 0u) {
        for (var k = 0u; k < 3u; k++) {
            let j = vec3<f32>(dot(P.dr[3u * k].xyz, dd), dot(P.dr[3u * k + 1u].xyz, dd), dot(P.dr[3u * k + 2u].xyz, dd));
            dmdp[k] = dot(gm, j);
        }
        dmdp[3] = gm.x; dmdp[4] = gm.y; dmdp[5] = gm.z;
    } else {
        for (var i = 0u; i < 3u; i++) {
            for (var j = 0u; j < 3u; j++) {
                dmdp[3u * i + j] = gm[i] * dd[j];
            }
        }
        dmdp[9] = gm.x; dmdp[10] = gm.y; dmdp[11] = gm.z;
    }
    let row = u32(smp.w) * bins;
    let k0 = u32(floor(kc));
    for (var k = k0 - 1u; k <= min(k0 + 2u, bins - 1u); k++) {
        let u = f32(k) - kc;
        add_hist(row + k, bspline3(u));
        let dw = -bspline3_deriv(u) * dk_dm;
        if (dw != 0.0) {
            let base = (row + k) * n;
            for (var q = 0u; q < n; q++) {
                add_dhist(base + q, dw * dmdp[q]);
            }
        }
    }
}
