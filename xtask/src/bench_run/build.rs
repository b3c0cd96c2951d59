//! Workload `build`: `make -jN` + gcc over a real C code base (pycryptodome's sources)
//! whose sources, under vrift, exist only in the view: vrift serves the project's manifest
//! at a path that does not exist on disk (`--manifest --mount`), and proot binds the real
//! tree there. Objects go to a directory outside the view.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::fixtures::{self, SDIST, SDIST_VERSION};
use super::harness::{run_step, run_timed, Place, Runner};
use super::table::Table;
use super::Bench;

pub fn run(b: &Bench) -> Result<Table> {
    let src = b.cache.join(format!("{SDIST}-{SDIST_VERSION}"));
    let units = fixtures::c_code_base(&b.cache, &src)?;
    let manifest = src.join("vrift.manifest");
    if !manifest.is_file() {
        run_step(
            Command::new(&b.wrappers.vrift)
                .arg("init")
                .current_dir(&src)
                .env("VRIFT_HOME", &b.wrappers.vrift_home),
        )
        .with_context(|| format!("vrift init in {}", src.display()))?;
    }
    let mount = b.cache.join("build-view");
    if mount.exists() {
        bail!(
            "{}: must not exist (the view appears there only inside the run)",
            mount.display()
        );
    }
    let place = Place::Mounted {
        real: src.clone(),
        manifest,
        mount,
    };
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let cflags = if b.opts.quick { "-O0" } else { "-O2" };
    let obj_of = |r: Runner| b.cache.join("obj").join(r.cli_name());

    // Untimed: builds (or finds) the link farm, as any earlier run would have.
    run_step(
        &mut b
            .wrappers
            .command(Runner::Vrift, &place, &["/bin/true".into()]),
    )?;
    let s = b.interleaved(&format!("make -j{jobs} ({units} sources)"), false, |r| {
        let obj = obj_of(r);
        if obj.exists() {
            std::fs::remove_dir_all(&obj).with_context(|| format!("{}", obj.display()))?;
        }
        let argv: Vec<OsString> = vec![
            "make".into(),
            "-s".into(),
            format!("-j{jobs}").into(),
            format!("OBJ={}", obj.display()).into(),
            format!("CFLAGS={cflags}").into(),
        ];
        let t = run_timed(&mut b.wrappers.command(r, &place, &argv))?;
        check_outputs(&obj, units)?;
        Ok(vec![t.wall.as_secs_f64()])
    })?;

    let mut t = b.seconds_table(
        format!(
            "build: make -j{jobs} + gcc {cflags}, {units} C sources of {SDIST} {SDIST_VERSION}"
        ),
        &s,
    );
    t.notes.push(
        "Clean build each run, objects and archive outside the view. vrift: `vrift run \
         --manifest M --mount P` where P does not exist on disk, so every source and the \
         Makefile are read from the view; proot: `proot -b SRC:P -w P`; native and bwrap \
         build in the real tree."
            .into(),
    );
    Ok(t)
}

/// Every source became an object, and the archive exists.
fn check_outputs(obj: &Path, units: usize) -> Result<()> {
    let lib = obj.join("libbench.a");
    if !lib.is_file() {
        bail!("{}: not built", lib.display());
    }
    let objects = std::fs::read_dir(obj)
        .with_context(|| format!("{}", obj.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".o"))
        .count();
    if objects != units {
        bail!("{}: {objects} objects for {units} sources", obj.display());
    }
    Ok(())
}
