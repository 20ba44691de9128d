#![no_main]
//! Fuzz target `reader_log`: see synthscope::fuzzing::reader_log.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = synthscope::fuzzing::reader_log(data);
});
