#![no_main]
//! Fuzz target `nifti`: see synthscope::fuzzing::nifti.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::nifti(data);
});
