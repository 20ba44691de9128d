//! Shared test helpers: the public sample files (fetched once from PyPI, cached under target/)
//! and the reference values extracted from them with pydicom and nibabel.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Versions of the PyPI packages whose bundled test files form the conformance set.
pub const WHEELS: [&str; 2] = ["pydicom==3.0.2", "nibabel==5.4.2"];

fn fetch(root: &Path) -> Result<(), String> {
    let wheels = root.join("wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| e.to_string())?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let st = Command::new(&python)
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
        .arg(&wheels)
        .args(WHEELS)
        .status()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    if !st.success() {
        return Err(format!("pip download {WHEELS:?} failed"));
    }
    for entry in std::fs::read_dir(&wheels).map_err(|e| e.to_string())? {
        let p = entry.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|e| e == "whl") {
            let st = Command::new(&python)
                .args(["-m", "zipfile", "-e"])
                .arg(&p)
                .arg(root)
                .status()
                .map_err(|e| e.to_string())?;
            if !st.success() {
                return Err(format!("cannot unpack {}", p.display()));
            }
        }
    }
    Ok(())
}

/// Folder holding `pydicom/data/test_files` and `nibabel/tests/data`.
///
/// `SYNTHSCOPE_SAMPLES` points at an existing copy; otherwise the wheels are downloaded with
/// pip into `target/public-samples` on first use.
pub fn samples_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::var_os("SYNTHSCOPE_SAMPLES")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/public-samples"));
        let ready = root.join("pydicom/data/test_files/MR_small.dcm").exists() && root.join("nibabel/tests/data/anatomical.nii").exists();
        if !ready
            && let Err(e) = fetch(&root) {
                panic!("the public sample files are missing and could not be fetched: {e}. Install python3 with pip, or set SYNTHSCOPE_SAMPLES to a folder holding the unpacked {WHEELS:?} wheels");
            }
        root
    })
}

/// pydicom's bundled test files.
pub fn pydicom_file(name: &str) -> PathBuf {
    samples_root().join("pydicom/data/test_files").join(name)
}

/// nibabel's bundled test files.
pub fn nibabel_file(name: &str) -> PathBuf {
    samples_root().join("nibabel/tests/data").join(name)
}

/// Reference values written by tests/tools/make_expected.py.
pub fn expected() -> serde_json::Value {
    let text = include_str!("../fixtures/public_expected.json");
    serde_json::from_str(text).expect("fixture parses")
}

/// Python packages the reference checks use (pinned).
pub const REFERENCE_PACKAGES: [&str; 5] = [
    "SimpleITK==2.5.7",
    "scikit-image==0.26.0",
    "pydicom==3.0.2",
    "safetensors==0.8.0",
    "scipy==1.17.1",
];

/// A Python with SimpleITK, scikit-image and pydicom (the outside references for transforms,
/// resampling, metrics and exported DICOM), in a venv under target/ created on first use. `SYNTHSCOPE_SITK_PYTHON` points
/// at an existing one.
pub fn sitk_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("SYNTHSCOPE_SITK_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-sitk");
        let py = venv.join("bin/python");
        let ok = |py: &Path| {
            Command::new(py)
                .args([
                    "-c",
                    "import SimpleITK, skimage, pydicom, safetensors, scipy",
                ])
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !ok(&py) {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let st = Command::new(&python)
                .args(["-m", "venv"])
                .arg(&venv)
                .status();
            assert!(
                st.map(|s| s.success()).unwrap_or(false),
                "cannot create a venv with {python} -m venv (install python3-venv)"
            );
            let st = Command::new(&py)
                .args(["-m", "pip", "install", "--quiet"])
                .args(REFERENCE_PACKAGES)
                .status();
            assert!(
                st.map(|s| s.success()).unwrap_or(false),
                "pip install {REFERENCE_PACKAGES:?} failed"
            );
        }
        py
    })
}

/// Run a command to completion; panics with its standard error unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The synthscope binary as a command.
pub fn synthscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscope"))
}

