//! A cheap hasher for the shim's per-process tables (kept answers by path, descriptors).
//! std's SipHash resists keys chosen to collide, which costs a few hundred instructions per
//! path on every stat and open; these tables hold only keys the program itself makes, so a
//! program that made them collide would slow only itself. The mixing is FxHash's (rustc's):
//! a word at a time, rotate, xor, multiply.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes its tag from the top bits: fold the low bits up into them.
        self.hash ^ (self.hash >> 29)
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn h(v: impl Hash) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(v)
    }

    #[test]
    fn paths_that_differ_anywhere_hash_apart() {
        let base = b"/work/project/src/module/file0000.rs".to_vec();
        let mut seen = std::collections::HashSet::new();
        for i in 0..base.len() {
            let mut p = base.clone();
            p[i] ^= 1;
            assert!(seen.insert(h(&p)), "collision at byte {i}");
        }
        assert_ne!(h((&base, true)), h((&base, false)));
        assert_ne!(h(b"ab".to_vec()), h(b"ab\0".to_vec()));
    }

    #[test]
    fn a_table_keyed_by_paths_works() {
        let mut m: FastMap<Vec<u8>, usize> = FastMap::default();
        for i in 0..10_000 {
            m.insert(format!("/r/d{}/f{i}", i % 37).into_bytes(), i);
        }
        for i in 0..10_000 {
            assert_eq!(m[format!("/r/d{}/f{i}", i % 37).as_bytes()], i);
        }
    }
}
