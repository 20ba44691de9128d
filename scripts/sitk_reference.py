"""SimpleITK as the outside reference for SynthScope's registration.

  python sitk_reference.py resample FIXED MOVING TFM OUT
      Resample MOVING onto FIXED's grid through the ITK transform file TFM (linear
      interpolation, background = MOVING's minimum) and write OUT.
  python sitk_reference.py register FIXED MOVING OUT_TFM [--rigid-only]
      Register with the same recipe SynthScope uses (Mattes MI, 32 bins, shrink 4-2-1,
      centre-of-mass start, rigid then affine) and print a JSON line with the times.
"""
import json, sys, time
import SimpleITK as sitk


def as_affine(t):
    """A 3D matrix-offset transform (or a composite of them) as one AffineTransform."""
    t = t.Downcast()
    if t.GetName() == "CompositeTransform":
        t.FlattenTransform()
        # ITK applies the last-added transform first: y = T0(T1(...Tn(x))).
        m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        off = [0.0, 0.0, 0.0]
        for i in range(t.GetNumberOfTransforms()):
            a = as_affine(t.GetNthTransform(i))
            am = [list(a.GetMatrix()[r * 3:(r + 1) * 3]) for r in range(3)]
            c, tr = a.GetCenter(), a.GetTranslation()
            aoff = [tr[r] + c[r] - sum(am[r][k] * c[k] for k in range(3)) for r in range(3)]
            # y = m (am x + aoff) + off
            off = [sum(m[r][k] * aoff[k] for k in range(3)) + off[r] for r in range(3)]
            m = [[sum(m[r][k] * am[k][j] for k in range(3)) for j in range(3)] for r in range(3)]
        out = sitk.AffineTransform(3)
        out.SetMatrix([m[r][c] for r in range(3) for c in range(3)])
        out.SetTranslation(off)
        return out
    out = sitk.AffineTransform(3)
    out.SetCenter(t.GetCenter())
    out.SetMatrix(t.GetMatrix())
    out.SetTranslation(t.GetTranslation())
    return out


def resample(fixed_p, moving_p, tfm_p, out_p):
    fixed = sitk.ReadImage(fixed_p, sitk.sitkFloat32)
    moving = sitk.ReadImage(moving_p, sitk.sitkFloat32)
    t = sitk.ReadTransform(tfm_p)
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(moving)
    lo = stats.GetMinimum()
    out = sitk.Resample(moving, fixed, t, sitk.sitkLinear, lo, sitk.sitkFloat32)
    sitk.WriteImage(out, out_p)


def register(fixed_p, moving_p, out_p, affine):
    fixed = sitk.ReadImage(fixed_p, sitk.sitkFloat32)
    moving = sitk.ReadImage(moving_p, sitk.sitkFloat32)
    levels = []
    t0 = time.perf_counter()

    def run(initial, optimise_affine):
        r = sitk.ImageRegistrationMethod()
        r.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        r.SetMetricSamplingStrategy(r.RANDOM)
        n = fixed.GetNumberOfPixels()
        r.SetMetricSamplingPercentagePerLevel([min(1.0, 160000 / 4 / n * 64), min(1.0, 160000 / 2 / n * 8), min(1.0, 160000 / n)], seed=1)
        r.SetInterpolator(sitk.sitkLinear)
        r.SetOptimizerAsRegularStepGradientDescent(learningRate=4.0, minStep=0.01, numberOfIterations=120, relaxationFactor=0.5)
        r.SetOptimizerScalesFromPhysicalShift()
        r.SetShrinkFactorsPerLevel([4, 2, 1])
        r.SetSmoothingSigmasPerLevel([2, 1, 0])
        r.SetInitialTransform(initial, inPlace=False)
        start = [time.perf_counter()]
        r.AddCommand(sitk.sitkMultiResolutionIterationEvent, lambda: (levels.append(time.perf_counter() - start[0]), start.__setitem__(0, time.perf_counter())))
        out = r.Execute(fixed, moving)
        levels.append(time.perf_counter() - start[0])
        return out, r.GetMetricValue()

    init = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
    rigid, metric = run(init, False)
    final = rigid
    if affine:
        a = as_affine(rigid)
        final, metric = run(a, True)
    seconds = time.perf_counter() - t0
    sitk.WriteTransform(as_affine(final), out_p)
    print(json.dumps({"seconds": seconds, "metric": metric, "level_seconds": levels}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "resample":
        resample(*sys.argv[2:6])
    elif cmd == "register":
        register(sys.argv[2], sys.argv[3], sys.argv[4], "--rigid-only" not in sys.argv)
    else:
        sys.exit(__doc__)