/// A study over phantom patients written by our own NIfTI exporter: each patient's CT (real)
/// and a blurred copy (standing in for a synthetic CT), 3 head slices per case.
pub fn phantom_study(dir: &Path, patients: usize, design: synthscope::study::Design) -> PathBuf {
    use synthscope::io::nifti::write_nifti;
    use synthscope::io::phantom::{PhantomConfig, phantom_patient};
    use synthscope::study::{self, Study, StudyCase, Truth};
    let mut cases = Vec::new();
    for k in 0..patients {
        let (ct, _) = phantom_patient(&PhantomConfig::small(), k);
        let [nx, ny, _] = ct.geometry.dims;
        let mut blurred = ct.clone();
        for (z, plane) in blurred.data.chunks_mut(nx * ny).enumerate() {
            let src = &ct.data[z * nx * ny..(z + 1) * nx * ny];
            for y in 1..ny - 1 {
                for x in 1..nx - 1 {
                    let mut s = 0.0;
                    for dy in 0..3 {
                        for dx in 0..3 {
                            s += src[(x + dx - 1) + nx * (y + dy - 1)];
                        }
                    }
                    plane[x + nx * y] = s / 9.0;
                }
            }
        }
        write_nifti(&ct, &dir.join(format!("p{k}_ct.nii.gz"))).unwrap();
        write_nifti(&blurred, &dir.join(format!("p{k}_synth.nii.gz"))).unwrap();
        cases.push(StudyCase {
            id: format!("p{k}-real"),
            path: format!("p{k}_ct.nii.gz").into(),
            truth: Truth::Real,
            source: "scanner".into(),
            slices: Vec::new(),
            pair: None,
            modality: None,
            subject: None,
            abnormal: None,
        });
        cases.push(StudyCase {
            id: format!("p{k}-synth"),
            path: format!("p{k}_synth.nii.gz").into(),
            truth: Truth::Synthetic,
            source: if k % 2 == 0 { "model A" } else { "model B" }.into(),
            slices: Vec::new(),
            pair: (design == synthscope::study::Design::Pair).then(|| format!("p{k}-real")),
            modality: None,
            subject: None,
            abnormal: None,
        });
    }
    let s = Study {
        version: study::STUDY_VERSION,
        name: "test-study".into(),
        design,
        allow_back: true,
        time_limit_s: None,
        slices_per_case: 3,
        seed: 5,
        window: Default::default(),
        questions: Default::default(),
        rating: Default::default(),
        view: None,
        test_pattern: false,
        cases,
    };
    let file = dir.join("study.toml");
    s.write(&file).unwrap();
    file
}

/// The nilearn wheel whose `datasets/data` holds the MNI ICBM152 2009 T1 and tissue maps.
pub const NILEARN_WHEEL: &str = "nilearn==0.14.1";

/// One of the MNI ICBM152 2009c maps nilearn ships (`kind`: "t1", "gm" or "wm"), fetched once
/// with pip into `target/public-samples/nilearn` (`SYNTHSCOPE_NILEARN` points at an unpacked
/// `nilearn/datasets/data` instead).
pub fn mni152(kind: &str) -> PathBuf {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    let data = DATA.get_or_init(|| {
        if let Some(p) = std::env::var_os("SYNTHSCOPE_NILEARN") {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/public-samples/nilearn");
        let data = root.join("nilearn/datasets/data");
        if !data
            .join("mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz")
            .exists()
        {
            let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
            let wheels = root.join("wheels");
            let st = Command::new(&python)
                .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
                .arg(&wheels)
                .arg(NILEARN_WHEEL)
                .status();
            assert!(
                st.map(|s| s.success()).unwrap_or(false),
                "pip download {NILEARN_WHEEL} failed"
            );
            let wheel = std::fs::read_dir(&wheels)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "whl"))
                .expect("the nilearn wheel");
            let st = Command::new(&python)
                .args(["-m", "zipfile", "-e"])
                .arg(&wheel)
                .arg(&root)
                .status();
            assert!(
                st.map(|s| s.success()).unwrap_or(false),
                "cannot unpack {}",
                wheel.display()
            );
        }
        data
    });
    data.join(format!(
        "mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
    ))
}
