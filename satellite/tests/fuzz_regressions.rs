//! Inputs the fuzz targets (`fuzz/`) found crashing, fed again to the same public entry
//! points, each with the behaviour it must have.

use orrery_satellite::snapshot::{DecodeError, decode};

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `state_file`: a header whose body length is near `u64::MAX` overflowed the length
/// computation of the "truncated" error (a panic with overflow checks on). It is refused as
/// truncated, with the announced length saturated.
#[test]
fn a_body_length_near_u64_max_is_refused_as_truncated() {
    let file = unhex("4f5252534e4150000200000008489d0d3400000000003fdfffffffffffffffff00010000");
    match decode(&file) {
        Err(DecodeError::Truncated { expected, found }) => {
            assert_eq!(expected, u64::MAX);
            assert_eq!(found, file.len() as u64);
        }
        other => panic!("{other:?}"),
    }
}
