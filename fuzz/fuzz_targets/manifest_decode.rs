//! The manifest decoder on arbitrary bytes: it returns an error or a manifest, never panics,
//! and what it returns is a manifest vrift can use (it re-encodes to itself, and a view over
//! it resolves, lists and flattens every path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrift_common::manifest::Manifest;
use vrift_fuzz::{exercise_view, FUZZ_PATH};

fuzz_target!(|data: &[u8]| {
    check(data);
    check_vouched(data);
    // Nearly every mutation breaks the trailing checksum; also read the input as a body with
    // its checksum appended, so the entry parser itself gets fuzzed.
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(blake3::hash(data).as_bytes());
    check(&sealed);
});

fn check(bytes: &[u8]) {
    let Ok(m) = Manifest::decode(bytes, FUZZ_PATH.as_ref()) else {
        return;
    };
    let again = Manifest::decode(&m.encode(), FUZZ_PATH.as_ref())
        .expect("a decoded manifest re-encodes to a valid manifest");
    assert_eq!(again, m, "decode(encode(m)) != m");
    exercise_view(&m);
}

/// The same bytes given as vrift's own (`decode_canonical`, which leaves the checksum to its
/// caller's hash and builds a version 1 manifest's entries later): refused, or a manifest
/// whose entries build without a panic and equal `decode`'s where that takes the bytes.
fn check_vouched(bytes: &[u8]) {
    let hash = vrift_common::hash::Hash::of(bytes);
    let Ok(m) = Manifest::decode_canonical(bytes.to_vec(), hash, FUZZ_PATH.as_ref()) else {
        return;
    };
    assert_eq!(m.iter().count(), m.len());
    if let Ok(checked) = Manifest::decode(bytes, FUZZ_PATH.as_ref()) {
        assert_eq!(checked, m, "decode and decode_canonical disagree");
    }
    exercise_view(&m);
}
