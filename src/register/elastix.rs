//! elastix (the Debian package's command-line tool) as an outside reference for registration:
//! the same pair, metric (Mattes mutual information, 32 bins) and pyramid (3 levels), rigid
//! (`EulerTransform`) or rigid then affine, its result read back as an [`Affine`] so its target
//! registration error is measured exactly as ours is. Used by `bench register --against
//! elastix` and the real-anatomy tests; never by the app.

use crate::volume::Affine;
use std::path::Path;
use std::process::Command;

/// What elastix found, and how long it took (wall clock, both stages).
#[derive(Clone, Debug)]
pub struct ElastixResult {
    /// Fixed-to-moving, LPS (ITK's convention, as ours).
    pub transform: Affine,
    /// Seconds of the elastix process(es).
    pub seconds: f64,
    /// `elastix --version`.
    pub version: String,
}

/// Whether an `elastix` executable is on the PATH.
pub fn available() -> bool {
    Command::new("elastix")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn parameters(transform: &str, iterations: usize) -> String {
    format!(
        r#"(FixedInternalImagePixelType "float")
(MovingInternalImagePixelType "float")
(FixedImageDimension 3)
(MovingImageDimension 3)
(UseDirectionCosines "true")
(Registration "MultiResolutionRegistration")
(Interpolator "BSplineInterpolator")
(ResampleInterpolator "FinalBSplineInterpolator")
(Resampler "DefaultResampler")
(FixedImagePyramid "FixedSmoothingImagePyramid")
(MovingImagePyramid "MovingSmoothingImagePyramid")
(Optimizer "AdaptiveStochasticGradientDescent")
(Transform "{transform}")
(Metric "AdvancedMattesMutualInformation")
(NumberOfHistogramBins 32)
(AutomaticScalesEstimation "true")
(AutomaticTransformInitialization "true")
(AutomaticTransformInitializationMethod "CenterOfGravity")
(HowToCombineTransforms "Compose")
(NumberOfResolutions 3)
(MaximumNumberOfIterations {iterations})
(ImageSampler "RandomCoordinate")
(NumberOfSpatialSamples 4096)
(NewSamplesEveryIteration "true")
(BSplineInterpolationOrder 1)
(FinalBSplineInterpolationOrder 3)
(DefaultPixelValue 0)
(WriteResultImage "false")
(ResultImageFormat "nii")
"#
    )
}

/// Register `moving` onto `fixed` (image files elastix reads: NIfTI, MetaImage) in `work`,
/// rigid, then affine when `affine`.
pub fn register(
    fixed: &Path,
    moving: &Path,
    affine: bool,
    work: &Path,
) -> Result<ElastixResult, String> {
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut cmd = Command::new("elastix");
    cmd.arg("-f")
        .arg(fixed)
        .arg("-m")
        .arg(moving)
        .arg("-out")
        .arg(work);
    let mut files = vec![("rigid.txt", parameters("EulerTransform", 500))];
    if affine {
        files.push(("affine.txt", parameters("AffineTransform", 500)));
    }
    for (name, text) in &files {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))?;
        cmd.arg("-p").arg(&p);
    }
    let t = std::time::Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run elastix: {e}"))?;
    let seconds = t.elapsed().as_secs_f64();
    if !out.status.success() {
        let log = std::fs::read_to_string(work.join("elastix.log")).unwrap_or_default();
        let why = log
            .lines()
            .rev()
            .find(|l| l.contains("ERROR") || l.contains("rror"))
            .unwrap_or("see elastix.log");
        return Err(format!("elastix failed ({}): {why}", out.status));
    }
    let mut transform = Affine::identity([0.0; 3]);
    for i in 0..files.len() {
        let p = work.join(format!("TransformParameters.{i}.txt"));
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let stage = parse_transform(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        // Composed (HowToCombineTransforms "Compose"): T(x) = T_current(T_initial(x)), the
        // earlier stage applied first.
        transform = if i == 0 {
            stage
        } else {
            compose(&stage, &transform)
        };
    }
    let version = Command::new("elastix")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Ok(ElastixResult {
        transform,
        seconds,
        version,
    })
}

