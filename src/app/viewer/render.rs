//! The bridge from volumes to the GPU: 3D textures uploaded once per volume, one pipeline,
//! and a paint callback per view (egui-wgpu `CallbackTrait`). Knows nothing of egui layout.

use super::render_cache::{self, Grid, SliceInputs, ViewCache};
use crate::volume::{Colormap, Volume, WindowLevel};
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, wgpu};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

/// The WGSL source of the slice shader.
pub const SLICE_WGSL: &str = include_str!("../../../shaders/slice.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct LayerUniform {
    pub(super) origin: [f32; 4],
    pub(super) du: [f32; 4],
    pub(super) dv: [f32; 4],
    dims: [f32; 4],
    window: [f32; 4],
    cmap: [f32; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Uniforms {
    pub(super) layers: [LayerUniform; 2],
    mode: [f32; 4],
    pub(super) plane: [f32; 4],
}

/// A volume on the GPU: 16-bit quantised voxels with the dequantisation to get values back.
struct GpuVolume {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    scale: f32,
    offset: f32,
    last_used: Instant,
    /// While its upload is under way: the packed voxels and the first slice still to copy.
    pending: Option<(Arc<Quantized>, usize)>,
}

/// Voxel bytes copied to the GPU in one frame (besides volumes smaller than this, which go up
/// whole): a large series is uploaded over a few frames (shown once complete) instead of in
/// one long frame (a 512 x 512 x 500 CT is 256 MB).
pub const UPLOAD_BYTES_PER_FRAME: usize = 16 * 1024 * 1024;

/// A volume packed into 16 bits for the GPU: `value = q * scale + offset`.
pub struct Quantized {
    /// Packed voxels, x fastest.
    pub data: Vec<u16>,
    /// Dequantisation scale.
    pub scale: f32,
    /// Dequantisation offset.
    pub offset: f32,
}

/// How a volume's values are packed into 16 bits: exact for integer data with a range below 65536.
pub fn quantisation(volume: &Volume) -> (f32, f32) {
    let (min, max) = volume.min_max();
    let integral = volume.data.iter().step_by(97).all(|v| v.fract() == 0.0);
    if integral && max - min <= 65535.0 {
        (1.0, min)
    } else {
        (((max - min) / 65535.0).max(1e-12), min)
    }
}

/// Pack a volume for upload (done on the loading thread, so the UI thread only copies).
pub fn quantise(volume: &Volume) -> Quantized {
    use rayon::prelude::*;
    let (scale, offset) = quantisation(volume);
    let data = volume
        .data
        .par_iter()
        .map(|v| ((v - offset) / scale).round().clamp(0.0, 65535.0) as u16)
        .collect();
    Quantized {
        data,
        scale,
        offset,
    }
}

/// A texture for `volume`, its voxels still to copy (see [`GpuVolume::upload_some`]).
fn start_upload(
    device: &wgpu::Device,
    volume: &Volume,
    packed: Option<&Arc<Quantized>>,
) -> GpuVolume {
    let [nx, ny, nz] = volume.geometry.dims;
    let q = match packed {
        Some(q) if q.data.len() == volume.data.len() => q.clone(),
        _ => Arc::new(quantise(volume)),
    };
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: Some("volume"),
        size: wgpu::Extent3d {
            width: nx as u32,
            height: ny as u32,
            depth_or_array_layers: nz as u32,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D3,
        format: wgpu::TextureFormat::R16Uint,
        usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
        view_formats: &[],
    });
    GpuVolume {
        view: texture.create_view(&Default::default()),
        texture,
        scale: q.scale,
        offset: q.offset,
        last_used: Instant::now(),
        pending: (nz > 0).then_some((q, 0)),
    }
}

impl GpuVolume {
    /// Copy whole slices from the first one still to copy, about `budget` bytes of them (at
    /// least one slice); returns the bytes copied.
    fn upload_some(&mut self, queue: &wgpu::Queue, dims: [usize; 3], budget: usize) -> usize {
        let Some((q, z)) = self.pending.take() else {
            return 0;
        };
        let [nx, ny, nz] = dims;
        let plane = nx * ny;
        let n = (budget / (plane * 2).max(1)).clamp(1, nz - z);
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: 0,
                    y: 0,
                    z: z as u32,
                },
                aspect: wgpu::TextureAspect::All,
            },
            bytemuck::cast_slice(&q.data[z * plane..(z + n) * plane]),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(nx as u32 * 2),
                rows_per_image: Some(ny as u32),
            },
            wgpu::Extent3d {
                width: nx as u32,
                height: ny as u32,
                depth_or_array_layers: n as u32,
            },
        );
        if z + n < nz {
            self.pending = Some((q, z + n));
        }
        n * plane * 2
    }
}

