"""Extract reference values from the public sample files with pydicom and nibabel.

Run once (needs pydicom==3.0.2, nibabel==5.4.2, numpy, pylibjpeg + plugins, pillow):
    python tests/tools/make_expected.py SAMPLES_DIR > tests/fixtures/public_expected.json
SAMPLES_DIR holds the unpacked wheels (pydicom/data/test_files, nibabel/tests/data).
The Rust tests compare our loaders against the JSON this writes.
"""
import glob, json, os, sys
import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut
import nibabel as nib

root = sys.argv[1]
out = {"pydicom": {}, "nibabel": {}}

def probe_points(shape):
    # Deterministic probe positions: corners, centre and a few interior points.
    f, r, c = shape
    pts = [(0, 0, 0), (0, r - 1, c - 1), (f // 2, r // 2, c // 2), (f - 1, r // 3, (2 * c) // 3), (0, (3 * r) // 4, c // 5)]
    return [list(map(int, p)) for p in pts]

for path in sorted(glob.glob(os.path.join(root, "pydicom/data/test_files/*.dcm"))):
    name = os.path.basename(path)
    e = {}
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as ex:  # noqa
        e["read_error"] = str(ex)[:200]
        out["pydicom"][name] = e
        continue
    e["modality"] = str(ds.get("Modality", ""))
    e["photometric"] = str(ds.get("PhotometricInterpretation", ""))
    e["transfer_syntax"] = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    e["has_pixels"] = "PixelData" in ds
    e["samples_per_pixel"] = int(ds.get("SamplesPerPixel", 1))
    if e["has_pixels"]:
        try:
            arr = ds.pixel_array
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            if e["samples_per_pixel"] == 1:
                vals = apply_modality_lut(arr, ds).astype(np.float64)
                v3 = vals.reshape((frames, int(ds.Rows), int(ds.Columns)))
                e["shape"] = [frames, int(ds.Rows), int(ds.Columns)]
                e["sum"] = float(v3.sum())
                e["min"] = float(v3.min())
                e["max"] = float(v3.max())
                e["probes"] = [[*p, float(v3[p[0], p[1], p[2]])] for p in probe_points(v3.shape)]
        except Exception as ex:  # noqa
            e["pixel_error"] = str(ex)[:200]
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if tag in ds:
            e[tag] = [float(x) for x in ds[tag].value]
    out["pydicom"][name] = e

for path in sorted(glob.glob(os.path.join(root, "nibabel/tests/data/*.nii*"))):
    name = os.path.basename(path)
    e = {}
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj).astype(np.float64)
        slope, inter = img.dataobj.slope, img.dataobj.inter
        data = np.asarray(img.get_fdata(), dtype=np.float64)
        if data.ndim > 3:
            data = data.reshape(data.shape[:3] + (-1,))[..., 0]
        while data.ndim < 3:
            data = data[..., None]
        aff = img.affine  # RAS, sform over qform as nibabel chooses
        lps = np.diag([-1, -1, 1, 1]) @ aff
        e["shape"] = list(map(int, data.shape[:3]))
        e["sum"] = float(np.nansum(data))
        e["nan_count"] = int(np.isnan(data).sum())
        e["min"] = float(np.nanmin(data))
        e["max"] = float(np.nanmax(data))
        e["origin_lps"] = [float(x) for x in lps[:3, 3]]
        e["world_from_voxel_lps"] = [[float(x) for x in row] for row in lps[:3, :3]]
        e["version"] = 2 if isinstance(img, nib.Nifti2Image) else 1
        s = data.shape
        pts = [(0, 0, 0), (s[0] - 1, s[1] - 1, s[2] - 1), (s[0] // 2, s[1] // 2, s[2] // 2)]
        e["probes"] = [[*map(int, p), float(data[p])] for p in pts]
    except Exception as ex:  # noqa
        e["read_error"] = str(ex)[:200]
    out["nibabel"][name] = e

def finite(x):
    # JSON has no NaN: non-finite values become null (the test then expects NaN).
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite(v) for v in x]
    return x

json.dump(finite(out), sys.stdout, indent=1, sort_keys=True)
