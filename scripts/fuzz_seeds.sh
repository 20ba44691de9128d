#!/usr/bin/env bash
# Seed corpora for scripts/fuzz.sh: small public samples (pydicom, nibabel; fetched by the tests
# into target/public-samples) and files our own build writes (phantom DICOM and NIfTI, a demo
# study and a reader log, a run folder with its checkpoint, a transform). Run once; then
# `cargo fuzz cmin` (or just fuzzing) keeps the corpus small. Usage: scripts/fuzz_seeds.sh [BIN]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/synthscope/target}/release/synthscope}"
samples=target/public-samples
c=fuzz/corpus
mkdir -p $c/{dicom_file,dicom_folder,nifti,study,reader_log,run_config,tfm,checkpoint}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Public samples under 64 KiB (big ones slow every execution down without adding coverage).
find "$samples/pydicom" -type f -name '*.dcm' -size -64k -exec cp -t $c/dicom_file {} + 2>/dev/null || true
find "$samples/nibabel" -type f \( -name '*.nii' -o -name '*.nii.gz' \) -size -200k -exec cp -t $c/nifti {} + 2>/dev/null || true

# Our own writers.
"$bin" phantom --small --out "$work/ph" >/dev/null
find "$work/ph" -name '*.nii*' -size -300k -exec cp -t $c/nifti {} + || true
series=$(find "$work/ph" -name '*.dcm' -printf '%h\n' | sort -u)
for s in $series; do
  files=($(ls "$s"/*.dcm | head -3))
  cp "${files[0]}" "$c/dicom_file/own-$(basename "$s").dcm"
  python3 - "$c/dicom_folder/own-$(basename "$s")" "${files[@]}" <<'PY'
import sys
sep = b"\n--synthscope-next-file--\n"
open(sys.argv[1], "wb").write(sep.join(open(f, "rb").read() for f in sys.argv[2:]))
PY
done
"$bin" register --fixed "$work/ph/ct" --moving "$work/ph/mr_t1" --out "$work/t.tfm" >/dev/null 2>&1 || \
  "$bin" register --fixed "$(echo "$series" | head -1)" --moving "$(echo "$series" | tail -1)" --out "$work/t.tfm" >/dev/null
cp "$work/t.tfm" $c/tfm/own.tfm

"$bin" study demo --out "$work/study" --patients 1 --slab 4 >/dev/null
study=$(ls "$work"/study/*.toml | head -1)
cp "$study" $c/study/own.toml
"$bin" study answer --reader r1 --keys "r 3 4 4 4 next s 2 1 2 3 next" "$study" >/dev/null 2>&1 || true
find "$work/study" -name '*.jsonl' -exec cp {} $c/reader_log/own.jsonl \; -quit

cat > "$work/run.toml" <<'TOML'
name = "seed"
seed = 3
epochs = 1
batch_size = 2
patch = 32
validation_slices = 1
[data]
kind = "demo"
patients = 2
small = true
[model]
kind = "unet"
base_width = 4
levels = 2
TOML
"$bin" train --config "$work/run.toml" --out "$work/run" --device cpu >/dev/null 2>&1 || echo "train seed failed (see the config keys)" >&2
if [ -f "$work/run/metrics.jsonl" ]; then
  python3 - "$c/run_config/own" "$work/run/config.toml" "$work/run/metrics.jsonl" "$work/run/summary.json" "$work/run/checkpoints/resume.json" <<'PY'
import sys, os
sep = b"\n--synthscope-next-file--\n"
parts = [open(f, "rb").read() if os.path.exists(f) else b"" for f in sys.argv[2:]]
open(sys.argv[1], "wb").write(sep.join(parts))
PY
  ck=$(ls "$work"/run/*.json "$work"/run/checkpoints/*.json 2>/dev/null | grep -v -e summary -e resume | head -1 || true)
  if [ -n "$ck" ] && [ -f "${ck%.json}.bpk" ]; then
    python3 - "$c/checkpoint/own" "$ck" "${ck%.json}.bpk" <<'PY'
import sys
sep = b"\n--synthscope-next-file--\n"
open(sys.argv[1], "wb").write(sep.join(open(f, "rb").read() for f in sys.argv[2:]))
PY
  fi
fi
for t in $c/*; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sh "$t" | cut -f1)"; done
