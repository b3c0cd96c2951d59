//! The benchmarks' inputs, made once and cached under `target/bench-cache`: the static
//! bench programs, small file sets, a generated tree, and a real C code base.
//!
//! Every fixture is built in a temporary sibling and renamed into place, so an interrupted
//! set-up never leaves a half-made fixture that a later run would trust.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::harness::run_step;

/// Compile `bench-programs/NAME.c` statically to `cache/bin/NAME`, unless the binary is
/// newer than its source.
pub fn static_program(programs: &Path, cache: &Path, name: &str) -> Result<PathBuf> {
    let src = programs.join(format!("{name}.c"));
    let bin_dir = cache.join("bin");
    let bin = bin_dir.join(name);
    let src_time = std::fs::metadata(&src)
        .and_then(|m| m.modified())
        .with_context(|| format!("{}", src.display()))?;
    let fresh = std::fs::metadata(&bin)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= src_time);
    if !fresh {
        std::fs::create_dir_all(&bin_dir).with_context(|| format!("{}", bin_dir.display()))?;
        run_step(
            Command::new("gcc")
                .args(["-O2", "-static", "-pthread", "-o"])
                .arg(&bin)
                .arg(&src),
        )
        .with_context(|| format!("compiling {} (static)", src.display()))?;
    }
    Ok(bin)
}

/// Build `dest` with `make` (which gets a temporary directory beside it) unless it exists.
fn cached_dir(dest: &Path, make: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if dest.is_dir() {
        return Ok(());
    }
    let tmp = dest.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("{}", tmp.display()))?;
    make(&tmp)?;
    std::fs::rename(&tmp, dest).with_context(|| format!("{}", dest.display()))?;
    Ok(())
}

/// A small deterministic generator (xorshift64*), so every machine makes the same tree.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The size of generated file `i`: mostly small, some medium, a few large (like a
/// source tree with some assets), between 0 and 256 KiB.
pub fn file_size(rng: &mut Rng) -> usize {
    let pick = rng.next() % 100;
    let r = rng.next() as usize;
    match pick {
        0..=69 => r % 4096,
        70..=97 => 4096 + r % (28 * 1024),
        _ => 32 * 1024 + r % (224 * 1024),
    }
}

/// `count` files `f0000`.. of `size` bytes each in a new directory `dest`.
pub fn flat_files(dest: &Path, count: usize, size: usize) -> Result<()> {
    cached_dir(dest, |tmp| {
        let mut rng = Rng::new(count as u64);
        let mut buf = vec![0u8; size];
        for i in 0..count {
            rng.fill(&mut buf);
            let p = tmp.join(format!("f{i:04}"));
            std::fs::write(&p, &buf).with_context(|| format!("{}", p.display()))?;
        }
        Ok(())
    })
}

/// A tree of `files` generated files, 100 per directory (`d000/f00000.dat`, ...), of
/// varied sizes (see [`file_size`]).
pub fn generated_tree(dest: &Path, files: usize) -> Result<()> {
    cached_dir(dest, |tmp| {
        let mut rng = Rng::new(0x7265_6531);
        let mut buf = Vec::new();
        for i in 0..files {
            let dir = tmp.join(format!("d{:03}", i / 100));
            if i % 100 == 0 {
                std::fs::create_dir(&dir).with_context(|| format!("{}", dir.display()))?;
            }
            buf.resize(file_size(&mut rng), 0);
            rng.fill(&mut buf);
            let p = dir.join(format!("f{i:05}.dat"));
            let mut f = std::fs::File::create(&p).with_context(|| format!("{}", p.display()))?;
            f.write_all(&buf)
                .with_context(|| format!("{}", p.display()))?;
        }
        Ok(())
    })
}

/// The C code base: pycryptodome's sources (a pinned sdist), about 70 translation units of
/// real, self-contained C.
pub const SDIST: &str = "pycryptodome";
pub const SDIST_VERSION: &str = "4.4.0";

/// Sources that are not translation units of their own on x86_64: templates and tables
/// `#include`d by other files, and Arm-only code.
const NOT_UNITS: &[&str] = &[
    "blake2.c",
    "block_common.c",
    "blowfish_init.c",
    "hash_SHA2_compress_armv8.c",
    "hash_SHA2_compress_portable.c",
    "hash_SHA2_compress_shani.c",
    "hash_SHA2_template.c",
    "keccak_x4_avx2.c",
    "keccak_x4_neon.c",
];