/// `a(b(x))` as one affine (about `b`'s centre).
fn compose(a: &Affine, b: &Affine) -> Affine {
    let m = crate::volume::transform::mul3(&a.matrix, &b.matrix);
    // x -> a(b(x)); take the translation from where the origin of b's centre frame lands.
    let c = b.center;
    let bc = b.apply(c);
    let abc = a.apply(bc);
    Affine {
        matrix: m,
        translation: [abc[0] - c[0], abc[1] - c[1], abc[2] - c[2]],
        center: c,
    }
}

fn numbers(text: &str, key: &str) -> Option<Vec<f64>> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("({key} ")))?;
    let inner = line.trim().trim_start_matches('(').trim_end_matches(')');
    inner
        .split_whitespace()
        .skip(1)
        .map(|v| v.trim_matches('"').parse::<f64>().ok())
        .collect()
}

fn word(text: &str, key: &str) -> Option<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("({key} ")))?;
    Some(line.split('"').nth(1)?.to_string())
}

/// One `TransformParameters.N.txt` (Euler or affine) as an [`Affine`].
pub fn parse_transform(text: &str) -> Result<Affine, String> {
    let kind = word(text, "Transform").ok_or("no (Transform ...)")?;
    let p = numbers(text, "TransformParameters").ok_or("no (TransformParameters ...)")?;
    let c = numbers(text, "CenterOfRotationPoint").ok_or("no (CenterOfRotationPoint ...)")?;
    if c.len() != 3 {
        return Err(format!(
            "CenterOfRotationPoint has {} numbers, not 3",
            c.len()
        ));
    }
    let center = [c[0], c[1], c[2]];
    match (kind.as_str(), p.len()) {
        ("EulerTransform", 6) => {
            let zyx = word(text, "ComputeZYX").is_some_and(|v| v == "true");
            let (sx, cx) = p[0].sin_cos();
            let (sy, cy) = p[1].sin_cos();
            let (sz, cz) = p[2].sin_cos();
            let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
            let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
            let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
            use crate::volume::transform::mul3;
            // ITK's Euler3DTransform: Rz Rx Ry, or Rz Ry Rx with ComputeZYX.
            let m = if zyx {
                mul3(&rz, &mul3(&ry, &rx))
            } else {
                mul3(&rz, &mul3(&rx, &ry))
            };
            Ok(Affine {
                matrix: m,
                translation: [p[3], p[4], p[5]],
                center,
            })
        }
        ("AffineTransform", 12) => Ok(Affine::from_itk_parameters(&p, center)),
        (k, n) => Err(format!("{k} with {n} parameters is not read here")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euler_parameters_read_as_itk_defines_them() {
        let text = "(Transform \"EulerTransform\")\n(NumberOfParameters 6)\n(TransformParameters 0.1 -0.2 0.3 1.5 -2.0 4.0)\n(CenterOfRotationPoint 10.0 20.0 -5.0)\n(ComputeZYX \"false\")\n";
        let a = parse_transform(text).unwrap();
        // Rz Rx Ry, checked on one entry: m[2][0] = -cos(x) sin(y).
        assert!((a.matrix[2][0] - (-(0.1f64).cos() * (-0.2f64).sin())).abs() < 1e-12);
        assert_eq!(a.center, [10.0, 20.0, -5.0]);
        // The centre maps to itself plus the translation.
        let c = a.apply([10.0, 20.0, -5.0]);
        assert!(
            (c[0] - 11.5).abs() < 1e-9 && (c[1] - 18.0).abs() < 1e-9 && (c[2] + 1.0).abs() < 1e-9
        );
        assert!(parse_transform("(Transform \"BSplineTransform\")\n(TransformParameters 1)\n(CenterOfRotationPoint 0 0 0)").is_err());
    }

    #[test]
    fn composing_applies_the_later_stage_first() {
        let a = Affine::rigid([0.1, 0.0, 0.2], [1.0, 2.0, 3.0], [5.0, 0.0, 0.0]);
        let b = Affine::rigid([0.0, -0.3, 0.0], [-4.0, 0.5, 1.0], [0.0, 7.0, 1.0]);
        let ab = compose(&a, &b);
        for x in [[0.0, 0.0, 0.0], [10.0, -3.0, 2.0]] {
            let want = a.apply(b.apply(x));
            let got = ab.apply(x);
            for k in 0..3 {
                assert!((want[k] - got[k]).abs() < 1e-9);
            }
        }
    }
}
