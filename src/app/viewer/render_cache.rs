//! Slice views drawn once per voxel, then shown by one texel fetch per screen pixel.
//!
//! The slice shader's per-pixel work (3D texture fetches, windowing, a colormap fetch, the
//! combination of two layers) is most of a frame on a software rasteriser: on this 2-core
//! machine with Mesa lavapipe at 1440 x 720, a frame without the slice draws took 25 ms
//! against 195 ms with them (same run, same load). When a view's plane is a plane of its first
//! layer's voxel grid and the view shows clearly fewer voxels than it has pixels, the slice is
//! drawn into a small texture with one texel per voxel of that layer (the second layer, e.g.
//! the registered MR, sampled at those voxel centres), and the pane's pixels fetch from it
//! (`shaders/blit.wgsl`). For the first layer the picture is the same nearest-voxel picture,
//! pixel for pixel. The small pass is skipped when nothing it draws changed (a repaint, a pan
//! within a voxel), so an idle or hovering window costs only the fetch.

use super::render::Uniforms;
use eframe::egui_wgpu::wgpu;

/// The WGSL source of the fetch pass.
pub const BLIT_WGSL: &str = include_str!("../../../shaders/blit.wgsl");

/// The cached slice's texel format: the slice shader's 8-bit colours, stored as they are.
const CACHE_FORMAT: wgpu::TextureFormat = wgpu::TextureFormat::Rgba8Unorm;

/// The largest side of a cached slice (a 2048-voxel series still fits).
const MAX_SIDE: f32 = 4096.0;

/// Cache only when the voxels shown are at most this fraction of the pane's pixels (else the
/// small pass costs about as much as drawing the pane directly).
const MAX_FILL: f32 = 0.5;

/// A view's voxel grid: the cached texture's size, and how screen uv maps into it
/// (`t = offset + scale * uv` per axis: `[offset_u, scale_u, offset_v, scale_v]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// Texels across and down.
    pub size: [u32; 2],
    /// Screen uv to texture uv.
    pub map: [f32; 4],
}

/// The axis of the voxel grid a plane direction runs along, when it runs along one.
fn axis_of(d: [f32; 4]) -> Option<usize> {
    let a = (0..3).max_by(|&i, &j| d[i].abs().total_cmp(&d[j].abs()))?;
    let m = d[a].abs();
    let others = (0..3).filter(|&i| i != a).map(|i| d[i].abs());
    (m.is_finite() && m > 1e-6 && others.into_iter().all(|o| o <= m * 1e-5)).then_some(a)
}

