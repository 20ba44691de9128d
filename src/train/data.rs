//! Training data: registered (input, target) volume pairs, one per patient, normalised with the
//! synthesis contract (src/synth) and cut into axial slices; seeded patch sampling with
//! rotations by 90/180/270 degrees and flips.

use super::TrainError;
use super::config::{DataSource, TrainConfig};
use crate::io::phantom::{PhantomConfig, phantom_patient, phantom_patient_varied};
use crate::io::{Progress, load_paths};
use crate::model::Direction;
use crate::model::normalise::Normalisation;
use crate::volume::Affine;
use crate::volume::Volume;
use crate::volume::resample::resample;
use std::path::{Path, PathBuf};

/// One patient: the input and target modality on the input's grid, normalised to 0..1.
#[derive(Clone, Debug)]
pub struct Case {
    /// Patient name (folder name, or "phantom N").
    pub name: String,
    /// Slice size.
    pub nx: usize,
    /// Slice size.
    pub ny: usize,
    /// Slices.
    pub nz: usize,
    /// Input modality, 0..1.
    pub input: Vec<f32>,
    /// Target modality, 0..1.
    pub target: Vec<f32>,
    /// Head mask.
    pub mask: Vec<bool>,
    /// Target normalisation (to report errors in HU or MR units).
    pub target_norm: Normalisation,
    /// Slices with enough head to train on.
    pub slices: Vec<usize>,
}

/// A slice of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceRef {
    /// Case index.
    pub case: usize,
    /// Slice index.
    pub z: usize,
}

/// Cases and their split into training and validation slices.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Patients.
    pub cases: Vec<Case>,
    /// Training slices.
    pub train: Vec<SliceRef>,
    /// Validation slices.
    pub val: Vec<SliceRef>,
    /// How the split was made (by patient, or a slab of a single patient).
    pub split_note: String,
    /// Training batches streamed from a folder's index instead of `train` (then empty, and
    /// `cases` holds only the validation slices; see [`super::stream::StreamPlan`]).
    pub stream: Option<std::sync::Arc<super::stream::StreamPlan>>,
}

impl Case {
    /// A case from a CT and an MR on the same grid as each other (`ct` already resampled onto
    /// the MR grid or vice versa), with an optional head mask on that grid.
    pub fn from_pair(
        name: &str,
        ct: &Volume,
        mr: &Volume,
        mask: Option<&Volume>,
        direction: Direction,
    ) -> Result<Self, TrainError> {
        if ct.geometry.dims != mr.geometry.dims {
            return Err(TrainError::Config(format!(
                "{name}: CT {:?} and MR {:?} are on different grids",
                ct.geometry.dims, mr.geometry.dims
            )));
        }
        let [nx, ny, nz] = ct.geometry.dims;
        let (input, target, in_norm, target_norm) = match direction {
            Direction::MrToCt => (mr, ct, Normalisation::mr(mr), Normalisation::ct()),
            Direction::CtToMr => (ct, mr, Normalisation::ct(), Normalisation::mr(mr)),
            Direction::CtDenoise => {
                return Err(TrainError::Config(format!(
                    "{name}: CT denoising trains on (low-dose, normal-dose) CT pairs (data kind \"low_dose\"), not on a CT/MR pair"
                )));
            }
        };
        let mask: Vec<bool> = match mask {
            Some(m) => m.data.iter().map(|v| *v > 0.0).collect(),
            None => ct.data.iter().map(|v| *v > -500.0).collect(),
        };
        let plane = nx * ny;
        let slices: Vec<usize> = (0..nz)
            .filter(|z| {
                let inside = mask[z * plane..(z + 1) * plane]
                    .iter()
                    .filter(|m| **m)
                    .count();
                inside * 10 >= plane
            })
            .collect();
        if slices.is_empty() {
            return Err(TrainError::Config(format!(
                "{name}: no slice has at least 10% head (CT above -500 HU or the mask)"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            nx,
            ny,
            nz,
            input: input.data.iter().map(|v| in_norm.forward(*v)).collect(),
            target: target
                .data
                .iter()
                .map(|v| target_norm.forward(*v))
                .collect(),
            mask,
            target_norm,
            slices,
        })
    }

    fn plane(&self, data: &[f32], z: usize) -> Vec<f32> {
        data[z * self.nx * self.ny..(z + 1) * self.nx * self.ny].to_vec()
    }

    /// (input, target, mask) of slice z, row-major nx x ny.
    pub fn slice(&self, z: usize) -> (Vec<f32>, Vec<f32>, Vec<bool>) {
        let p = self.nx * self.ny;
        (
            self.plane(&self.input, z),
            self.plane(&self.target, z),
            self.mask[z * p..(z + 1) * p].to_vec(),
        )
    }
}

/// The first file or folder in `dir` whose name (without extension) is `stem`, case-insensitive.
fn find_entry(dir: &Path, stem: &str) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries.into_iter().find(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        name == stem || name.split('.').next() == Some(stem)
    })
}

