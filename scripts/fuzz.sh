#!/usr/bin/env bash
# Coverage-guided fuzzing of one loader: scripts/fuzz.sh TARGET SECONDS [extra libFuzzer flags]
#   TARGET: dicom_file dicom_folder nifti study reader_log run_config tfm checkpoint (or "all")
# Needs the nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz if missing.
# New inputs that reach new code are added to fuzz/corpus/TARGET; crashes land in
# fuzz/artifacts/TARGET and are copied to fuzz/regressions/TARGET, which `cargo test`
# (tests/fuzz_corpora.rs) replays on stable together with the corpus. Commit both.
#
# No sanitizer (the loaders are safe Rust; the bugs looked for are panics, aborts, hangs and
# unbounded allocations): a 3 GiB address-space limit turns an allocation sized by an unchecked
# header into an abort that libFuzzer reports, -rss_limit_mb catches slow growth, -timeout hangs.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: scripts/fuzz.sh TARGET SECONDS}"
seconds="${2:?usage: scripts/fuzz.sh TARGET SECONDS}"
shift 2
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/synthscope/fuzz-target}"
# A volume limit of 2^24 voxels (the default is 2^29): what is fuzzed is that a declared size over
# the limit is refused, and decoding up to 2 GiB of compressed pixels per input would make each
# execution take seconds.
export SYNTHSCOPE_MAX_VOXELS="${SYNTHSCOPE_MAX_VOXELS:-16777216}"
build=(cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer none -O --codegen-units 16)
if [ "$target" = all ]; then
  "${build[@]}"
  for t in dicom_file dicom_folder nifti study reader_log run_config tfm checkpoint; do
    "$0" "$t" "$seconds" "$@"
  done
  exit 0
fi
# FUZZ_NO_BUILD=1: run the binary built last (while the tree is being edited).
[ "${FUZZ_NO_BUILD:-0}" = 1 ] || "${build[@]}" "$target"
mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" "fuzz/regressions/$target"
bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$target"
log="fuzz/artifacts/$target/fuzz.log"
echo "fuzzing $target for $seconds s (log: $log)"
status=0
(
  ulimit -v $((3 * 1024 * 1024))
  exec "$bin" "fuzz/corpus/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -max_len=1048576 -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" "$@"
) >"$log" 2>&1 || status=$?
grep -E "^#[0-9]+.*(DONE|pulse)|stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$log" | tail -6 || true
for crash in fuzz/artifacts/"$target"/{crash,oom,timeout,leak}-*; do
  [ -e "$crash" ] || continue
  cp "$crash" "fuzz/regressions/$target/"
  echo "FOUND: $crash (copied to fuzz/regressions/$target/)"
done
exit "$status"