/// The voxel grid of a view whose first layer maps uv (0..1, 0..1) to voxel indices
/// `origin + u * du + v * dv`, drawn on `pixels` physical pixels; None when the plane is
/// oblique to that layer's grid, the view shows too many voxels for a cache to pay, or a
/// second layer (its `du`, `dv`) is finer in the plane than the first (it would lose detail).
pub fn grid(
    origin: [f32; 4],
    du: [f32; 4],
    dv: [f32; 4],
    second: Option<([f32; 4], [f32; 4])>,
    pixels: [f32; 2],
) -> Option<Grid> {
    let len = |d: [f32; 4]| (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
    if let Some((du1, dv1)) = second
        && (len(du1) > len(du) * 1.01 || len(dv1) > len(dv) * 1.01)
    {
        return None;
    }
    let a = axis_of(du)?;
    let b = axis_of(dv)?;
    if a == b {
        return None;
    }
    // Along one axis: voxels k0..=k1 cover the view (voxel k spans k - 0.5 .. k + 0.5).
    let along = |o: f32, d: f32| -> Option<(u32, f32, f32)> {
        let k0 = (o.min(o + d) + 0.5).floor();
        let k1 = (o.max(o + d) + 0.5).floor();
        let n = k1 - k0 + 1.0;
        (n.is_finite() && (1.0..=MAX_SIDE).contains(&n)).then_some((
            n as u32,
            (o - k0 + 0.5) / n,
            d / n,
        ))
    };
    let (nu, cu, su) = along(origin[a], du[a])?;
    let (nv, cv, sv) = along(origin[b], dv[b])?;
    let fill = (nu as f32 * nv as f32) / (pixels[0] * pixels[1]).max(1.0);
    (fill <= MAX_FILL).then_some(Grid {
        size: [nu, nv],
        map: [cu, su, cv, sv],
    })
}

/// The uniforms that draw the view's slice into its grid: every layer's mapping (and the
/// world-fixed checkerboard's plane) re-expressed in the grid's uv.
pub(super) fn grid_uniforms(u: &Uniforms, g: &Grid) -> Uniforms {
    let [cu, su, cv, sv] = g.map;
    // Screen uv of texture uv t: (t - offset) / scale.
    let (ou, ov) = (-cu / su, -cv / sv);
    let mut out = *u;
    for l in &mut out.layers {
        for k in 0..3 {
            l.origin[k] += ou * l.du[k] + ov * l.dv[k];
            l.du[k] /= su;
            l.dv[k] /= sv;
        }
    }
    out.plane[0] += ou * u.plane[2];
    out.plane[1] += ov * u.plane[3];
    out.plane[2] /= su;
    out.plane[3] /= sv;
    out
}

/// The two pipelines of a cached view.
pub struct Pipelines {
    /// The slice shader into a cache texture.
    slice: wgpu::RenderPipeline,
    /// The fetch pass into the window.
    blit: wgpu::RenderPipeline,
    blit_layout: wgpu::BindGroupLayout,
}

impl Pipelines {
    /// Pipelines for the slice shader `slice` (laid out by `slice_layout`) and the fetch pass
    /// into `target` render targets.
    pub fn new(
        device: &wgpu::Device,
        slice: &wgpu::ShaderModule,
        slice_layout: &wgpu::PipelineLayout,
        target: wgpu::TextureFormat,
    ) -> Self {
        let blit_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("slice blit"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Float { filterable: false },
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
            ],
        });
        let blit_shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blit.wgsl"),
            source: wgpu::ShaderSource::Wgsl(BLIT_WGSL.into()),
        });
        let blit_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("slice blit"),
            bind_group_layouts: &[Some(&blit_layout)],
            immediate_size: 0,
        });
        let pipeline = |label, module, layout, format| {
            fullscreen_pipeline(device, label, module, layout, format)
        };
        Self {
            slice: pipeline("slice cache", slice, slice_layout, CACHE_FORMAT),
            blit: pipeline("slice blit", &blit_shader, &blit_pipeline_layout, target),
            blit_layout,
        }
    }
}

/// A pipeline that draws `module`'s `vs_main` / `fs_main` over the whole viewport (a
/// four-vertex strip, no blending) into `format` targets.
pub fn fullscreen_pipeline(
    device: &wgpu::Device,
    label: &str,
    module: &wgpu::ShaderModule,
    layout: &wgpu::PipelineLayout,
    format: wgpu::TextureFormat,
) -> wgpu::RenderPipeline {
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some(label),
        layout: Some(layout),
        vertex: wgpu::VertexState {
            module,
            entry_point: Some("vs_main"),
            buffers: &[],
            compilation_options: Default::default(),
        },
        fragment: Some(wgpu::FragmentState {
            module,
            entry_point: Some("fs_main"),
            targets: &[Some(wgpu::ColorTargetState {
                format,
                blend: None,
                write_mask: wgpu::ColorWrites::ALL,
            })],
            compilation_options: Default::default(),
        }),
        primitive: wgpu::PrimitiveState {
            topology: wgpu::PrimitiveTopology::TriangleStrip,
            ..Default::default()
        },
        depth_stencil: None,
        multisample: wgpu::MultisampleState::default(),
        multiview_mask: None,
        cache: None,
    })
}

/// The GPU side of one cached view.
pub struct ViewCache {
    size: [u32; 2],
    texture: wgpu::TextureView,
    uniforms: wgpu::Buffer,
    blit_uniforms: wgpu::Buffer,
    blit_bind: wgpu::BindGroup,
    /// What the texture holds: the grid uniforms and the volumes drawn (None: nothing yet).
    drawn: Option<(Vec<u8>, [u64; 2])>,
}