/// One view's GPU side: its uniforms and bind group, and its per-voxel cache when it has one.
struct ViewGpu {
    buffer: wgpu::Buffer,
    bind: wgpu::BindGroup,
    cache: Option<ViewCache>,
    /// Whether this frame draws the view from its cache.
    use_cache: bool,
}

/// Long-lived GPU state, kept in egui-wgpu's `callback_resources`.
pub struct SliceRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    colormaps: wgpu::TextureView,
    empty_volume: wgpu::TextureView,
    volumes: HashMap<u64, GpuVolume>,
    views: HashMap<u64, ViewGpu>,
    /// The pipelines of views drawn once per voxel (see [`render_cache`]).
    cached: render_cache::Pipelines,
    /// Number of volume uploads so far (tests use it to prove scrolling never re-uploads).
    pub uploads: u64,
    /// The frame the upload budget was last refilled in, and what is left of it.
    budget: (u64, usize),
}

impl SliceRenderer {
    /// Create the pipeline and colormap table for `format` render targets.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue, format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("slice.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SLICE_WGSL.into()),
        });
        let tex_entry = |binding, dim, sample_type| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: dim,
                multisampled: false,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("slice"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT | wgpu::ShaderStages::VERTEX,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                tex_entry(
                    1,
                    wgpu::TextureViewDimension::D3,
                    wgpu::TextureSampleType::Uint,
                ),
                tex_entry(
                    2,
                    wgpu::TextureViewDimension::D3,
                    wgpu::TextureSampleType::Uint,
                ),
                tex_entry(
                    3,
                    wgpu::TextureViewDimension::D2,
                    wgpu::TextureSampleType::Float { filterable: false },
                ),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("slice"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline =
            render_cache::fullscreen_pipeline(device, "slice", &shader, &pipeline_layout, format);
        let cached = render_cache::Pipelines::new(device, &shader, &pipeline_layout, format);
        let rows = Colormap::ALL.len() as u32;
        let table: Vec<u8> = Colormap::ALL
            .iter()
            .flat_map(|c| c.table().into_iter().flatten())
            .collect();
        let size = wgpu::Extent3d {
            width: 256,
            height: rows,
            depth_or_array_layers: 1,
        };
        let cm = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("colormaps"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &cm,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &table,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(256 * 4),
                rows_per_image: Some(rows),
            },
            size,
        );
        let empty = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("empty volume"),
            size: wgpu::Extent3d {
                width: 1,
                height: 1,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D3,
            format: wgpu::TextureFormat::R16Uint,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        Self {
            pipeline,
            layout,
            colormaps: cm.create_view(&Default::default()),
            empty_volume: empty.create_view(&Default::default()),
            volumes: HashMap::new(),
            views: HashMap::new(),
            cached,
            uploads: 0,
            budget: (u64::MAX, UPLOAD_BYTES_PER_FRAME),
        }
    }

    /// Install the renderer into an egui-wgpu render state (once per render state).
    pub fn install(render_state: &egui_wgpu::RenderState) {
        let r = SliceRenderer::new(
            &render_state.device,
            &render_state.queue,
            render_state.target_format,
        );
        render_state.renderer.write().callback_resources.insert(r);
    }

    /// True once volume `id` is on the GPU, all of it.
    pub fn has_volume(&self, id: u64) -> bool {
        self.volumes.get(&id).is_some_and(|g| g.pending.is_none())
    }

    /// Make sure volume `v` is on the GPU or on its way there: start its upload, or go on
    /// with it within this frame's budget (shared by every view drawn in frame `frame`).
    /// True when all of it is there.
    fn ensure_volume(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        v: &Volume,
        packed: Option<&Arc<Quantized>>,
        frame: u64,
    ) -> bool {
        let now = Instant::now();
        if self.budget.0 != frame {
            self.budget = (frame, UPLOAD_BYTES_PER_FRAME);
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.volumes.entry(v.id) {
            e.insert(start_upload(device, v, packed));
            self.uploads += 1;
            // Drop volumes no view has drawn for a while (replaced series).
            self.volumes
                .retain(|_, g| now.duration_since(g.last_used).as_secs() < 20);
        }
        let Some(g) = self.volumes.get_mut(&v.id) else {
            return false;
        };
        g.last_used = now;
        if g.pending.is_some() {
            // A volume within one frame's budget goes up whole, whatever this frame has sent
            // already (so a pane never waits for a small one); a larger one in parts.
            let whole = v.data.len() * 2 <= UPLOAD_BYTES_PER_FRAME;
            if whole || self.budget.1 > 0 {
                let budget = if whole { usize::MAX } else { self.budget.1 };
                let sent = g.upload_some(queue, v.geometry.dims, budget);
                self.budget.1 = self.budget.1.saturating_sub(sent);
            }
        }
        g.pending.is_none()
    }
}

/// One layer of a view: which volume, how the view's uv maps into its voxels, and its look.
#[derive(Clone)]
pub struct LayerDraw {
    /// The volume (shared, uploaded once by id).
    pub volume: Arc<Volume>,
    /// Its 16-bit packing, when the loader prepared it (else packed at upload).
    pub packed: Option<Arc<Quantized>>,
    /// Continuous voxel index at uv (0, 0).
    pub origin: [f64; 3],
    /// Voxel index change across the full width (u from 0 to 1).
    pub du: [f64; 3],
    /// Voxel index change across the full height.
    pub dv: [f64; 3],
    /// Display window.
    pub window: WindowLevel,
    /// Colormap.
    pub colormap: Colormap,
    /// Inverted greys (MONOCHROME1).
    pub invert: bool,
}

/// How two layers combine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Combine {
    /// Layer 0 alone.
    Single,
    /// Checkerboard of layer 0 and 1 with squares of this many mm.
    Checker(f32),
    /// Layer 1 over layer 0 with this weight.
    Blend(f32),
    /// Signed difference of the two windowed layers (layer 0 minus layer 1), diverging colours.
    Difference,
    /// Layer 1 minus layer 0 in image units over +-range, diverging colours centred on zero;
    /// voxels below `background` in both layers stay black.
    SignedError {
        /// Value difference at the ends of the colour bar.
        range: f32,
        /// Background threshold (image units).
        background: f32,
    },
    /// |layer 1 - layer 0| over 0..range, inferno.
    AbsError {
        /// Value difference at the top of the colour bar.
        range: f32,
        /// Background threshold (image units).
        background: f32,
    },
}

