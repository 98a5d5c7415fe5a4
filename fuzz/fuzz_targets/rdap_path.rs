//! Fuzz target `rdap_path`: see [`orrery_fuzz::targets::rdap_path`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orrery_fuzz::targets::rdap_path(data));
