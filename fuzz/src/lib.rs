//! What the fuzz targets share: a small registry to answer from, the body of each target (the
//! input fed to the satellite's public entry point, then the checks its output must pass), and
//! the seed inputs built from real queries, lines, paths, files and messages.
//!
//! The targets in `fuzz_targets/` are one line each, calling [`targets`]; `src/bin/seeds.rs`
//! writes [`seeds`] to `fuzz/seeds/TARGET/`. Keeping the bodies here lets one function serve a
//! target and the reproduction of a crash it found.
//!
//! Every check is a property of the protocol or of the format, not of this implementation:
//! a DNS answer parses with hickory-proto and matches its query, a Whois answer is CRLF text,
//! an RDAP answer is JSON with a status the protocol allows, a state file that decodes encodes
//! back to the same data, a link message that converts converts back to the same message.

pub mod fixture;
pub mod seeds;
pub mod targets;
