//! Deterministic synthetic trees and manifests for benchmarks.

use std::fs;
use std::io::Write;
use std::path::Path;

use vrift_common::hash::Hash;
use vrift_common::manifest::{Entry, EntryKind, Manifest};

/// xorshift64*: fast, deterministic, good enough for file contents and sizes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// What `tree` made.
pub struct TreeStats {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub duplicate_files: u64,
}

/// A tree of `small_files` files of 100 B to 8 KiB over `dirs` directories (two levels),
/// about one in ten a duplicate of an earlier file, plus `large` random files of
/// `large_size` bytes at the top.
pub fn tree(
    root: &Path,
    small_files: u64,
    dirs: u64,
    large: u64,
    large_size: usize,
) -> std::io::Result<TreeStats> {
    let mut rng = Rng::new(0x5eed);
    let mut stats = TreeStats {
        files: 0,
        dirs: 0,
        bytes: 0,
        duplicate_files: 0,
    };
    let per_dir = small_files.div_ceil(dirs);
    let top = (dirs as f64).sqrt().ceil() as u64;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut made = 0;
    'outer: for d in 0..dirs {
        let dir = root
            .join(format!("pkg{:03}", d / top))
            .join(format!("mod{:03}", d % top));
        fs::create_dir_all(&dir)?;
        stats.dirs += 1;
        for f in 0..per_dir {
            if made == small_files {
                break 'outer;
            }
            let content = if !pool.is_empty() && rng.next() % 10 < 1 {
                stats.duplicate_files += 1;
                pool[(rng.next() % pool.len() as u64) as usize].clone()
            } else {
                let size = 100 + (rng.next() % (8192 - 100 + 1)) as usize;
                let mut buf = vec![0u8; size];
                rng.fill(&mut buf);
                if pool.len() < 256 {
                    pool.push(buf.clone());
                }
                buf
            };
            stats.bytes += content.len() as u64;
            fs::write(dir.join(format!("file{f:04}.dat")), &content)?;
            stats.files += 1;
            made += 1;
        }
    }
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..large {
        let mut f = fs::File::create(root.join(format!("large{i}.bin")))?;
        let mut left = large_size;
        while left > 0 {
            let n = left.min(chunk.len());
            rng.fill(&mut chunk[..n]);
            f.write_all(&chunk[..n])?;
            left -= n;
        }
        stats.files += 1;
        stats.bytes += large_size as u64;
    }
    Ok(stats)
}

/// A manifest of `n` entries shaped like a dependency tree: directories of ~100 files.
pub fn manifest(n: usize) -> Manifest {
    let mut rng = Rng::new(42);
    let mut entries = Vec::with_capacity(n);
    entries.push((Vec::new(), dir_entry()));
    let mut d = 0;
    while entries.len() < n {
        let dir = format!("node_modules/pkg-{d:05}").into_bytes();
        entries.push((dir.clone(), dir_entry()));
        for f in 0..99 {
            if entries.len() == n {
                break;
            }
            let mut path = dir.clone();
            path.extend_from_slice(format!("/lib/file-{f:03}.js").as_bytes());
            let mut h = [0u8; 32];
            rng.fill(&mut h);
            entries.push((
                path,
                Entry {
                    kind: EntryKind::File,
                    hash: Hash(h),
                    size: rng.next() % 100_000,
                    mode: 0o644,
                    mtime_ns: 1_700_000_000_000_000_000 + (rng.next() % 1_000_000_000) as i64,
                    target: Vec::new(),
                    meta: Default::default(),
                },
            ));
        }
        d += 1;
    }
    Manifest::from_entries(entries)
}

fn dir_entry() -> Entry {
    Entry {
        kind: EntryKind::Dir,
        hash: Hash([0; 32]),
        size: 0,
        mode: 0o755,
        mtime_ns: 1_700_000_000_000_000_000,
        target: Vec::new(),
        meta: Default::default(),
    }
}