/// A patient's folder and its CT, MR and optional mask.
pub(super) type PatientFiles = (PathBuf, PathBuf, PathBuf, Option<PathBuf>);

/// Patient folders under `root` (in name order, the streamed index's own folder left out)
/// holding a `ct` and an `mr`, and perhaps a `mask`.
pub(super) fn patient_dirs(root: &Path) -> Result<Vec<PatientFiles>, TrainError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| TrainError::file(root, format!("cannot list the folder: {e}")))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n != ".synthscope-index"))
        .collect();
    dirs.sort();
    let out: Vec<_> = dirs
        .into_iter()
        .filter_map(|d| {
            let ct = find_entry(&d, "ct")?;
            let mr = find_entry(&d, "mr")?;
            let mask = find_entry(&d, "mask");
            Some((d, ct, mr, mask))
        })
        .collect();
    if out.is_empty() {
        return Err(TrainError::file(
            root,
            "no patient sub-folder holds both a `ct` and an `mr` (e.g. ct.nii.gz, mr.nii.gz)",
        ));
    }
    Ok(out)
}

/// The first volume under `path` (a NIfTI file or a DICOM file/folder).
fn load_one(path: &Path) -> Result<Volume, TrainError> {
    let out = load_paths(&[path.to_path_buf()], &Progress::default())?;
    out.volumes.into_iter().next().ok_or_else(|| {
        let why = out
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no image found".into());
        TrainError::file(path, why)
    })
}

/// A case from files: `target` is resampled onto the input's grid through world coordinates
/// (the pair must already be registered, as SynthRAD's are).
pub fn case_from_files(
    name: &str,
    ct: &Path,
    mr: &Path,
    mask: Option<&Path>,
    direction: Direction,
) -> Result<Case, TrainError> {
    let ct = load_one(ct)?;
    let mr = load_one(mr)?;
    let id = Affine::identity([0.0; 3]);
    let (ct, mr) = match direction {
        Direction::MrToCt => (resample(&ct, &mr.geometry, &id, -1000.0), mr),
        Direction::CtToMr | Direction::CtDenoise => {
            let mr = resample(&mr, &ct.geometry, &id, 0.0);
            (ct, mr)
        }
    };
    let mask = match mask {
        Some(p) => {
            let m = load_one(p)?;
            Some(resample(&m, &ct.geometry, &id, 0.0))
        }
        None => None,
    };
    Case::from_pair(name, &ct, &mr, mask.as_ref(), direction)
}

/// Every patient of a SynthRAD-style folder: one sub-folder per patient holding `ct` and `mr`
/// (NIfTI files such as `ct.nii.gz`, or DICOM folders named `ct`/`mr`) and an optional `mask`.
pub fn cases_from_folder(
    root: &Path,
    direction: Direction,
    progress: &Progress,
) -> Result<Vec<Case>, TrainError> {
    let patients = patient_dirs(root)?;
    progress.start("Loading patients", patients.len());
    let mut cases = Vec::new();
    for (dir, ct, mr, mask) in patients {
        progress.check()?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        cases.push(case_from_files(
            &name,
            &ct,
            &mr,
            mask.as_deref(),
            direction,
        )?);
        progress.step();
    }
    Ok(cases)
}

/// Phantom patients 0..n (see [`phantom_patient`]); `small` uses the test grids.
pub fn phantom_cases(n: usize, small: bool, direction: Direction) -> Result<Vec<Case>, TrainError> {
    patient_cases(n, small, direction, "phantom", phantom_patient)
}

/// Varied phantom patients 0..n (see [`phantom_patient_varied`]): different anatomy per patient.
pub fn varied_phantom_cases(
    n: usize,
    small: bool,
    direction: Direction,
) -> Result<Vec<Case>, TrainError> {
    patient_cases(
        n,
        small,
        direction,
        "varied phantom",
        phantom_patient_varied,
    )
}

/// Patients 0..n of `patient` (CT, MR) on the default or (`small`) the test grids, as cases
/// named "`label` k".
fn patient_cases(
    n: usize,
    small: bool,
    direction: Direction,
    label: &str,
    patient: impl Fn(&PhantomConfig, usize) -> (Volume, Volume),
) -> Result<Vec<Case>, TrainError> {
    let base = if small {
        PhantomConfig::small()
    } else {
        PhantomConfig::default()
    };
    (0..n.max(1))
        .map(|k| {
            let (ct, mr) = patient(&base, k);
            Case::from_pair(&format!("{label} {k}"), &ct, &mr, None, direction)
        })
        .collect()
}

