#![no_main]
//! Fuzz target `run_config`: see synthscope::fuzzing::run_config.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::run_config(data);
});
