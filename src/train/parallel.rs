//! Data-parallel training on several devices in one run (`devices = [...]` in the run config,
//! `synthscope train --devices`): the model is replicated on each device, each step's batch is
//! split across them (shares proportional to the devices' weights), every device computes the
//! gradients of its share concurrently on its own thread, the gradients are brought to the
//! first device and summed there by burn-optim's [`MultiGradientsParams`] (each share's loss
//! is scaled by its fraction of the batch, so the sum is the gradient of the whole batch's mean
//! loss), and one optimiser step ([`ModuleOptimizer::step_multi`]) updates the weights on the
//! first device; the next step forks them to every device again.
//!
//! Nothing here is a distributed system: the devices are burn devices of this process (local
//! CPU, the wgpu device, or `ws://` servers through burn-remote). Batch norm normalises each
//! share with its own statistics, so a run on several devices matches a run on one only up to
//! that; a network without batch norm gets the full-batch gradient (see tests/multidevice.rs).

use super::TrainError;
use crate::gpu::DeviceSpec;
use crate::gpu::compute::DeviceChoice;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer, MultiGradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One device of a data-parallel run as the run config names it: `"cpu"`, `"gpu@3"` (weight
/// 3), `"ws://host:3000"`, or a table `{ device = "ws://host:3000", weight = 2, token_file =
/// "~/.synthscope-token" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EntryText", into = "EntryText")]
pub struct DeviceEntry {
    /// The device (auto, cpu, gpu or ws://HOST:PORT[/N]).
    pub spec: DeviceSpec,
    /// Its relative share of each batch (default 1).
    pub weight: f64,
    /// A remote server's token file (else the one given on the command line).
    pub token_file: Option<PathBuf>,
}

/// How a [`DeviceEntry`] is written in TOML/JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum EntryText {
    /// `"SPEC"` or `"SPEC@WEIGHT"`.
    Text(String),
    /// A table.
    Table {
        device: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<PathBuf>,
    },
}

impl TryFrom<EntryText> for DeviceEntry {
    type Error = String;

    fn try_from(t: EntryText) -> Result<Self, String> {
        match t {
            EntryText::Text(s) => s.parse(),
            EntryText::Table {
                device,
                weight,
                token_file,
            } => {
                let mut e: DeviceEntry = device.parse()?;
                if let Some(w) = weight {
                    e.weight = check_weight(&device, w)?;
                }
                e.token_file = token_file;
                Ok(e)
            }
        }
    }
}

impl From<DeviceEntry> for EntryText {
    fn from(e: DeviceEntry) -> Self {
        match e.token_file {
            None => EntryText::Text(e.to_string()),
            Some(t) => EntryText::Table {
                device: e.spec.to_string(),
                weight: (e.weight != 1.0).then_some(e.weight),
                token_file: Some(t),
            },
        }
    }
}

fn check_weight(what: &str, w: f64) -> Result<f64, String> {
    if w.is_finite() && w > 0.0 {
        Ok(w)
    } else {
        Err(format!(
            "device {what:?}: weight {w} must be a positive number"
        ))
    }
}

impl std::str::FromStr for DeviceEntry {
    type Err = String;

    /// `SPEC` or `SPEC@WEIGHT`.
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (spec, weight) = match t.rsplit_once('@') {
            Some((spec, w)) => {
                let w: f64 = w.trim().parse().map_err(|_| {
                    format!("device {t:?}: after @ comes its weight, a number (e.g. gpu@3)")
                })?;
                (spec, check_weight(t, w)?)
            }
            None => (t, 1.0),
        };
        let spec: DeviceSpec = spec
            .parse()
            .map_err(|e: crate::gpu::GpuError| format!("device {t:?}: {e}"))?;
        Ok(Self {
            spec,
            weight,
            token_file: None,
        })
    }
}

impl std::fmt::Display for DeviceEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.weight == 1.0 {
            write!(f, "{}", self.spec)
        } else {
            write!(f, "{}@{}", self.spec, self.weight)
        }
    }
}

/// Comma-separated entries (`cpu,gpu@2`), as `--devices` takes them.
pub fn parse_list(s: &str) -> Result<Vec<DeviceEntry>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse)
        .collect()
}

/// A device of the run, connected.
#[derive(Clone, Debug)]
pub struct Replica {
    /// The plain device (its autodiff twin trains).
    pub device: Device,
    /// Relative share of each batch.
    pub weight: f64,
    /// Name in logs and the panel ("cpu", "gpu", "ws://host:3000", with "#k" for repeats).
    pub label: String,
}

impl Replica {
    /// The one device of a plain run.
    pub fn single(device: &Device) -> Self {
        Self {
            device: device.clone(),
            weight: 1.0,
            label: crate::gpu::compute::label(device),
        }
    }
}

