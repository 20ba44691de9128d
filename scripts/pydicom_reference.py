"""The pydicom reference for `synthscope bench load --against pydicom`.

Loads a folder holding one DICOM series the way a researcher would: read every file with
pydicom, sort the slices along the slice normal (ImagePositionPatient projected on the cross
product of ImageOrientationPatient's row and column directions), and stack them into one float32
volume with each slice's RescaleSlope / RescaleIntercept applied. Repeats the load and prints
JSON: the time of each repetition, the volume's shape and sum (to check both loads read the
same values), and the peak resident memory of the process.

    python scripts/pydicom_reference.py FOLDER [--repeat N]
"""

import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import pydicom


def load(folder):
    """The series under `folder` as a (slices, rows, columns) float32 volume."""
    datasets = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            datasets.append(pydicom.dcmread(path))
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(normal, np.array(ds.ImagePositionPatient, dtype=np.float64))))
    first = datasets[0]
    volume = np.empty((len(datasets), int(first.Rows), int(first.Columns)), dtype=np.float32)
    for i, ds in enumerate(datasets):
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        volume[i] = ds.pixel_array.astype(np.float32) * np.float32(slope) + np.float32(intercept)
    return volume


def rss_mib(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB; 0 where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    before = rss_mib("VmRSS")
    seconds = []
    volume = None
    for _ in range(max(1, a.repeat)):
        volume = None  # free the previous volume before timing the next load
        t = time.perf_counter()
        volume = load(a.folder)
        seconds.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    json.dump(
        {
            "pydicom": pydicom.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "seconds": seconds,
            "shape": list(volume.shape),
            "sum": float(volume.sum(dtype=np.float64)),
            "rss_before_mib": before,
            "peak_rss_mib": peak,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
