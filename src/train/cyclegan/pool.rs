//! The reference's image pool (Shrivastava et al.): the discriminators see a mix of the newest
//! fakes and ones from earlier steps; and its learning-rate schedule.

use crate::model::ModelError;
use crate::train::TrainError;
use crate::train::data::Rng;
use burn::tensor::{Device, Tensor, TensorData};

/// A pool of up to `size` generated images (each [1, C, H, W], detached from the graph).
pub struct ImagePool {
    size: usize,
    images: Vec<Tensor<4>>,
}

impl ImagePool {
    /// An empty pool of `size` images (0: no pool, the newest fakes pass through).
    pub fn new(size: usize) -> Self {
        Self {
            size,
            images: Vec::new(),
        }
    }

    /// Images held.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The batch the discriminator sees for `fakes` [B, C, H, W]: while the pool fills, each
    /// fake goes in and through; once full, each fake has an even chance of being swapped for
    /// a random stored one (which it replaces) or passing through.
    pub fn query(&mut self, fakes: Tensor<4>, rng: &mut Rng) -> Tensor<4> {
        let fakes = fakes.detach();
        if self.size == 0 {
            return fakes;
        }
        let [b, _, _, _] = fakes.dims();
        let mut out = Vec::with_capacity(b);
        for i in 0..b {
            let img = fakes.clone().narrow(0, i, 1);
            if self.images.len() < self.size {
                self.images.push(img.clone());
                out.push(img);
            } else if rng.below(2) == 1 {
                let k = rng.below(self.size);
                out.push(std::mem::replace(&mut self.images[k], img));
            } else {
                out.push(img);
            }
        }
        Tensor::cat(out, 0)
    }
}

/// What a saved pool holds: its images' [C, H, W] and their values, image after image.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolImages {
    /// Channels, height, width of every image.
    pub dims: [usize; 3],
    /// n x C x H x W values (n images, in pool order).
    pub values: Vec<f32>,
}

impl PoolImages {
    /// Images held.
    pub fn len(&self) -> usize {
        let per = self.dims.iter().product::<usize>();
        if per == 0 { 0 } else { self.values.len() / per }
    }

    /// True when it holds no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ImagePool {
    /// The stored images (read back from the device), for a resume state.
    pub fn images(&self) -> Result<PoolImages, ModelError> {
        let Some(first) = self.images.first() else {
            return Ok(PoolImages {
                dims: [0; 3],
                values: Vec::new(),
            });
        };
        let [_, c, h, w] = first.dims();
        let all = Tensor::cat(self.images.clone(), 0);
        Ok(PoolImages {
            dims: [c, h, w],
            values: crate::model::tensor_values(all)?,
        })
    }

    /// Put saved images back (on `device`, untracked), replacing what the pool held. Refused
    /// when they are more than the pool keeps or their values do not fill whole images.
    pub fn restore(&mut self, saved: &PoolImages, device: &Device) -> Result<(), TrainError> {
        let [c, h, w] = saved.dims;
        let per = c * h * w;
        let n = saved.len();
        if (per == 0 && !saved.values.is_empty()) || (per > 0 && saved.values.len() % per != 0) {
            return Err(TrainError::Config(format!(
                "{} values are not whole {c}x{h}x{w} images",
                saved.values.len()
            )));
        }
        if n > self.size {
            return Err(TrainError::Config(format!(
                "{n} images saved for a pool of {}",
                self.size
            )));
        }
        self.images = saved
            .values
            .chunks(per.max(1))
            .take(n)
            .map(|v| Tensor::from_data(TensorData::new(v.to_vec(), [1, c, h, w]), device))
            .collect();
        Ok(())
    }
}

/// The reference's `linear` policy: the base rate for `constant` epochs, then down linearly
/// over `decay` epochs (epoch is 0-based; the last decay epoch runs at base / (decay + 1)).
pub fn learning_rate(base: f64, epoch: usize, constant: usize, decay: usize) -> f64 {
    let past = (epoch + 1).saturating_sub(constant) as f64;
    base * (1.0 - past / (decay as f64 + 1.0)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_constant_then_linear() {
        let r: Vec<f64> = (0..6).map(|e| learning_rate(1.0, e, 3, 3)).collect();
        assert_eq!(&r[..3], &[1.0, 1.0, 1.0]);
        assert!(
            (r[3] - 0.75).abs() < 1e-12 && (r[5] - 0.25).abs() < 1e-12,
            "{r:?}"
        );
    }

    #[test]
    fn pool_fills_then_swaps_half_the_time() {
        let d = burn::tensor::Device::flex();
        let mut pool = ImagePool::new(4);
        let mut rng = Rng::new(3);
        for k in 0..4 {
            let y = pool.query(Tensor::<4>::full([1, 1, 2, 2], k as f32, &d), &mut rng);
            assert_eq!(y.into_scalar_sum(), 4.0 * k as f32);
        }
        assert_eq!(pool.len(), 4);
        let mut swapped = 0;
        for _ in 0..400 {
            let y = pool.query(Tensor::<4>::full([1, 1, 2, 2], 100.0, &d), &mut rng);
            if y.into_scalar_sum() != 400.0 {
                swapped += 1;
            }
            pool.images
                .iter_mut()
                .for_each(|t| *t = t.clone().clamp_max(3.0));
        }
        assert!((150..250).contains(&swapped), "{swapped} of 400 swapped");
    }

    trait SumScalar {
        fn into_scalar_sum(self) -> f32;
    }
    impl SumScalar for Tensor<4> {
        fn into_scalar_sum(self) -> f32 {
            self.sum().into_scalar::<f32>()
        }
    }
}
