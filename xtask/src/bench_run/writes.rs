//! Workload `writes`: what a program writes into the view (copy-on-write, RFC-0047).
//!
//! (a) the same `make -jN` + gcc build as the `build` workload, but writing its objects into
//! the project (`OBJ=obj`, inside the view), and (b) untarring a 10,000-file archive into the
//! project. Under vrift both run in place with a plain `vrift run` in the project, so the
//! timing includes the end of the run: hashing the new files into the store and writing them
//! back to the real tree. Each run starts clean (outputs removed, untimed).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::fixtures::{self, SDIST, SDIST_VERSION};
use super::harness::{run_step, run_timed, Place, Runner};
use super::table::Table;
use super::Bench;

const UNTAR_FILES: usize = 10_000;

fn remove(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).with_context(|| format!("{}", p.display()))?;
    }
    Ok(())
}

/// The project the writes go into: a copy of the C code base (made once, untimed).
fn project(b: &Bench) -> Result<(std::path::PathBuf, usize)> {
    let src = b.cache.join(format!("{SDIST}-{SDIST_VERSION}"));
    let units = fixtures::c_code_base(&b.cache, &src)?;
    let dest = b.cache.join("writes-project");
    if !dest.join("Makefile").is_file() {
        remove(&dest)?;
        run_step(Command::new("cp").arg("-r").arg(&src).arg(&dest))?;
        let _ = std::fs::remove_file(dest.join("vrift.manifest"));
    }
    Ok((dest, units))
}

/// A tar archive of [`UNTAR_FILES`] generated files (made once).
fn archive(b: &Bench) -> Result<std::path::PathBuf> {
    let tar = b.cache.join(format!("untar-{UNTAR_FILES}.tar"));
    if !tar.is_file() {
        let tree = b.cache.join(format!("untar-tree-{UNTAR_FILES}"));
        fixtures::generated_tree(&tree, UNTAR_FILES)?;
        run_step(
            Command::new("tar")
                .arg("cf")
                .arg(&tar)
                .arg("-C")
                .arg(&tree)
                .arg("."),
        )?;
    }
    Ok(tar)
}

pub fn run(b: &Bench) -> Result<Vec<Table>> {
    let (dir, units) = project(b)?;
    let place = Place::InPlace(dir.clone());
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cflags = if b.opts.quick { "-O0" } else { "-O2" };
    let obj = dir.join("obj");
    let out = dir.join("untar");
    let tar = archive(b)?;
    // Untimed: the first ingest of the project, as `vrift init` would have done.
    remove(&obj)?;
    remove(&out)?;
    run_step(
        &mut b
            .wrappers
            .command(Runner::Vrift, &place, &["/bin/true".into()]),
    )?;

    let build = b.interleaved(&format!("make -j{jobs} into the view"), false, |r| {
        remove(&obj)?;
        let argv: Vec<OsString> = vec![
            "make".into(),
            "-s".into(),
            format!("-j{jobs}").into(),
            "OBJ=obj".into(),
            format!("CFLAGS={cflags}").into(),
        ];
        let t = run_timed(&mut b.wrappers.command(r, &place, &argv))?;
        let objects = std::fs::read_dir(&obj)
            .with_context(|| format!("{}: not written back", obj.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".o"))
            .count();
        if objects != units || !obj.join("libbench.a").is_file() {
            bail!(
                "{}: {objects} objects for {units} sources under {}",
                obj.display(),
                r.name()
            );
        }
        Ok(vec![t.wall.as_secs_f64()])
    })?;
    let untar = b.interleaved(
        &format!("tar x of {UNTAR_FILES} files into the view"),
        false,
        |r| {
            remove(&out)?;
            std::fs::create_dir(&out).with_context(|| format!("{}", out.display()))?;
            let argv: Vec<OsString> = vec![
                "tar".into(),
                "xf".into(),
                tar.clone().into(),
                "-C".into(),
                "untar".into(),
            ];
            let t = run_timed(&mut b.wrappers.command(r, &place, &argv))?;
            let n = count_files(&out)?;
            if n != UNTAR_FILES {
                bail!(
                    "{}: {n} files of {UNTAR_FILES} under {}",
                    out.display(),
                    r.name()
                );
            }
            Ok(vec![t.wall.as_secs_f64()])
        },
    )?;
    remove(&obj)?;
    remove(&out)?;

    let table = |title: String, s: &super::Samples, note: &str| {
        let mut t = b.seconds_table(title, s);
        t.notes.push(note.into());
        t
    };
    Ok(vec![
        table(
            format!("writes: make -j{jobs} + gcc {cflags} writing {units} objects into the view"),
            &build,
            "In place in a copy of the project; vrift: plain `vrift run` (objects are private \
             copies in the view, hashed into the store and written back to the project when \
             the run ends, all timed); proot: `proot -b DIR`; outputs removed between runs.",
        ),
        table(
            format!("writes: tar x of {UNTAR_FILES} files into the view"),
            &untar,
            "GNU tar extracting into the project; vrift's time includes storing the files and \
             writing them back to the project.",
        ),
    ])
}

fn count_files(dir: &Path) -> Result<usize> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    Ok(n)
}
