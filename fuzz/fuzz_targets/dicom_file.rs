#![no_main]
//! Fuzz target `dicom_file`: see synthscope::fuzzing::dicom_file.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::dicom_file(data);
});
