//! The manifest decoder on arbitrary bytes: it returns an error or a manifest, never panics,
//! and what it returns is a manifest vrift can use (it re-encodes to itself, and a view over
//! it resolves, lists and flattens every path).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrift_common::manifest::Manifest;
use vrift_fuzz::{exercise_view, FUZZ_PATH};

fuzz_target!(|data: &[u8]| {
    check(data);
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
