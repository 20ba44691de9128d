#![no_main]
//! Fuzz target `checkpoint`: see synthscope::fuzzing::checkpoint.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::checkpoint(data);
});
