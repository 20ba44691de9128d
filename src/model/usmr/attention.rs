//! The cross-modal non-local attention block: every position of the features being decoded
//! (the query side, MR) attends to every position of the ultrasound encoder's features (the
//! key/value side), so a decoded pixel can draw on anatomy anywhere in the ultrasound image
//! (a shadowed region on what the open acoustic window shows elsewhere).

use super::conv;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

/// `x + gamma * softmax(q(x)^T k(c) / sqrt(d)) v(c)`, gamma learnt from 0 (so the block starts
/// as the identity and the network learns how much non-local context to take).
#[derive(Module, Debug)]
pub struct CrossAttention {
    query: Conv2d,
    key: Conv2d,
    value: Conv2d,
    gamma: Param<Tensor<1>>,
    dim: usize,
}

impl CrossAttention {
    /// A block on `channels`-wide features with `dim`-wide queries and keys.
    pub fn new(channels: usize, dim: usize, device: &Device) -> Self {
        Self {
            query: conv(channels, dim, 1, device),
            key: conv(channels, dim, 1, device),
            value: conv(channels, channels, 1, device),
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
            dim,
        }
    }

    /// x: [B, C, h, w] (queries), context: [B, C, h', w'] (keys and values)
    /// -> ([B, C, h, w], attention [B, h * w, h' * w'], rows summing to 1)
    pub fn forward(&self, x: Tensor<4>, context: Tensor<4>) -> (Tensor<4>, Tensor<3>) {
        let [b, c, h, w] = x.dims();
        let [_, _, hk, wk] = context.dims();
        let d = self.dim;
        let q = super::conv_apply(&self.query, x.clone())
            .reshape([b, d, h * w])
            .swap_dims(1, 2);
        let k = super::conv_apply(&self.key, context.clone()).reshape([b, d, hk * wk]);
        let v = super::conv_apply(&self.value, context).reshape([b, c, hk * wk]);
        let att = softmax(q.matmul(k) / (d as f64).sqrt(), 2);
        let out = v.matmul(att.clone().swap_dims(1, 2)).reshape([b, c, h, w]);
        let g = self.gamma.val().reshape([1, 1, 1, 1]);
        (x + out * g, att)
    }

    /// The learnt mixing weight (0 at initialisation).
    pub fn gamma(&self) -> Tensor<1> {
        self.gamma.val()
    }
}
