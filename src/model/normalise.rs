//! The normalisation contract between training and inference, and the modality classes of the
//! MR/CT classifier.
//!
//! - CT: Hounsfield units windowed linearly from [`CT_RANGE`] to 0..1 (clamped).
//! - MR: 0..1 from 0 (air) to the 99th percentile inside the head (values above a tenth of the
//!   range), clamped; synthetic MR comes back as 0..1000.
//! - Networks take and give 0..1 per pixel; DRUNet takes the grey image repeated to 3 channels.

use crate::model::Direction;
use crate::model::checkpoint::AnyModel;
use crate::volume::{Modality, Volume};

/// HU mapped to 0..1 for CT input and output.
pub const CT_RANGE: (f32, f32) = (-1000.0, 2000.0);

/// How a volume's values map to the network's 0..1 and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Value mapped to 0.
    pub low: f32,
    /// Value mapped to 1.
    pub high: f32,
}

impl Normalisation {
    /// CT: the fixed HU window.
    pub fn ct() -> Self {
        Self {
            low: CT_RANGE.0,
            high: CT_RANGE.1,
        }
    }

    /// MR: 0 to the 99th percentile inside the head.
    pub fn mr(v: &Volume) -> Self {
        let (_, high) = v.robust_range(1.0, 99.0);
        Self { low: 0.0, high }
    }

    /// Value -> 0..1.
    pub fn forward(&self, v: f32) -> f32 {
        ((v - self.low) / (self.high - self.low).max(1e-6)).clamp(0.0, 1.0)
    }

    /// 0..1 -> value.
    pub fn inverse(&self, t: f32) -> f32 {
        self.low + t.clamp(0.0, 1.0) * (self.high - self.low)
    }
}

/// Input normalisation, output normalisation and output modality for `direction`.
pub fn normalisations(
    direction: Direction,
    input: &Volume,
) -> (Normalisation, Normalisation, Modality) {
    match direction {
        Direction::MrToCt => (Normalisation::mr(input), Normalisation::ct(), Modality::Ct),
        Direction::CtToMr => (
            Normalisation::ct(),
            Normalisation {
                low: 0.0,
                high: 1000.0,
            },
            Modality::Mr,
        ),
        Direction::CtDenoise => (Normalisation::ct(), Normalisation::ct(), Modality::Ct),
    }
}

/// Slices z0..z0+n of `input`, normalised, repeated to `channels` and zero-padded to (px, py):
/// the network's input batch [n, channels, py, px], flattened.
pub fn normalised_slices(
    input: &Volume,
    z0: usize,
    n: usize,
    channels: usize,
    (px, py): (usize, usize),
    norm: &Normalisation,
) -> Vec<f32> {
    let [nx, ny, _] = input.geometry.dims;
    let mut buf = vec![0f32; n * channels * px * py];
    for b in 0..n {
        let plane = &input.data[(z0 + b) * nx * ny..(z0 + b + 1) * nx * ny];
        for c in 0..channels {
            let base = (b * channels + c) * px * py;
            for y in 0..ny {
                for x in 0..nx {
                    buf[base + y * px + x] = norm.forward(plane[x + nx * y]);
                }
            }
        }
    }
    buf
}

/// Slice `z` of `input` as `model` takes it (normalised, channels repeated, zero-padded to the
/// network's size multiple): (buffer [1, channels, py, px], channels, (px, py)).
pub fn network_slice(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
) -> (Vec<f32>, usize, (usize, usize)) {
    let (norm, _, _) = normalisations(direction, input);
    let (channels, multiple) = model.input_layout();
    let [nx, ny, nz] = input.geometry.dims;
    let pad = (
        nx.div_ceil(multiple) * multiple,
        ny.div_ceil(multiple) * multiple,
    );
    let z = z.min(nz.saturating_sub(1));
    (
        normalised_slices(input, z, 1, channels, pad, &norm),
        channels,
        pad,
    )
}

/// The class index of a modality in the MR/CT classifier: 0 = MR, 1 = CT (anything not CT is MR).
pub fn class_of_modality(modality: &Modality) -> usize {
    usize::from(*modality == Modality::Ct)
}

/// The class index of the target modality in the MR/CT classifier; for CT denoising, the
/// "lesion present" class of the lesion classifier (crate::ldct::classifier).
pub fn class_of_target(direction: Direction) -> usize {
    match direction {
        Direction::MrToCt => 1,
        Direction::CtToMr => 0,
        Direction::CtDenoise => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_round_trips() {
        let n = Normalisation::ct();
        for hu in [-1000.0, -40.0, 0.0, 400.0, 2000.0] {
            assert!((n.inverse(n.forward(hu)) - hu).abs() < 1e-3);
        }
        assert_eq!(n.forward(-3000.0), 0.0);
        assert_eq!(n.forward(5000.0), 1.0);
    }
}
