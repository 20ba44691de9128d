//! Grad-CAM known answer: a classifier trained (burn autodiff, Adam, on the shared device) on
//! images whose only evidence lies in the top-left quadrant must look there.

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Int, Tensor, TensorData};
use synthscope::analysis::gradcam;
use synthscope::model::ClassifierConfig;
use synthscope::volume::Modality;

const N: usize = 64;

/// Noise everywhere; class 1 adds a bright 12x12 square somewhere inside the top-left quadrant.
fn batch(seed: u64, size: usize) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) as f32
    };
    let mut x = Vec::with_capacity(size * N * N);
    let mut y = Vec::with_capacity(size);
    for i in 0..size {
        let label = (i % 2) as i64;
        let mut img: Vec<f32> = (0..N * N).map(|_| rnd() - 0.5).collect();
        if label == 1 {
            let (ox, oy) = ((rnd() * 20.0) as usize, (rnd() * 20.0) as usize);
            for yy in oy..oy + 12 {
                for xx in ox..ox + 12 {
                    img[xx + N * yy] += 1.5;
                }
            }
        }
        x.extend(img);
        y.push(label);
    }
    (x, y)
}

#[test]
fn gradcam_finds_the_only_informative_quadrant() {
    let plain = synthscope::gpu::compute_device().expect("compute device");
    let dev = plain.clone().autodiff();
    let mut model = ClassifierConfig::new().with_base_width(8).init(&dev);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&dev);
    let t = std::time::Instant::now();
    let mut last = f32::NAN;
    for step in 0..60u64 {
        let (x, y) = batch(step, 16);
        let x = Tensor::<4>::from_data(TensorData::new(x, [16, 1, N, N]), &dev);
        let y = Tensor::<1, Int>::from_data(TensorData::new(y, [16]), &dev);
        let loss = loss_fn.forward(model.forward(x), y);
        last = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(5e-3, model, grads);
    }
    eprintln!(
        "60 training steps in {:.1} s, final loss {last:.3}",
        t.elapsed().as_secs_f64()
    );
    let model = model.valid();
    // Class-1 test images: the heatmap of class 1 must sit in the top-left quadrant.
    let (x, y) = batch(999, 8);
    let x = Tensor::<4>::from_data(TensorData::new(x, [8, 1, N, N]), &plain);
    // Stage 1 (H/4): fine enough to localise, deep enough to have learned the square.
    let cam = gradcam(&model, x, 1, 1).into_data();
    let cam = cam.as_slice::<f32>().unwrap();
    let mut inside = 0.0;
    let mut outside = 0.0;
    for (b, label) in y.iter().enumerate() {
        if *label != 1 {
            continue;
        }
        for yy in 0..N {
            for xx in 0..N {
                let v = cam[b * N * N + yy * N + xx] as f64;
                if xx < N / 2 && yy < N / 2 {
                    inside += v
                } else {
                    outside += v / 3.0
                }
            }
        }
    }
    eprintln!("mean Grad-CAM per quadrant: top-left {inside:.1}, others {outside:.1}");
    assert!(last < 0.5, "the classifier did not learn (loss {last})");
    assert!(
        inside > 2.0 * outside,
        "top-left {inside} vs others {outside}"
    );
}

#[test]
fn synthesis_gradcam_maps_a_region_and_follows_it() {
    use synthscope::analysis::gradcam::{CamTarget, slice_gradcam};
    use synthscope::io::phantom::{PhantomConfig, phantom_patient};
    use synthscope::model::Direction;
    let d = synthscope::gpu::compute_device().unwrap();
    let (_, mr) = phantom_patient(&PhantomConfig::small(), 0);
    let (model, _, _) = synthscope::model::demo::load_demo_model(&d).expect("embedded demo model");
    let [nx, ny, nz] = mr.geometry.dims;
    let cam = |x: usize, layer: usize| {
        let target = CamTarget::Disc {
            x,
            y: ny / 2,
            radius: 6.0,
        };
        slice_gradcam(&model, Direction::MrToCt, &mr, nz / 2, layer, target, &d).unwrap()
    };
    let left = cam(nx / 4, 1);
    let right = cam(3 * nx / 4, 1);
    eprintln!(
        "Grad-CAM of one {nx}x{ny} slice: {:.3} s, {:.3} s",
        left.seconds, right.seconds
    );
    for c in [&left, &right] {
        assert_eq!((c.width, c.height), (nx, ny));
        assert_eq!(c.cam.len(), nx * ny);
        assert!(
            c.cam
                .iter()
                .all(|v| v.is_finite() && *v >= 0.0 && *v <= 1.0 + 1e-5)
        );
        let peak = c.cam.iter().cloned().fold(0.0f32, f32::max);
        assert!(
            (peak - 1.0).abs() < 1e-4,
            "normalised to peak 1, got {peak}"
        );
        assert!(c.region.iter().filter(|r| **r).count() > 50);
    }
    // A different target region gives a different explanation.
    let diff: f32 = left
        .cam
        .iter()
        .zip(&right.cam)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / left.cam.len() as f32;
    assert!(
        diff > 1e-3,
        "maps for two regions are the same (mean |diff| {diff})"
    );
    // A disc entirely outside the slice is refused, naming the problem.
    let err = slice_gradcam(
        &model,
        Direction::MrToCt,
        &mr,
        nz / 2,
        1,
        CamTarget::Disc {
            x: 10 * nx,
            y: 10 * ny,
            radius: 2.0,
        },
        &d,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("outside"), "{err}");
}