/// What a cached view's small pass binds besides its uniforms.
pub struct SliceInputs<'a> {
    /// The slice shader's bind group layout.
    pub layout: &'a wgpu::BindGroupLayout,
    /// Layer 0's and layer 1's volume textures, and the colormap table.
    pub textures: [&'a wgpu::TextureView; 3],
    /// The volumes' ids (0 for none): the texture is drawn again when they change.
    pub volumes: [u64; 2],
}

impl ViewCache {
    fn new(device: &wgpu::Device, p: &Pipelines, size: [u32; 2]) -> Self {
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("slice cache"),
            size: wgpu::Extent3d {
                width: size[0],
                height: size[1],
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: CACHE_FORMAT,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::TEXTURE_BINDING,
            view_formats: &[],
        });
        let texture = texture.create_view(&Default::default());
        let buffer = |label, size| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let uniforms = buffer(
            "slice cache uniforms",
            std::mem::size_of::<Uniforms>() as u64,
        );
        let blit_uniforms = buffer("slice blit uniforms", 32);
        let blit_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("slice blit"),
            layout: &p.blit_layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: blit_uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&texture),
                },
            ],
        });
        Self {
            size,
            texture,
            uniforms,
            blit_uniforms,
            blit_bind,
            drawn: None,
        }
    }

    /// Make `cache` hold the slice `u` describes on grid `g`: (re)create it for a new size,
    /// draw it with `encoder` when what it draws changed, and set the fetch pass's mapping.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update(
        cache: &mut Option<ViewCache>,
        p: &Pipelines,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        encoder: &mut wgpu::CommandEncoder,
        u: &Uniforms,
        g: &Grid,
        inputs: &SliceInputs,
    ) {
        if cache.as_ref().is_none_or(|c| c.size != g.size) {
            *cache = Some(ViewCache::new(device, p, g.size));
        }
        let Some(c) = cache.as_mut() else { return };
        let blit = [
            g.map[0],
            g.map[1],
            g.map[2],
            g.map[3],
            g.size[0] as f32,
            g.size[1] as f32,
            0.0,
            0.0,
        ];
        queue.write_buffer(&c.blit_uniforms, 0, bytemuck::cast_slice(&blit));
        let gu = grid_uniforms(u, g);
        let bytes = bytemuck::bytes_of(&gu);
        if c.drawn
            .as_ref()
            .is_some_and(|(b, v)| b.as_slice() == bytes && *v == inputs.volumes)
        {
            // Nothing the small pass draws changed (a repaint, a pan within a voxel): no
            // allocation, no pass.
            return;
        }
        queue.write_buffer(&c.uniforms, 0, bytes);
        let [v0, v1, cm] = inputs.textures;
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("slice cache"),
            layout: inputs.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: c.uniforms.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(v0),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(v1),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(cm),
                },
            ],
        });
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("slice cache"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &c.texture,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations {
                        load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                        store: wgpu::StoreOp::Store,
                    },
                })],
                depth_stencil_attachment: None,
                timestamp_writes: None,
                occlusion_query_set: None,
                multiview_mask: None,
            });
            pass.set_pipeline(&p.slice);
            pass.set_bind_group(0, &bind, &[]);
            pass.draw(0..4, 0..1);
        }
        c.drawn = Some((bytes.to_vec(), inputs.volumes));
    }

    /// Draw the cached slice into the view's rect (the pass egui set up for the callback).
    pub fn paint(&self, p: &Pipelines, pass: &mut wgpu::RenderPass<'static>) {
        pass.set_pipeline(&p.blit);
        pass.set_bind_group(0, &self.blit_bind, &[]);
        pass.draw(0..4, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texel a screen uv fetches, as the fetch shader computes it.
    fn texel(g: &Grid, uv: f32, axis: usize) -> i64 {
        let t = g.map[2 * axis] + g.map[2 * axis + 1] * uv;
        (t * g.size[axis] as f32).floor() as i64
    }

    #[test]
    fn each_pixel_fetches_the_voxel_the_slice_shader_would_draw() {
        // An axial view over x 10.3 .. 190.3 (180 voxels across) and y 150.7 .. 20.7 (flipped)
        // on 600 x 520 pixels.
        let origin = [10.3, 150.7, 42.0, 0.0];
        let du = [180.0, 0.0, 0.0, 0.0];
        let dv = [0.0, -130.0, 0.0, 0.0];
        let g = grid(origin, du, dv, None, [600.0, 520.0]).expect("axis-aligned view is cached");
        assert_eq!(g.size, [181, 131]);
        let (k0u, k0v) = (10.0, 21.0);
        for i in 0..600 {
            let uv = (i as f32 + 0.5) / 600.0;
            let voxel = (origin[0] + uv * du[0] + 0.5).floor();
            assert_eq!(texel(&g, uv, 0) as f32 + k0u, voxel, "pixel {i} across");
        }
        for j in 0..520 {
            let uv = (j as f32 + 0.5) / 520.0;
            let voxel = (origin[1] + uv * dv[1] + 0.5).floor();
            // Flipped: texel t holds voxel k0 + t along the grid's increasing direction.
            let t = texel(&g, uv, 1);
            assert!((0..131).contains(&t), "pixel {j} down fetches texel {t}");
            let u_of_texel_centre = ((t as f32 + 0.5) / 131.0 - g.map[2]) / g.map[3];
            let drawn = (origin[1] + u_of_texel_centre * dv[1] + 0.5).floor();
            assert_eq!(drawn, voxel, "pixel {j} down");
            assert!(drawn - k0v >= -1.0);
        }
    }

    #[test]
    fn grid_uniforms_put_voxel_centres_at_texel_centres() {
        let mut u = Uniforms::default();
        u.layers[0].origin = [10.3, 150.7, 42.0, 0.0];
        u.layers[0].du = [180.0, 0.0, 0.0, 0.0];
        u.layers[0].dv = [0.0, -130.0, 0.0, 0.0];
        let g = grid(
            u.layers[0].origin,
            u.layers[0].du,
            u.layers[0].dv,
            None,
            [600.0, 520.0],
        )
        .expect("cached");
        let gu = grid_uniforms(&u, &g);
        let l = gu.layers[0];
        for t in [0usize, 7, 180] {
            let x = l.origin[0] + (t as f32 + 0.5) / 181.0 * l.du[0];
            assert!((x - (10.0 + t as f32)).abs() < 1e-3, "texel {t} at x {x}");
        }
        for t in [0usize, 64, 130] {
            let y = l.origin[1] + (t as f32 + 0.5) / 131.0 * l.dv[1];
            // The grid runs along increasing y even where the view runs the other way.
            assert!((y - (21.0 + t as f32)).abs() < 1e-3, "texel {t} at y {y}");
        }
    }

    #[test]
    fn oblique_or_zoomed_out_views_are_drawn_directly() {
        let o = [0.0, 0.0, 10.0, 0.0];
        let oblique = [100.0, 10.0, 0.0, 0.0];
        let dv = [0.0, 100.0, 0.0, 0.0];
        let px = [500.0, 500.0];
        assert!(grid(o, oblique, dv, None, px).is_none());
        // 400 x 400 voxels on 500 x 500 pixels: 64 % of the pixels, not worth a cache.
        let (du4, dv4) = ([400.0, 0.0, 0.0, 0.0], [0.0, 400.0, 0.0, 0.0]);
        assert!(grid(o, du4, dv4, None, px).is_none());
        let du1 = [100.0, 0.0, 0.0, 0.0];
        assert!(grid(o, du1, dv, None, px).is_some());
        // Both directions along one axis: not a plane.
        assert!(grid(o, dv, dv, None, px).is_none());
        // A second layer (rotated, as a registered MR is) no finer than the first: cached;
        // a finer one (twice the voxels across) would lose detail: drawn directly.
        let rotated = ([70.0, 70.0, 5.0, 0.0], [-70.0, 70.0, 0.0, 0.0]);
        assert!(grid(o, du1, dv, Some(rotated), px).is_some());
        let finer = ([200.0, 0.0, 0.0, 0.0], [0.0, 200.0, 0.0, 0.0]);
        assert!(grid(o, du1, dv, Some(finer), px).is_none());
    }
}