/// The per-frame description of one view, handed to egui as a paint callback.
#[derive(Clone)]
pub struct SliceCallback {
    /// Stable id of the view (its uniform buffer is reused).
    pub view_id: u64,
    /// The frame it is drawn in (egui's frame number): volume uploads share a budget per frame.
    pub frame: u64,
    /// The context to ask for the next frame while an upload is under way.
    pub ctx: egui::Context,
    /// Up to two layers.
    pub layers: [Option<LayerDraw>; 2],
    /// Combination of the layers.
    pub combine: Combine,
    /// In-plane mm at uv (0,0) and extent (mm) of the rect: for world-fixed checkerboards.
    pub plane: [f32; 4],
    /// The rect's size in physical pixels (whether a per-voxel cache pays, see [`render_cache`]).
    pub pixels: [f32; 2],
}

impl CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &egui_wgpu::ScreenDescriptor,
        encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(r) = resources.get_mut::<SliceRenderer>() else {
            return Vec::new();
        };
        let mut u = Uniforms::default();
        for (i, l) in self.layers.iter().enumerate() {
            let Some(l) = l else { continue };
            let ready = r.ensure_volume(device, queue, &l.volume, l.packed.as_ref(), self.frame);
            if !ready {
                self.ctx.request_repaint();
            }
            let Some(g) = r.volumes.get(&l.volume.id) else {
                continue;
            };
            let d = l.volume.geometry.dims;
            let f = |v: [f64; 3]| [v[0] as f32, v[1] as f32, v[2] as f32, 0.0];
            u.layers[i] = LayerUniform {
                origin: f(l.origin),
                du: f(l.du),
                dv: f(l.dv),
                // A volume whose upload is under way is not drawn yet (the shader's enabled flag).
                dims: [
                    d[0] as f32,
                    d[1] as f32,
                    d[2] as f32,
                    f32::from(u8::from(ready)),
                ],
                window: [l.window.low(), l.window.width, g.scale, g.offset],
                cmap: [
                    l.colormap.row() as f32,
                    if l.invert { 1.0 } else { 0.0 },
                    1.0,
                    0.0,
                ],
            };
        }
        u.mode = match self.combine {
            Combine::Single => [0.0, 0.0, 0.0, 0.0],
            Combine::Checker(mm) => [1.0, mm, 0.0, 0.0],
            Combine::Blend(w) => [2.0, 0.0, w, 0.0],
            Combine::Difference => [3.0, 0.0, 0.0, Colormap::Diverging.row() as f32],
            Combine::SignedError { range, background } => {
                [4.0, range, background, Colormap::Diverging.row() as f32]
            }
            Combine::AbsError { range, background } => {
                [5.0, range, background, Colormap::Inferno.row() as f32]
            }
        };
        u.plane = self.plane;
        let view_of = |r: &SliceRenderer, i: usize| -> wgpu::TextureView {
            self.layers[i]
                .as_ref()
                .and_then(|l| r.volumes.get(&l.volume.id))
                .map(|g| g.view.clone())
                .unwrap_or_else(|| r.empty_volume.clone())
        };
        let (v0, v1) = (view_of(r, 0), view_of(r, 1));
        let (buffer, mut cache) = match r.views.remove(&self.view_id) {
            Some(g) => (g.buffer, g.cache),
            None => (
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("slice uniforms"),
                    size: std::mem::size_of::<Uniforms>() as u64,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                None,
            ),
        };
        queue.write_buffer(&buffer, 0, bytemuck::bytes_of(&u));
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("slice"),
            layout: &r.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: buffer.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: wgpu::BindingResource::TextureView(&v0),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(&v1),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: wgpu::BindingResource::TextureView(&r.colormaps),
                },
            ],
        });
        let l0 = &u.layers[0];
        let l1 = &u.layers[1];
        let second = self.layers[1].is_some().then_some((l1.du, l1.dv));
        let grid: Option<Grid> = render_cache::grid(l0.origin, l0.du, l0.dv, second, self.pixels);
        match &grid {
            Some(g) => {
                let ids = self
                    .layers
                    .each_ref()
                    .map(|l| l.as_ref().map_or(0, |l| l.volume.id));
                let inputs = SliceInputs {
                    layout: &r.layout,
                    textures: [&v0, &v1, &r.colormaps],
                    volumes: ids,
                };
                ViewCache::update(
                    &mut cache, &r.cached, device, queue, encoder, &u, g, &inputs,
                );
            }
            // A view drawn directly lets its cache go (its size would change anyway).
            None => cache = None,
        }
        r.views.insert(
            self.view_id,
            ViewGpu {
                buffer,
                bind,
                use_cache: grid.is_some() && cache.is_some(),
                cache,
            },
        );
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(r) = resources.get::<SliceRenderer>() else {
            return;
        };
        let Some(view) = r.views.get(&self.view_id) else {
            return;
        };
        if let (true, Some(c)) = (view.use_cache, &view.cache) {
            c.paint(&r.cached, pass);
            return;
        }
        pass.set_pipeline(&r.pipeline);
        pass.set_bind_group(0, &view.bind, &[]);
        pass.draw(0..4, 0..1);
    }
}

/// True when the renderer in `render_state` holds volume `id`.
pub fn is_uploaded(render_state: &egui_wgpu::RenderState, id: u64) -> bool {
    render_state
        .renderer
        .read()
        .callback_resources
        .get::<SliceRenderer>()
        .is_some_and(|r| r.has_volume(id))
}

/// Number of volume uploads the renderer installed in `render_state` has done.
pub fn upload_count(render_state: &egui_wgpu::RenderState) -> u64 {
    render_state
        .renderer
        .read()
        .callback_resources
        .get::<SliceRenderer>()
        .map(|r| r.uploads)
        .unwrap_or(0)
}
