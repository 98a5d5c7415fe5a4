//! Fuzz target `state_file`: see [`orrery_fuzz::targets::state_file`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orrery_fuzz::targets::state_file(data));
