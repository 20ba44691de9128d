//! The Mattes metric on the shared wgpu device (`shaders/mattes_mi.wgsl`): the joint histogram
//! and its parameter derivatives are accumulated on the GPU; the CPU turns the 32 x 32 (x 12)
//! sums into MI and its gradient ([`super::metric::finish`]).

use super::metric::{MattesMi, MetricValue, finish};
use crate::volume::transform::Affine;
use burn::tensor::wgpu::wgpu;
use std::sync::mpsc;

/// WGSL source of the metric kernel.
pub const MATTES_WGSL: &str = include_str!("../../shaders/mattes_mi.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    vox: [[f32; 4]; 3],
    minv: [[f32; 4]; 3],
    dr: [[f32; 4]; 9],
    center: [f32; 4],
    dims: [u32; 4],
    misc: [f32; 4],
    cfg: [u32; 4],
}

/// One pyramid level's metric, resident on the GPU (samples and moving image uploaded once).
pub struct GpuMattes {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    bind: wgpu::BindGroup,
    params: wgpu::Buffer,
    hist: wgpu::Buffer,
    dhist: wgpu::Buffer,
    counter: wgpu::Buffer,
    readback: wgpu::Buffer,
    template: Params,
    bins: usize,
    samples: u32,
}

/// Errors of the GPU metric.
#[derive(Debug, thiserror::Error)]
pub enum GpuMetricError {
    /// No device, or the device refused a buffer or pipeline.
    #[error("GPU metric unavailable: {0}")]
    Unavailable(String),
}

impl GpuMattes {
    /// Upload `cpu`'s samples and moving image to `device`.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        cpu: &MattesMi,
    ) -> Result<Self, GpuMetricError> {
        use wgpu::util::DeviceExt;
        let limits = device.limits();
        let moving_bytes = (cpu.moving.data.len() * 4) as u64;
        if moving_bytes > limits.max_storage_buffer_binding_size {
            return Err(GpuMetricError::Unavailable(format!(
                "moving image ({moving_bytes} bytes) exceeds the storage buffer limit"
            )));
        }
        let b = cpu.bins;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("mattes_mi.wgsl"),
            source: wgpu::ShaderSource::Wgsl(MATTES_WGSL.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("mattes"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let samples: Vec<[f32; 4]> = cpu
            .samples
            .iter()
            .map(|(x, b)| [x[0] as f32, x[1] as f32, x[2] as f32, *b as f32])
            .collect();
        let storage = |label, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let samples_buf = storage("samples", bytemuck::cast_slice(&samples));
        let moving_buf = storage("moving", bytemuck::cast_slice(&cpu.moving.data));
        let acc = |label, n: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (n * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let hist = acc("hist", b * b);
        let dhist = acc("dhist", b * b * 12);
        let counter = acc("counter", 4);
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: ((b * b + b * b * 12 + 4) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("mattes params"),
            size: std::mem::size_of::<Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("mattes"),
            layout: &layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: samples_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: moving_buf.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: hist.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: dhist.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: counter.as_entire_binding(),
                },
            ],
        });
        let d = cpu.moving.geometry.dims;
        let m = cpu.moving_inv;
        let template = Params {
            minv: [0, 1, 2].map(|r| [m[r][0] as f32, m[r][1] as f32, m[r][2] as f32, 0.0]),
            dims: [d[0] as u32, d[1] as u32, d[2] as u32, samples.len() as u32],
            misc: [cpu.m_min as f32, cpu.m_scale as f32, (b - 3) as f32, 0.0],
            cfg: [b as u32, 0, 0, 0],
            ..Default::default()
        };
        Ok(Self {
            device: device.clone(),
            queue: queue.clone(),
            pipeline,
            bind,
            params,
            hist,
            dhist,
            counter,
            readback,
            template,
            bins: b,
            samples: samples.len() as u32,
        })
    }

    /// MI and gradient for `transform`; `rotation_derivatives` is Some for the rigid stage
    /// (dR/dangle, 3 matrices), None for the affine stage (12 parameters).
    pub fn evaluate(
        &self,
        cpu: &MattesMi,
        transform: &Affine,
        rotation_derivatives: Option<&[[[f64; 3]; 3]; 3]>,
    ) -> Result<MetricValue, GpuMetricError> {
        let b = self.bins;
        let nparams = if rotation_derivatives.is_some() {
            6
        } else {
            12
        };
        let mut p = self.template;
        let vox = cpu.fixed_to_voxel(transform);
        p.vox = vox.map(|r| r.map(|v| v as f32));
        if let Some(dr) = rotation_derivatives {
            for k in 0..3 {
                for r in 0..3 {
                    p.dr[3 * k + r] = [
                        dr[k][r][0] as f32,
                        dr[k][r][1] as f32,
                        dr[k][r][2] as f32,
                        0.0,
                    ];
                }
            }
        }
        p.center = [
            transform.center[0] as f32,
            transform.center[1] as f32,
            transform.center[2] as f32,
            0.0,
        ];
        p.cfg = [
            b as u32,
            nparams as u32,
            if rotation_derivatives.is_some() { 0 } else { 1 },
            0,
        ];
        self.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(&p));
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("mattes"),
            });
        enc.clear_buffer(&self.hist, 0, None);
        enc.clear_buffer(&self.dhist, 0, None);
        enc.clear_buffer(&self.counter, 0, None);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("mattes"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind, &[]);
            let groups = self.samples.div_ceil(64);
            pass.dispatch_workgroups(groups.min(65535), groups.div_ceil(65535), 1);
        }
        let hb = (b * b * 4) as u64;
        let db = (b * b * 12 * 4) as u64;
        enc.copy_buffer_to_buffer(&self.hist, 0, &self.readback, 0, hb);
        enc.copy_buffer_to_buffer(&self.dhist, 0, &self.readback, hb, db);
        enc.copy_buffer_to_buffer(&self.counter, 0, &self.readback, hb + db, 4);
        self.queue.submit([enc.finish()]);
        let slice = self.readback.slice(..);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuMetricError::Unavailable(format!("{e:?}")))?;
        rx.recv()
            .map_err(|e| GpuMetricError::Unavailable(e.to_string()))?
            .map_err(|e| GpuMetricError::Unavailable(format!("{e:?}")))?;
        let (hist, dhist, valid) = {
            let data = slice
                .get_mapped_range()
                .map_err(|e| GpuMetricError::Unavailable(format!("{e:?}")))?;
            let f: &[f32] = bytemuck::cast_slice(&data);
            let hist: Vec<f64> = f[..b * b].iter().map(|v| *v as f64).collect();
            let dall = &f[b * b..b * b + b * b * 12];
            // The kernel packs nparams values per bin.
            let dhist: Vec<f64> = dall[..b * b * nparams].iter().map(|v| *v as f64).collect();
            let valid =
                bytemuck::cast_slice::<f32, u32>(&f[b * b + b * b * 12..b * b + b * b * 12 + 1])[0]
                    as usize;
            (hist, dhist, valid)
        };
        self.readback.unmap();
        Ok(finish(&hist, &dhist, valid, b, nparams))
    }
}