/// Connect every entry: local ones through [`crate::gpu::compute::choose`] (`auto` is the
/// process-wide choice), remote ones with their token file or `default_token`.
pub fn resolve(
    entries: &[DeviceEntry],
    default_token: Option<&Path>,
) -> Result<Vec<Replica>, TrainError> {
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let fail = |why: String| TrainError::Config(format!("devices[{i}] = {e}: {why}"));
        let device = match &e.spec {
            DeviceSpec::Local(DeviceChoice::Auto) => crate::gpu::compute_device(),
            DeviceSpec::Local(c) => crate::gpu::compute::choose(*c).map(|c| c.device),
            DeviceSpec::Remote { url, index } => {
                let token = match e.token_file.as_deref().or(default_token) {
                    Some(p) => Some(
                        crate::gpu::remote::read_token_file(p).map_err(|x| fail(x.to_string()))?,
                    ),
                    None => None,
                };
                crate::gpu::remote::connect(url, *index, token.as_deref()).map_err(Into::into)
            }
        }
        .map_err(|x| fail(x.to_string()))?;
        let base = e.spec.to_string();
        let repeats = entries.iter().filter(|o| o.spec == e.spec).count();
        let label = if repeats > 1 {
            let k = entries[..i].iter().filter(|o| o.spec == e.spec).count() + 1;
            format!("{base} #{k}")
        } else {
            base
        };
        out.push(Replica {
            device,
            weight: e.weight,
            label,
        });
    }
    Ok(out)
}

/// Split `batch` samples by `weights`: each device gets the floor of its exact share and the
/// samples left over go to the largest remainders (ties to the earlier device).
pub fn split_batch(batch: usize, weights: &[f64]) -> Vec<usize> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || total <= 0.0 {
        return vec![batch; weights.len().min(1)];
    }
    let exact: Vec<f64> = weights.iter().map(|w| batch as f64 * w / total).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let left = batch.saturating_sub(counts.iter().sum());
    let mut by_rest: Vec<usize> = (0..weights.len()).collect();
    by_rest.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in by_rest.iter().take(left) {
        counts[i] += 1;
    }
    counts
}

/// What one device did in a step.
#[derive(Debug)]
pub struct Shard {
    /// Which device (index into the run's devices).
    pub device: usize,
    /// Its share's gradients, already scaled by samples / batch.
    pub grads: GradientsParams,
    /// Its share's (unscaled) loss.
    pub loss: f64,
    /// Its share's loss terms, unscaled.
    pub terms: Vec<(String, f64)>,
    /// Samples it computed.
    pub samples: usize,
    /// Seconds of its forward and backward pass (its own thread).
    pub seconds: f64,
}

/// The shape of one step's batch: `batch` single-channel images of `side` x `side`.
#[derive(Clone, Copy, Debug)]
pub struct BatchShape {
    /// Images.
    pub batch: usize,
    /// Pixels per side.
    pub side: usize,
}

/// The network a share computes with.
enum ReplicaOf<'a, M> {
    /// A copy, to fork onto the share's device.
    Fork(M),
    /// The master copy itself, on the first device.
    Master(&'a M),
}

/// Forward and backward of one device's share: the replica on `ad`, then the loss of `x`, `y`
/// (`n` images) scaled by n / batch, backward, and the gradients.
#[allow(clippy::too_many_arguments)]
fn one_shard<M, S, F>(
    device: usize,
    model: ReplicaOf<'_, M>,
    ad: &Device,
    state: &mut S,
    (x, y): (&[f32], &[f32]),
    n: usize,
    shape: BatchShape,
    loss: &F,
) -> Shard
where
    M: Module,
    F: Fn(&mut S, &M, Tensor<4>, Tensor<4>) -> (Tensor<1>, Vec<(String, f64)>),
{
    let t = Instant::now();
    let p = shape.side;
    let forked;
    let replica = match model {
        ReplicaOf::Fork(m) => {
            forked = m.fork(ad);
            &forked
        }
        ReplicaOf::Master(m) => m,
    };
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [n, 1, p, p]), ad);
    let y = Tensor::<4>::from_data(TensorData::new(y.to_vec(), [n, 1, p, p]), ad);
    let (l, terms) = loss(state, replica, x, y);
    let value = l.clone().into_scalar::<f32>() as f64;
    let scaled = l.mul_scalar(n as f64 / shape.batch as f64);
    let grads = GradientsParams::from_grads(scaled.backward(), replica);
    Shard {
        device,
        grads,
        loss: value,
        terms,
        samples: n,
        seconds: t.elapsed().as_secs_f64(),
    }
}