/// Method 2's view: the classifier's CT-class Grad-CAM of a real CT slice and of a "synthetic"
/// one, on one scale. Known answers: the same slice twice gives identical maps; a copy with its
/// bone flattened to soft tissue loses CT-ness and the classifier's attention in bone; an MR
/// slice is not called CT.
#[test]
fn classifier_gradcam_compares_real_and_synthetic_ct() {
    use synthscope::analysis::gradcam::cam_pair;
    use synthscope::io::phantom::{PhantomConfig, phantom_patient};
    use synthscope::model::checkpoint::AnyModel;
    let d = synthscope::gpu::compute_device().unwrap();
    let (ct, mr) = phantom_patient(&PhantomConfig::small(), 0);
    let (model, _, _) =
        synthscope::model::demo::load_demo_classifier(&d).expect("embedded demo classifier");
    let AnyModel::Classifier(cls) = model else {
        panic!("the demo classifier is a classifier")
    };
    let [nx, ny, nz] = ct.geometry.dims;
    let z = nz / 2;
    let real: Vec<f32> = ct.data[z * nx * ny..(z + 1) * nx * ny].to_vec();
    let size = (nx, ny);

    let same = cam_pair(&cls, &Modality::Ct, &real, &real, size, 2, &d).unwrap();
    eprintln!(
        "classifier Grad-CAM pair {nx}x{ny}: {:.3} s, p(CT) {:.3}",
        same.seconds, same.p_real
    );
    assert!(same.mean_abs_difference() < 1e-5);
    assert!((same.p_real - same.p_synthetic).abs() < 1e-5);
    assert!(same.p_real > 0.5, "a real CT slice is called CT");
    let peak = same.real_cam.iter().cloned().fold(0.0f32, f32::max);
    assert!((peak - 1.0).abs() < 1e-4, "shared scale peaks at 1: {peak}");

    let bone: Vec<bool> = real.iter().map(|v| *v > 300.0).collect();
    assert!(
        bone.iter().filter(|b| **b).count() > 20,
        "the slice has bone"
    );
    // Bone flattened to soft tissue in the left half only: the maps differ where it changed.
    let flattened: Vec<f32> = real
        .iter()
        .enumerate()
        .map(|(i, v)| if i % nx < nx / 2 { v.min(40.0) } else { *v })
        .collect();
    let pair = cam_pair(&cls, &Modality::Ct, &real, &flattened, size, 1, &d).unwrap();
    let diff = pair.difference();
    let mean_abs_in = |left: bool| {
        let sel: Vec<f32> = (0..nx * ny)
            .filter(|i| bone[*i] && (i % nx < nx / 2) == left)
            .map(|i| diff[i].abs())
            .collect();
        sel.iter().sum::<f32>() / sel.len().max(1) as f32
    };
    let (changed, unchanged) = (mean_abs_in(true), mean_abs_in(false));
    eprintln!(
        "left bone flattened: p(CT) real {:.3} synthetic {:.3}; mean |map difference| in changed bone {changed:.4}, in unchanged bone {unchanged:.4}",
        pair.p_real, pair.p_synthetic
    );
    assert!(
        changed > 1.3 * unchanged && changed > 0.01,
        "the maps differ where the bone changed: {changed} vs {unchanged}"
    );

    // Mismatched slices are refused, naming the sizes.
    let e = cam_pair(&cls, &Modality::Ct, &real, &real[1..], size, 2, &d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not match"), "{e}");
    let _ = mr;
}
