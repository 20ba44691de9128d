//! Every input of the fuzz corpora (`fuzz/corpus/TARGET`) and every crash the fuzzer found
//! (`fuzz/regressions/TARGET`) goes through the same loader entry points as under cargo-fuzz,
//! on stable Rust: each must load or be refused in words, never panic, and answer in bounded
//! time. Fuzz with `scripts/fuzz.sh TARGET SECONDS`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synthscope::fuzzing::{TARGETS, run};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpora_and_found_crashes_replay_without_a_panic() {
    // The volume limit the fuzzer ran with (scripts/fuzz.sh): inputs are replayed as they were
    // fuzzed. SAFETY: the only test of this binary sets it before any thread reads it.
    unsafe { std::env::set_var("SYNTHSCOPE_MAX_VOXELS", "16777216") };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    // A panic the loader catches (inside a third-party decoder) is still a panic: libFuzzer
    // reports it as a crash, and so does this replay. The hook counts them.
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    std::panic::set_hook(Box::new(|_| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let mut total = 0;
    let mut failures = Vec::new();
    for target in TARGETS {
        let corpus = inputs(&root.join("corpus").join(target));
        let regressions = inputs(&root.join("regressions").join(target));
        assert!(
            !corpus.is_empty(),
            "{target}: no seed corpus under fuzz/corpus/{target}"
        );
        for file in corpus.iter().chain(&regressions) {
            let data = std::fs::read(file).unwrap();
            let t0 = Instant::now();
            let before = PANICS.load(std::sync::atomic::Ordering::SeqCst);
            let answer = std::panic::catch_unwind(|| run(target, &data).unwrap());
            if PANICS.load(std::sync::atomic::Ordering::SeqCst) != before {
                failures.push(format!("{target}: {} panicked (caught)", file.display()));
            }
            let took = t0.elapsed();
            match answer {
                Ok(a) => assert!(!a.is_empty()),
                Err(_) => failures.push(format!("{target}: {} panicked", file.display())),
            }
            if took > Duration::from_secs(20) {
                failures.push(format!("{target}: {} took {took:?}", file.display()));
            }
            total += 1;
        }
        eprintln!(
            "{target}: {} corpus inputs, {} found crashes replayed",
            corpus.len(),
            regressions.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The out-of-memory input the fuzzer found in dicom_file: its last element, (FFFF,8080) with
/// the unknown VR FF FF, declares ~2 GB at the end of a 21 KB file. dicom-rs reserved and
/// zero-filled that much before reading; now the declared-length walk refuses it first, in words
/// that name the element and both numbers, and the process stays small.
#[test]
fn the_dicom_oom_input_is_refused_before_anything_is_allocated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dicom_file");
    let file = root.join("oom-3171e1c111f69caba277800b64ba7cb2265ae135");
    let data = std::fs::read(&file).unwrap();
    let t0 = Instant::now();
    let answer = run("dicom_file", &data).unwrap();
    assert!(
        answer.contains("(FFFF,8080) declares 2155937791 bytes but only 72 remain"),
        "{answer}"
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// The RLE input the fuzzer found in dicom_file: a segment whose literal run ends past the
/// segment, so it decodes short. dicom-rs's RLE decoder indexed past the short segment (a panic,
/// caught and reported, but a panic); RLE is now decoded by ours, which refuses it in words.
#[test]
fn a_short_rle_segment_is_refused_in_words() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dicom_file");
    let data = std::fs::read(root.join("crash-db7ba070a6b4eb5f40dbb9b091289069447d91b8")).unwrap();
    let answer = std::panic::catch_unwind(|| run("dicom_file", &data).unwrap())
        .expect("no panic, caught or not");
    assert!(
        answer.contains("RLE frame 0: literal run past the segment end"),
        "{answer}"
    );
}

/// A dicom_folder input from the corpus that took 775 MB: one file's Columns (0028,0011) is a UL
/// of length 2. dicom-rs reads whole 4-byte units of a UL, so it takes none of the 2 bytes and
/// reads the next header 2 bytes early, where it finds an OB of 775 MB. The length walk now
/// follows dicom-rs's stream position and refuses that header.
#[test]
fn a_misaligned_header_after_a_short_ul_is_refused() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dicom_folder");
    let data = std::fs::read(root.join("oom-08507b256d73d160348bc09ecd94f2ab6b79384c")).unwrap();
    let answer = run("dicom_folder", &data).unwrap();
    assert!(answer.contains("declares 775028744 bytes"), "{answer}");
}

/// The JPEG 2000 input the fuzzer found in dicom_file: a 64 x 64 image whose codestream says
/// 64 x 1048640. The decoder worked for the codestream's size and dicom-rs's adapter indexed
/// past the 64 x 64 frame (a panic); the frame's SIZ is now checked against Rows and Columns
/// first.
#[test]
fn a_codestream_larger_than_its_image_is_refused_in_words() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dicom_file");
    let data = std::fs::read(root.join("crash-0ab39e45521b0257672842f83ad17543fbd2eb21")).unwrap();
    let answer = std::panic::catch_unwind(|| run("dicom_file", &data).unwrap())
        .expect("no panic, caught or not");
    assert!(
        answer
            .contains("the codestream is 64x1048640 but Columns x Rows (0028,0011/0010) are 64x64"),
        "{answer}"
    );
}

/// A dicom_file input that took 2.3 GB: an OB two sequences deep declares 2,358,021,260 bytes
/// where the length walk and dicom-rs's reader part ways. Behind the walk, the parse runs under
/// a per-thread allocation ceiling (io::alloc_guard) of the file's size plus 16 MiB, so
/// dicom-rs's reservation fails and it reports an error instead.
#[test]
fn a_value_larger_than_the_file_fails_its_reservation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/dicom_file");
    let data = std::fs::read(root.join("oom-aba4db38313015bcd32400379229a28ee53d7a6f")).unwrap();
    let t0 = Instant::now();
    let answer = run("dicom_file", &data).unwrap();
    assert!(answer.contains("not a readable DICOM file"), "{answer}");
    // Zero-filling 2.3 GB took over a second here; refusing takes milliseconds.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
}

/// Two inputs (dicom_file and dicom_folder) whose BitsStored is 0 or above BitsAllocated:
/// dicom-pixeldata asserts 1..=32 bits when it builds its 2^BitsStored lookup table (a panic,
/// caught, but a panic). Refused before decoding now, naming both attributes.
#[test]
fn bits_stored_outside_bits_allocated_is_refused_in_words() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (target, name) in [
        (
            "dicom_file",
            "crash-d6b5364b37777efaf7d577cdcfcfdcbc1500dcda",
        ),
        (
            "dicom_folder",
            "crash-29081e6b72d9fc4b7b3cfd79fbe69045636c8482",
        ),
    ] {
        let data = std::fs::read(root.join(target).join(name)).unwrap();
        let answer = std::panic::catch_unwind(|| run(target, &data).unwrap())
            .expect("no panic, caught or not");
        assert!(
            answer.contains("BitsStored (0028,0101) = "),
            "{target}: {answer}"
        );
    }
}
