#![no_main]
//! Fuzz target `tfm`: see synthscope::fuzzing::tfm.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::tfm(data);
});
