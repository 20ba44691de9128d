//! Low-dose CT simulation (shared/METHODS.md, method 4): the way the field makes low-dose
//! images from normal-dose ones, in the projection domain. A CT slice in HU becomes
//! attenuation per pixel, is forward-projected by a parallel-beam scanner
//! ([`projector::ParallelBeam`]), gets Poisson counts at an incident photon count I0 per ray
//! ([`noise::noisy_sinogram`]) and is reconstructed by ramp-filtered back-projection.
//!
//! Normal dose is I0 = [`DoseConfig::i0`] photons per ray; low dose is that times
//! [`DoseConfig::dose_fraction`] (default 0.25: the quarter dose of the AAPM/Mayo low-dose
//! challenge). Our scanner has far fewer rays than a clinical one (3n/2 views of ~1.4n bins),
//! so the same I0 gives more image noise than on a scanner: I0 is chosen for the noise level,
//! not copied from a protocol.
//!
//! [`phantom`] makes the data: abdominal phantom patients with spherical liver lesions of
//! three size classes and varied contrast, and where each lesion is.

pub mod noise;
pub mod phantom;
pub mod projector;

pub use noise::{image_volume, low_dose_of};
pub use phantom::{Lesion, LesionPatient, LesionPhantomConfig, SizeClass, lesion_patient};
pub use projector::{ParallelBeam, Sinogram};

use serde::{Deserialize, Serialize};

/// What can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum LdctError {
    /// The input cannot be simulated (empty, too large, non-square pixels, ...).
    #[error("{0}")]
    Input(String),
}

/// The two doses and the physics that links HU to attenuation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoseConfig {
    /// Normal-dose incident photons per ray.
    #[serde(default = "default_i0")]
    pub i0: f64,
    /// Low dose as a fraction of normal dose (the ratio of the two I0).
    #[serde(default = "default_fraction")]
    pub dose_fraction: f64,
    /// Linear attenuation of water (1/mm); 0.0192 is about 70 keV.
    #[serde(default = "default_mu")]
    pub mu_water_per_mm: f64,
}

fn default_i0() -> f64 {
    2.0e5
}
fn default_fraction() -> f64 {
    0.25
}
fn default_mu() -> f64 {
    0.0192
}

impl Default for DoseConfig {
    fn default() -> Self {
        Self {
            i0: default_i0(),
            dose_fraction: default_fraction(),
            mu_water_per_mm: default_mu(),
        }
    }
}

impl DoseConfig {
    /// Low-dose incident photons per ray.
    pub fn low_dose_i0(&self) -> f64 {
        self.i0 * self.dose_fraction
    }

    /// Refuse settings that cannot simulate.
    pub fn validate(&self) -> Result<(), LdctError> {
        if !(self.i0 >= 10.0 && self.i0.is_finite()) {
            return Err(LdctError::Input(format!(
                "I0 {} must be at least 10 photons per ray",
                self.i0
            )));
        }
        if !(self.dose_fraction > 0.0 && self.dose_fraction <= 1.0) {
            return Err(LdctError::Input(format!(
                "dose fraction {} must be in (0, 1]",
                self.dose_fraction
            )));
        }
        if !(self.mu_water_per_mm > 0.0 && self.mu_water_per_mm < 1.0) {
            return Err(LdctError::Input(format!(
                "mu_water {} /mm is not a plausible attenuation",
                self.mu_water_per_mm
            )));
        }
        Ok(())
    }
}

/// SplitMix64: the simulation's seeded random stream (the same on every platform).
#[derive(Clone, Debug)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x2545_F491_4F6C_DD1D)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
}