/// A CT denoising case: `low` (low-dose CT, the input) and `normal` (its normal-dose target)
/// on one grid, both normalised as CT; the body is the normal dose above -500 HU.
pub fn denoise_case(name: &str, low: &Volume, normal: &Volume) -> Result<Case, TrainError> {
    if low.geometry.dims != normal.geometry.dims {
        return Err(TrainError::Config(format!(
            "{name}: low dose {:?} and normal dose {:?} are on different grids",
            low.geometry.dims, normal.geometry.dims
        )));
    }
    let [nx, ny, nz] = normal.geometry.dims;
    let norm = Normalisation::ct();
    let mask: Vec<bool> = normal.data.iter().map(|v| *v > -500.0).collect();
    let plane = nx * ny;
    let slices: Vec<usize> = (0..nz)
        .filter(|z| {
            mask[z * plane..(z + 1) * plane]
                .iter()
                .filter(|m| **m)
                .count()
                * 10
                >= plane
        })
        .collect();
    if slices.is_empty() {
        return Err(TrainError::Config(format!(
            "{name}: no slice has at least 10% body (CT above -500 HU)"
        )));
    }
    Ok(Case {
        name: name.to_string(),
        nx,
        ny,
        nz,
        input: low.data.iter().map(|v| norm.forward(*v)).collect(),
        target: normal.data.iter().map(|v| norm.forward(*v)).collect(),
        mask,
        target_norm: norm,
        slices,
    })
}

/// Low-dose phantom patients 0..n as denoising cases (see [`crate::synth::ldct`]).
pub fn low_dose_cases(
    n: usize,
    phantom: &crate::synth::ldct::LesionPhantomConfig,
    dose: &crate::synth::ldct::DoseConfig,
) -> Result<Vec<Case>, TrainError> {
    (0..n.max(1))
        .map(|k| {
            let p = crate::synth::ldct::lesion_patient(phantom, k)
                .imaged(dose)
                .map_err(|e| TrainError::Config(e.to_string()))?;
            denoise_case(&format!("lesion phantom {k}"), &p.low, &p.normal)
        })
        .collect()
}

/// Cases named by the config's data source (not `Loaded`, which the app supplies itself).
pub fn load_cases(cfg: &TrainConfig, progress: &Progress) -> Result<Vec<Case>, TrainError> {
    // Denoising with the phantom data choices: the low-dose lesion phantoms.
    if cfg.direction == Direction::CtDenoise
        && let DataSource::Demo { patients, .. } | DataSource::Varied { patients, .. } = &cfg.data
    {
        return low_dose_cases(*patients, &Default::default(), &Default::default());
    }
    match &cfg.data {
        DataSource::LowDose {
            patients,
            phantom,
            dose,
        } => low_dose_cases(*patients, phantom, dose),
        DataSource::Demo { patients, small } => phantom_cases(*patients, *small, cfg.direction),
        DataSource::Varied { patients, small } => {
            varied_phantom_cases(*patients, *small, cfg.direction)
        }
        DataSource::Folder { path } => cases_from_folder(path, cfg.direction, progress),
        DataSource::Pair { ct, mr, mask } => Ok(vec![case_from_files(
            "pair",
            ct,
            mr,
            mask.as_deref(),
            cfg.direction,
        )?]),
        DataSource::Loaded { description } => Err(TrainError::Config(format!(
            "this run trained on a pair loaded in the app ({description}); to repeat it, \
             save the pair and name it with data = {{ kind = \"pair\", ct = …, mr = … }}"
        ))),
    }
}

impl Dataset {
    /// Split `cases` by patient: the last `round(n * fraction)` patients (at least one, at most
    /// n - 1) validate. A single patient is split by slab: its upper `fraction` of head slices
    /// validate.
    pub fn split(cases: Vec<Case>, fraction: f64) -> Self {
        let slices: Vec<&[usize]> = cases.iter().map(|c| c.slices.as_slice()).collect();
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        let (train, val, split_note) = split_refs(&slices, &names, fraction);
        Self {
            cases,
            train,
            val,
            split_note,
            stream: None,
        }
    }

    /// Training slices per epoch pass: in memory or streamed.
    pub fn train_len(&self) -> usize {
        self.stream
            .as_ref()
            .map_or(self.train.len(), |s| s.train.len())
    }
}

