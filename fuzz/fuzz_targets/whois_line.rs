//! Fuzz target `whois_line`: see [`orrery_fuzz::targets::whois_line`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orrery_fuzz::targets::whois_line(data));
