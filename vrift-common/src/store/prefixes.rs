//! Hashes of content prefixes this process has already computed: "the first `len` bytes of
//! the content `hash` hash to `prefix`". A fact about content, true in any store, so one
//! table serves the whole process. A run's harvest learns it while hashing a file that grew
//! (`Store::hash_in_place`), and its write-back asks (`Store::blob_starts_with`) instead of
//! reading the file again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::hash::Hash;

/// Kept small: a run remembers the files it appended to, and nothing else asks.
const MOST: usize = 4096;

static PREFIXES: Mutex<Option<HashMap<(Hash, u64), Hash>>> = Mutex::new(None);

pub(super) fn remember(hash: Hash, len: u64, prefix: Hash) {
    let mut table = PREFIXES.lock().unwrap_or_else(|p| p.into_inner());
    let table = table.get_or_insert_with(HashMap::new);
    if table.len() >= MOST {
        table.clear();
    }
    table.insert((hash, len), prefix);
}

pub(super) fn known(hash: &Hash, len: u64) -> Option<Hash> {
    let table = PREFIXES.lock().unwrap_or_else(|p| p.into_inner());
    table.as_ref()?.get(&(*hash, len)).copied()
}
