//! Fuzz target `link_message`: see [`orrery_fuzz::targets::link_message`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orrery_fuzz::targets::link_message(data));