/// The split rule of [`Dataset::split`] over patients given by their head slices and names:
/// (training, validation, note).
pub(super) fn split_refs(
    slices: &[&[usize]],
    names: &[&str],
    fraction: f64,
) -> (Vec<SliceRef>, Vec<SliceRef>, String) {
    let n = slices.len();
    let mut train = Vec::new();
    let mut val = Vec::new();
    let split_note = if n >= 2 {
        let n_val = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        for (i, c) in slices.iter().enumerate() {
            let dst = if i >= n - n_val { &mut val } else { &mut train };
            dst.extend(c.iter().map(|&z| SliceRef { case: i, z }));
        }
        format!(
            "by patient: {} training, {} validation ({})",
            n - n_val,
            n_val,
            names[n - n_val..].join(", ")
        )
    } else {
        let s = slices[0];
        let n_val = ((s.len() as f64 * fraction).round() as usize).clamp(1, s.len().max(2) - 1);
        let cut = s.len() - n_val;
        train.extend(s[..cut].iter().map(|&z| SliceRef { case: 0, z }));
        val.extend(s[cut..].iter().map(|&z| SliceRef { case: 0, z }));
        format!(
            "one patient: split by slab, slices {}..={} validate (not an independent test)",
            s[cut],
            s[s.len() - 1]
        )
    };
    (train, val, split_note)
}

/// The dataset `cfg` names, split for training: in memory, or for a `folder` source that
/// streams (see [`TrainConfig::streams`]) its index with a few validation slices in memory.
pub fn load_dataset(cfg: &TrainConfig, progress: &Progress) -> Result<Dataset, TrainError> {
    if let DataSource::Folder { path } = &cfg.data
        && cfg.streams(patient_dirs(path)?.len())
    {
        return super::stream::streamed_dataset(cfg, path, progress);
    }
    Ok(Dataset::split(
        load_cases(cfg, progress)?,
        cfg.validation_fraction,
    ))
}

/// SplitMix64: small, seeded, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The generator's state, to continue the same stream later (see [`Self::from_state`]).
    pub fn state(&self) -> u64 {
        self.0
    }

    /// A generator continuing from a saved [`Self::state`].
    pub fn from_state(state: u64) -> Self {
        Self(state)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// A p x p crop of an nx x ny image at (ox, oy) (may extend past the image: zero padding),
/// rotated by `rot` quarter turns and mirrored left-right when `flip`.
pub fn crop(
    img: &[f32],
    (nx, ny): (usize, usize),
    (ox, oy): (i64, i64),
    p: usize,
    rot: usize,
    flip: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; p * p];
    let last = p as i64 - 1;
    for v in 0..p as i64 {
        for u in 0..p as i64 {
            // Output pixel (u, v) reads source crop pixel (a, b).
            let (mut a, b) = match rot % 4 {
                0 => (u, v),
                1 => (v, last - u),
                2 => (last - u, last - v),
                _ => (last - v, u),
            };
            if flip {
                a = last - a;
            }
            let (x, y) = (ox + a, oy + b);
            if x >= 0 && y >= 0 && (x as usize) < nx && (y as usize) < ny {
                out[(u + v * p as i64) as usize] = img[x as usize + nx * y as usize];
            }
        }
    }
    out
}

/// Crop origin for a p x p window on an n-pixel axis: random when the image is larger, centred
/// (negative: padding) when it is smaller.
pub fn origin(n: usize, p: usize, rng: &mut Rng) -> i64 {
    if n > p {
        rng.below(n - p + 1) as i64
    } else {
        -(((p - n) / 2) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_rotations_compose_to_identity() {
        let img: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let once = crop(&img, (4, 4), (0, 0), 4, 1, false);
        assert_ne!(once, img);
        let mut r = img.clone();
        for _ in 0..4 {
            r = crop(&r, (4, 4), (0, 0), 4, 1, false);
        }
        assert_eq!(r, img);
        let f = crop(&img, (4, 4), (0, 0), 4, 0, true);
        assert_eq!(f[0], 3.0);
        assert_eq!(crop(&f, (4, 4), (0, 0), 4, 0, true), img);
        // Padding: a 2x2 image centred in 4x4.
        let small = [1.0, 2.0, 3.0, 4.0];
        let p = crop(&small, (2, 2), (-1, -1), 4, 0, false);
        assert_eq!(p[5], 1.0);
        assert_eq!(p[0], 0.0);
    }

    #[test]
    fn rng_is_seeded() {
        let a: Vec<u64> = {
            let mut r = Rng::new(3);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(3);
        assert_eq!(a, (0..5).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(a[0], Rng::new(4).next_u64());
    }
}
