#![no_main]
//! Fuzz target `study`: see synthscope::fuzzing::study.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::study(data);
});
