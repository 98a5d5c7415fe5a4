//! Inputs the fuzz targets (`fuzz/`) found crashing, fed again to the same public entry
//! points, each with the behaviour it must have.

use orrery_proto::state_file::{Header, StateFileError, StateFileReader, write_state_file};

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// `state_file`: a version 2 header whose body length is near `u64::MAX` overflowed the
/// length computation of the old decoder's "truncated" error (a panic with overflow checks on).
/// The old format is no longer decoded: the file is refused as an older release's, by name.
#[test]
fn an_old_format_file_is_refused_by_name() {
    let file = unhex("4f5252534e4150000200000008489d0d3400000000003fdfffffffffffffffff00010000");
    match StateFileReader::new(file.as_slice()) {
        Err(StateFileError::OlderFormat { version }) => assert_eq!(version, 2),
        other => panic!("{other:?}"),
    }
}

/// The same idea in the current format: a chunk length near `u32::MAX` after a sound header
/// is refused before anything is allocated for it.
#[test]
fn a_chunk_length_near_u32_max_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    write_state_file(&path, Header::default(), &[]).unwrap();
    let mut file = std::fs::read(&path).unwrap();
    let at = file.len() - 16;
    file[at..at + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let mut reader = StateFileReader::new(file.as_slice()).unwrap();
    match reader.next() {
        Some(Err(StateFileError::ChunkLength { offset, len })) => {
            assert_eq!((offset as usize, len), (at, 0xffff_fff0));
        }
        other => panic!("{other:?}"),
    }
    assert!(reader.next().is_none());
}
