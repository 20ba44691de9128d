//! Unpaired training data: domain A (MR slices) and domain B (CT slices) from different
//! patients, and held-out patients that keep both, registered, for honest metrics.
//!
//! From paired sources (the phantom patients, a SynthRAD-style folder) the pairing is thrown
//! away: the training patients are split in two halves, the first giving only its MR, the
//! second only its CT, so no training MR has its own CT anywhere in domain B.

use crate::train::TrainError;
use crate::train::data::{Case, Rng, crop, origin};

/// One grey slice in 0..1.
#[derive(Clone, Debug)]
pub struct Slice {
    /// Width.
    pub nx: usize,
    /// Height.
    pub ny: usize,
    /// Values, x fastest.
    pub v: Vec<f32>,
}

/// The two unpaired domains and the held-out cases.
#[derive(Clone, Debug)]
pub struct Unpaired {
    /// Domain A: MR slices.
    pub mr: Vec<Slice>,
    /// Domain B: CT slices.
    pub ct: Vec<Slice>,
    /// Patients whose MR went into domain A.
    pub mr_patients: Vec<String>,
    /// Patients whose CT went into domain B.
    pub ct_patients: Vec<String>,
    /// Held-out patients with their registered MR (input) and CT (target).
    pub held_out: Vec<Case>,
}

impl Unpaired {
    /// Split registered `cases` (MR input, CT target) into unpaired domains and `held_out`
    /// patients (the last ones).
    pub fn from_cases(mut cases: Vec<Case>, held_out: usize) -> Result<Self, TrainError> {
        if cases.len() < held_out + 2 {
            return Err(TrainError::Config(format!(
                "an unpaired run needs at least {} patients ({} held out, one MR-only, one \
                 CT-only); the data has {}",
                held_out + 2,
                held_out,
                cases.len()
            )));
        }
        let held = cases.split_off(cases.len() - held_out);
        let half = cases.len().div_ceil(2);
        let (a, b) = cases.split_at(half);
        let slices = |cs: &[Case], mr: bool| -> Vec<Slice> {
            cs.iter()
                .flat_map(|c| {
                    c.slices.iter().map(move |&z| {
                        let (input, target, _) = c.slice(z);
                        Slice {
                            nx: c.nx,
                            ny: c.ny,
                            v: if mr { input } else { target },
                        }
                    })
                })
                .collect()
        };
        Ok(Self {
            mr: slices(a, true),
            ct: slices(b, false),
            mr_patients: a.iter().map(|c| c.name.clone()).collect(),
            ct_patients: b.iter().map(|c| c.name.clone()).collect(),
            held_out: held,
        })
    }

    /// How the data was split, for the log.
    pub fn note(&self) -> String {
        format!(
            "unpaired: MR ({} slices) from {}; CT ({} slices) from {}; held out (registered, \
             metrics only): {}",
            self.mr.len(),
            self.mr_patients.join(", "),
            self.ct.len(),
            self.ct_patients.join(", "),
            self.held_out
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// `n` random crops of side `p` (random flips) from random slices of `domain`, flattened
/// [n, 1, p, p].
pub fn sample(domain: &[Slice], n: usize, p: usize, flip: bool, rng: &mut Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * p * p);
    for _ in 0..n {
        let s = &domain[rng.below(domain.len())];
        let o = (origin(s.nx, p, rng), origin(s.ny, p, rng));
        let f = flip && rng.below(2) == 1;
        out.extend(crop(&s.v, (s.nx, s.ny), o, p, 0, f));
    }
    out
}