/// Download (once) and unpack the sdist into `dest`, add a Makefile that compiles every
/// translation unit of `src/` into `$(OBJ)` and archives them. Returns the number of
/// sources the Makefile compiles.
pub fn c_code_base(cache: &Path, dest: &Path) -> Result<usize> {
    let downloads = cache.join("downloads");
    let tarball = downloads.join(format!("{SDIST}-{SDIST_VERSION}.tar.gz"));
    if !tarball.is_file() {
        std::fs::create_dir_all(&downloads).with_context(|| format!("{}", downloads.display()))?;
        eprintln!("bench: downloading the {SDIST} {SDIST_VERSION} source distribution");
        run_step(
            Command::new("python3")
                .args(["-m", "pip", "download", "--quiet", "--no-deps"])
                .args(["--no-binary", ":all:"])
                .arg(format!("{SDIST}=={SDIST_VERSION}"))
                .arg("-d")
                .arg(&downloads),
        )
        .context("downloading the C code base (needs python3 with pip; run scripts/setup.sh)")?;
        if !tarball.is_file() {
            bail!("{}: not there after pip download", tarball.display());
        }
    }
    cached_dir(dest, |tmp| {
        run_step(
            Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("--strip-components=1")
                .arg("-C")
                .arg(tmp),
        )
        .with_context(|| format!("unpacking {}", tarball.display()))?;
        let units = translation_units(&tmp.join("src"))?;
        let mf = tmp.join("Makefile");
        std::fs::write(&mf, makefile(&units)).with_context(|| format!("{}", mf.display()))?;
        Ok(())
    })?;
    Ok(translation_units(&dest.join("src"))?.len())
}

fn translation_units(src: &Path) -> Result<Vec<String>> {
    let mut units = Vec::new();
    for e in std::fs::read_dir(src).with_context(|| format!("{}", src.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".c") && !NOT_UNITS.contains(&name.as_str()) {
            units.push(name);
        }
    }
    units.sort();
    if units.len() < 50 {
        bail!(
            "{}: only {} C sources; the build benchmark needs at least 50",
            src.display(),
            units.len()
        );
    }
    Ok(units)
}

/// The Makefile: objects go to `$(OBJ)` (outside the view), sources are read from `src/`.
pub fn makefile(units: &[String]) -> String {
    let mut srcs = String::new();
    for u in units {
        srcs.push_str(&format!(" \\\n\tsrc/{u}"));
    }
    format!(
        "# Written by `cargo xtask bench run`: compile every C translation unit of src/ into\n\
         # $(OBJ) (which may be outside this tree) and archive them.\n\
         CC ?= gcc\n\
         OBJ ?= obj\n\
         CFLAGS ?= -O2\n\
         CPPFLAGS = -Isrc -DHAVE_STDINT_H -DHAVE_POSIX_MEMALIGN -DHAVE_X86INTRIN_H \\\n\
         \t-DHAVE_EMMINTRIN_H -DHAVE_WMMINTRIN_H -DHAVE_TMMINTRIN_H -DHAVE_CPUID_H -DSYS_BITS=64\n\
         ARCHFLAGS = -maes -msse4.1 -mpclmul -mavx2 -mbmi2 -madx -msha\n\
         SRCS ={srcs}\n\
         OBJS = $(SRCS:src/%.c=$(OBJ)/%.o)\n\
         \n\
         $(OBJ)/libbench.a: $(OBJS)\n\
         \tar rcs $@ $^\n\
         \n\
         $(OBJ)/%.o: src/%.c | $(OBJ)\n\
         \t$(CC) $(CPPFLAGS) $(ARCHFLAGS) $(CFLAGS) -c $< -o $@\n\
         \n\
         $(OBJ):\n\
         \tmkdir -p $@\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let xs: Vec<u64> = (0..5).map(|_| a.next()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(8).next(), xs[0]);
    }

    #[test]
    fn sizes_are_varied_and_bounded() {
        let mut rng = Rng::new(1);
        let sizes: Vec<usize> = (0..10_000).map(|_| file_size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| s < 256 * 1024));
        let small = sizes.iter().filter(|&&s| s < 4096).count();
        let large = sizes.iter().filter(|&&s| s >= 32 * 1024).count();
        assert!((6_000..8_000).contains(&small), "{small}");
        assert!((100..400).contains(&large), "{large}");
    }

    #[test]
    fn makefile_lists_every_unit_and_builds_outside_the_tree() {
        let mf = makefile(&["a.c".into(), "b.c".into()]);
        assert!(mf.contains("\tsrc/a.c"), "{mf}");
        assert!(mf.contains("\tsrc/b.c"), "{mf}");
        assert!(mf.contains("$(OBJ)/%.o: src/%.c"), "{mf}");
    }

    #[test]
    fn flat_files_are_cached_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("set");
        flat_files(&dest, 3, 10).unwrap();
        let first = std::fs::read(dest.join("f0002")).unwrap();
        assert_eq!(first.len(), 10);
        std::fs::write(dest.join("f0002"), b"x").unwrap();
        flat_files(&dest, 3, 10).unwrap(); // cached: not rebuilt
        assert_eq!(std::fs::read(dest.join("f0002")).unwrap(), b"x");
        assert!(!dest.with_extension("partial").exists());
    }

    #[test]
    fn generated_tree_has_the_requested_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("tree");
        generated_tree(&dest, 250).unwrap();
        let mut n = 0;
        for d in std::fs::read_dir(&dest).unwrap() {
            n += std::fs::read_dir(d.unwrap().path()).unwrap().count();
        }
        assert_eq!(n, 250);
        assert!(dest.join("d002/f00249.dat").is_file());
    }
}
