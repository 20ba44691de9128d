#![no_main]
//! Fuzz target `dicom_folder`: see synthscope::fuzzing::dicom_folder.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::dicom_folder(data);
});
