//! US -> MR data from the phantom: each varied phantom patient imaged as simulated ultrasound
//! and T1 MR on one grid. Training draws ultrasound from some patients and MR from others
//! (never a pair); evaluation compares a held-out patient's synthetic MR with its own MR.

use crate::io::phantom::{self, MrContrast, PhantomConfig};
use crate::io::ultrasound;
use crate::model::normalise::Normalisation;
use rayon::prelude::*;

/// One patient: ultrasound (0..1) and MR (0..1) volumes on one [n, n, nz] grid.
#[derive(Clone, Debug)]
pub struct Patient {
    /// Grid side.
    pub n: usize,
    /// Slices.
    pub nz: usize,
    /// Ultrasound, 0..1, zero outside the field of view.
    pub us: Vec<f32>,
    /// MR normalised to 0..1 (99th percentile of the head = 1).
    pub mr: Vec<f32>,
    /// Slices that cross the head (enough MR signal).
    pub slices: Vec<usize>,
    /// The probe's field of view on one slice (the same for every slice).
    pub fov: Vec<bool>,
    /// The grid in patient space (to write volumes).
    pub geometry: crate::volume::Geometry,
}

impl Patient {
    /// Ultrasound slice `z` with `neighbours` slices either side (clamped at the ends), as
    /// channels: [1 + 2 neighbours, n, n] flattened.
    pub fn us_stack(&self, z: usize, neighbours: usize) -> Vec<f32> {
        let len = self.n * self.n;
        let mut out = Vec::with_capacity((1 + 2 * neighbours) * len);
        // Centre slice first, then -1, +1, -2, +2 ...
        let mut order = vec![z as i64];
        for d in 1..=neighbours as i64 {
            order.push(z as i64 - d);
            order.push(z as i64 + d);
        }
        for zz in order {
            let zz = zz.clamp(0, self.nz as i64 - 1) as usize;
            out.extend_from_slice(&self.us[zz * len..(zz + 1) * len]);
        }
        out
    }

    /// MR slice `z`.
    pub fn mr_slice(&self, z: usize) -> &[f32] {
        let len = self.n * self.n;
        &self.mr[z * len..(z + 1) * len]
    }

    /// Ultrasound slice `z`.
    pub fn us_slice(&self, z: usize) -> &[f32] {
        let len = self.n * self.n;
        &self.us[z * len..(z + 1) * len]
    }
}

/// The phantom config of the US -> MR grid: `n` x `n` pixels over 205 mm in-plane, slices
/// of the same size over the head's height.
pub fn grid_config(n: usize, seed: u64) -> PhantomConfig {
    let s = 205.0 / n as f64;
    let nz = ((150.0 / s).round() as usize).max(1);
    PhantomConfig {
        seed,
        mr_dims: [n, n, nz],
        mr_spacing: [s, s, s],
        ..PhantomConfig::small()
    }
}

/// Varied phantom patient `k` on the `n`-pixel grid.
pub fn patient(n: usize, seed: u64, k: usize) -> Patient {
    let cfg = phantom::varied_patient_config(&grid_config(n, seed), k);
    let (us, mr) = rayon::join(
        || ultrasound::phantom_ultrasound(&cfg),
        || phantom::phantom_mr(&cfg, MrContrast::T1),
    );
    let norm = Normalisation::mr(&mr);
    let mr: Vec<f32> = mr.data.iter().map(|&v| norm.forward(v)).collect();
    let [_, _, nz] = us.geometry.dims;
    let len = n * n;
    let g = us.geometry.clone();
    let probe = ultrasound::UltrasoundConfig::phantom_default(&g).probe;
    let fov = (0..len)
        .map(|i| {
            let w = g.world_from_voxel([(i % n) as f64, (i / n) as f64, 0.0]);
            probe.beam_coords([w[0], w[1]]).is_some()
        })
        .collect();
    let slices = (0..nz)
        .filter(|&z| {
            let head = mr[z * len..(z + 1) * len]
                .iter()
                .filter(|&&v| v > 0.1)
                .count();
            head * 4 > len
        })
        .collect();
    Patient {
        n,
        nz,
        us: us.data,
        mr,
        slices,
        fov,
        geometry: g,
    }
}

/// Patients `ks` on the `n`-pixel grid, in parallel.
pub fn patients(n: usize, seed: u64, ks: &[usize]) -> Vec<Patient> {
    ks.par_iter().map(|&k| patient(n, seed, k)).collect()
}
