//! Fuzz target `dns_query`: see [`orrery_fuzz::targets::dns_query`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orrery_fuzz::targets::dns_query(data));
