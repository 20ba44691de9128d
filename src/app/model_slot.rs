//! Networks the panels share. While a panel's job runs, the network is out on its worker (see
//! [`ModelJob`]); what describes it stays here until it comes back.

use super::jobs::{JobError, ModelJob, Wake};
use crate::gpu;
use crate::io::Progress;
use crate::model::Direction;
use crate::model::checkpoint::{AnyModel, CheckpointMeta, ModelSpec};
use std::path::{Path, PathBuf};

/// A network that travels to workers and back, with what describes it (`I`).
pub struct Slot<I> {
    /// The network and its description when home (None: none loaded, or out on a worker).
    pub loaded: Option<(AnyModel, I)>,
    /// The description of the network out on a worker.
    pending: Option<I>,
}

impl<I> Default for Slot<I> {
    fn default() -> Self {
        Self {
            loaded: None,
            pending: None,
        }
    }
}

impl<I> Slot<I> {
    /// Make `model` the network.
    pub fn set(&mut self, model: AnyModel, info: I) {
        self.loaded = Some((model, info));
    }

    /// The description of the network, and whether it is home.
    pub fn info(&self) -> Option<(&I, bool)> {
        match (&self.loaded, &self.pending) {
            (Some((_, i)), _) => Some((i, true)),
            (None, Some(i)) => Some((i, false)),
            (None, None) => None,
        }
    }

    /// Whether there is no network, neither home nor on a worker.
    pub fn is_none(&self) -> bool {
        self.loaded.is_none() && self.pending.is_none()
    }

    /// Send the network to a worker running `work` on it; None when it is not home. When no
    /// thread starts the network stays home.
    pub fn run<T: Send + 'static>(
        &mut self,
        name: &str,
        wake: Wake,
        work: impl FnOnce(&AnyModel, &Progress) -> T + Send + 'static,
    ) -> Option<Result<ModelJob<T>, JobError>> {
        let (model, info) = self.loaded.take()?;
        self.pending = Some(info);
        Some(ModelJob::with_model(name, model, wake, work).map_err(|n| {
            self.come_back(*n.input);
            n.error
        }))
    }

    /// A job's answer: the network is home again (unless it died with its worker).
    pub fn returned<T>(&mut self, r: Result<(T, AnyModel), JobError>) -> Result<T, JobError> {
        match r {
            Ok((t, model)) => {
                self.come_back(model);
                Ok(t)
            }
            Err(e) => {
                self.pending = None;
                Err(e)
            }
        }
    }

    fn come_back(&mut self, model: AnyModel) {
        if let Some(info) = self.pending.take() {
            self.loaded = Some((model, info));
        }
    }
}

/// What describes a synthesis network: its checkpoint, file and layer names.
pub struct Checkpoint {
    /// The checkpoint's description.
    pub meta: CheckpointMeta,
    /// Where it came from.
    pub path: PathBuf,
    /// Layer names of the network.
    pub layers: Vec<String>,
}

/// The synthesis network the Synthesis, Feature-map and Grad-CAM panels share.
pub type ModelSlot = Slot<Checkpoint>;

impl Slot<Checkpoint> {
    /// Make `m` (a network, its description and file) the synthesis network.
    fn set_loaded(&mut self, (model, meta, path): (AnyModel, CheckpointMeta, PathBuf)) {
        let layers = model.layer_names();
        self.set(model, Checkpoint { meta, path, layers });
    }

    /// Load the demo network embedded in the binary (see `assets/demo-model`).
    pub fn load_demo(&mut self) -> Result<(), String> {
        let g = gpu::compute().map_err(|e| format!("Demo model: {e}"))?;
        let m = crate::model::demo::load_demo_model(&g.device)
            .map_err(|e| format!("Demo model: {e}"))?;
        self.set_loaded(m);
        Ok(())
    }

    /// Load a synthesis checkpoint (either file of the .json/.bpk pair) onto the compute device.
    pub fn load(&mut self, path: &Path) -> Result<(), String> {
        let device = gpu::compute_device().map_err(|e| e.to_string())?;
        match crate::model::checkpoint::load(path, &device) {
            Ok((m, meta)) if !matches!(m, AnyModel::Classifier(_)) => {
                self.set_loaded((m, meta, path.to_path_buf()));
                Ok(())
            }
            Ok(_) => Err(format!(
                "{}: a classifier cannot synthesise images",
                path.display()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Direction of the network at home.
    pub fn direction(&self) -> Option<Direction> {
        self.loaded.as_ref().and_then(|(_, c)| match &c.meta.model {
            ModelSpec::Unet(c) => Some(c.direction),
            ModelSpec::Drunet(c) => Some(c.direction),
            ModelSpec::ResnetGenerator(_) => {
                Some(crate::model::cyclegan::generator_direction(&c.meta))
            }
            ModelSpec::Classifier(_) => None,
        })
    }

    /// Layer names of the network, home or out.
    pub fn layers(&self) -> &[String] {
        self.info().map(|(c, _)| &c.layers[..]).unwrap_or_default()
    }

    /// Says so, and returns true, when no network is loaded (nor out on a worker).
    pub fn notice_ui(&self, ui: &mut egui::Ui) -> bool {
        let none = self.is_none();
        if none {
            ui.colored_label(
                egui::Color32::YELLOW,
                "No model loaded: load a checkpoint in the Synthesis panel.",
            );
        }
        none
    }
}