/// Forward and backward of each device's share of `batch` = (inputs, targets), [B, 1, P, P]
/// row-major, concurrently: device i (autodiff device `ads[i]`) forks `model`, takes the next
/// `counts[i]` samples and calls `loss(&mut states[i], &replica, x, y)` (a state holds what a
/// device needs of its own, e.g. a frozen classifier there). Device 0 works on the calling
/// thread, every other on a thread of its own; with `first_alone`, device 0 computes with
/// `model` itself and finishes before the others fork it (the first step: lazily initialised
/// weights are then drawn on device 0 in forward order, as a one-device run draws them, where
/// a fork would draw them in field order). Devices with no sample are skipped.
#[allow(clippy::too_many_arguments)]
pub fn shard_grads<M, S, F>(
    model: &M,
    ads: &[Device],
    states: &mut [S],
    counts: &[usize],
    (xs, ys): (&[f32], &[f32]),
    shape: BatchShape,
    first_alone: bool,
    loss: &F,
) -> Vec<Shard>
where
    M: Module,
    S: Send,
    F: Fn(&mut S, &M, Tensor<4>, Tensor<4>) -> (Tensor<1>, Vec<(String, f64)>) + Sync,
{
    let pp = shape.side * shape.side;
    let mut starts = Vec::with_capacity(counts.len());
    let mut at = 0usize;
    for &n in counts {
        starts.push(at);
        at += n;
    }
    let part = |i: usize| {
        let r = starts[i] * pp..(starts[i] + counts[i]) * pp;
        (&xs[r.clone()], &ys[r])
    };
    let (first_state, rest_states) = match states.split_first_mut() {
        Some(v) => v,
        None => return Vec::new(),
    };
    let first = |state: &mut S| {
        (counts[0] > 0).then(|| {
            one_shard(
                0,
                if first_alone {
                    ReplicaOf::Master(model)
                } else {
                    ReplicaOf::Fork(model.clone())
                },
                &ads[0],
                state,
                part(0),
                counts[0],
                shape,
                loss,
            )
        })
    };
    let mut out = Vec::with_capacity(ads.len());
    let early = if first_alone {
        first(&mut *first_state)
    } else {
        None
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = rest_states
            .iter_mut()
            .enumerate()
            .map(|(j, state)| (j + 1, state))
            .filter(|(i, _)| counts[*i] > 0)
            .map(|(i, state)| {
                let (replica, ad, data) = (model.clone(), &ads[i], part(i));
                scope.spawn(move || {
                    let replica = ReplicaOf::Fork(replica);
                    one_shard(i, replica, ad, state, data, counts[i], shape, loss)
                })
            })
            .collect();
        let mine = if first_alone {
            early
        } else {
            first(&mut *first_state)
        };
        out.extend(mine);
        for h in handles {
            out.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
    });
    out
}

/// One optimiser step with the shards' gradients, summed on `first` (the first device, where
/// `model`, the master copy, lives).
pub fn step_on_first<M: Module>(
    optim: &mut ModuleOptimizer,
    lr: f64,
    model: M,
    shards: Vec<Shard>,
    first: &Device,
) -> M {
    let grads = MultiGradientsParams {
        grads: shards
            .into_iter()
            .map(|s| (s.grads, first.clone()))
            .collect(),
    };
    optim.step_multi(lr, model, grads)
}

/// The batch's loss and terms from the shards' (each weighted by its samples).
pub fn combine_losses(shards: &[Shard]) -> (f64, Vec<(String, f64)>) {
    let total: usize = shards.iter().map(|s| s.samples).sum::<usize>().max(1);
    let w = |s: &Shard| s.samples as f64 / total as f64;
    let loss = shards.iter().map(|s| w(s) * s.loss).sum();
    let mut terms: Vec<(String, f64)> = Vec::new();
    for s in shards {
        for (k, (name, v)) in s.terms.iter().enumerate() {
            match terms.get_mut(k) {
                Some((_, acc)) => *acc += w(s) * v,
                None => terms.push((name.clone(), w(s) * v)),
            }
        }
    }
    (loss, terms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_by_weight() {
        assert_eq!(split_batch(4, &[1.0, 1.0]), vec![2, 2]);
        assert_eq!(split_batch(5, &[1.0, 1.0]), vec![3, 2]);
        assert_eq!(split_batch(8, &[1.0, 3.0]), vec![2, 6]);
        assert_eq!(split_batch(4, &[1.0, 1.0, 1.0]), vec![2, 1, 1]);
        assert_eq!(split_batch(1, &[1.0, 1.0]), vec![1, 0]);
        assert_eq!(split_batch(7, &[2.0, 1.0, 1.0]).iter().sum::<usize>(), 7);
    }

    #[test]
    fn entries_parse_and_print() {
        let e: DeviceEntry = "gpu@3".parse().unwrap();
        assert_eq!(e.spec, DeviceSpec::Local(DeviceChoice::Gpu));
        assert_eq!(e.weight, 3.0);
        assert_eq!(e.to_string(), "gpu@3");
        let r: DeviceEntry = "ws://h:3000/1".parse().unwrap();
        assert_eq!(r.to_string(), "ws://h:3000/1");
        assert!(
            "gpu@-1"
                .parse::<DeviceEntry>()
                .unwrap_err()
                .contains("positive")
        );
        assert!("tpu".parse::<DeviceEntry>().unwrap_err().contains("tpu"));
        assert_eq!(parse_list("cpu, gpu@2").unwrap().len(), 2);
    }
}
