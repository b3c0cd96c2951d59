//! Workload `project`: a 20,000-file project used as a user's would be, side by side:
//! start-up of `vrift run -- true` (unchanged, and after one edit), `find` and `grep -r`
//! over it (start-up included), and appending 2 bytes to a 200 MB file (harvest and
//! write-back included).

use std::ffi::OsString;
use std::process::Command;

use anyhow::{Context, Result};

use super::fixtures;
use super::harness::{self, run_step, run_timed, which, Place, Runner};
use super::table::Table;
use super::{stats, Bench};

pub fn run(b: &Bench) -> Result<Vec<Table>> {
    let files = if b.opts.quick { 2_000 } else { 20_000 };
    let tree = b.cache.join(format!("project-{files}"));
    fixtures::generated_tree(&tree, files)?;
    harness::ensure_init(&b.wrappers, &tree)?;
    let busybox = which("busybox").context("busybox")?;
    let bb = |args: &[&str]| -> Vec<OsString> {
        std::iter::once(busybox.clone().into_os_string())
            .chain(args.iter().map(OsString::from))
            .collect()
    };
    let place = Place::InPlace(tree.clone());
    let runners: Vec<Runner> = b
        .runners
        .iter()
        .copied()
        .filter(|r| *r != Runner::VriftTrace)
        .collect();
    let time = |r: Runner, argv: &[OsString]| -> Result<f64> {
        Ok(run_timed(&mut b.wrappers.command(r, &place, argv))?
            .wall
            .as_secs_f64())
    };

    let mut rows: Vec<(String, super::Samples)> = Vec::new();
    let t = bb(&["true"]);
    rows.push((
        "start-up, unchanged".into(),
        b.interleaved_on(&runners, "project start-up", true, |r| {
            Ok(vec![time(r, &t)?])
        })?,
    ));
    // One file edited before each run: the refresh ingests it and the overlay builds (or
    // reuses) a delta layer.
    let edited = tree.join("d000/edited.txt");
    let mut n = 0u64;
    rows.push((
        "start-up, one file edited".into(),
        b.interleaved_on(&runners, "project start-up after an edit", false, |r| {
            n += 1;
            std::fs::write(&edited, format!("edit {n}\n"))?;
            Ok(vec![time(r, &t)?])
        })?,
    ));
    let find = bb(&["find", ".", "-type", "f"]);
    rows.push((
        "find . -type f".into(),
        b.interleaved_on(&runners, "project find", true, |r| {
            Ok(vec![time(r, &find)?])
        })?,
    ));
    let grep_ok = |r: Runner| -> Result<f64> {
        // grep exits 1 when nothing matches: run it through sh so the status is 0.
        let script = format!("{} grep -r zzzz-not-there . ; true", busybox.display());
        time(r, &bb(&["sh", "-c", &script]))
    };
    rows.push((
        "grep -r".into(),
        b.interleaved_on(&runners, "project grep -r", true, |r| Ok(vec![grep_ok(r)?]))?,
    ));

    // A Python script importing 24 standard modules and pip's command line from a venv that
    // lives in the view.
    let venv = tree.join("pyvenv");
    if !venv.join("bin/python3").exists() {
        let python = which("python3").context("python3")?;
        run_step(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
        // A new subtree: refresh the manifest so the venv is part of the view.
        run_step(
            Command::new(&b.wrappers.vrift)
                .arg("init")
                .current_dir(&tree)
                .env("VRIFT_HOME", &b.wrappers.vrift_home),
        )?;
    }
    let imports = "import pip._internal.cli.main, json, asyncio, email.parser, http.client, \
                   xml.etree.ElementTree, sqlite3, decimal, argparse, logging, unittest, \
                   urllib.request, zipfile, tarfile, csv, subprocess, concurrent.futures, \
                   dataclasses, typing, pathlib, shutil, tempfile, hashlib, inspect, ssl";
    let py: Vec<OsString> = vec!["pyvenv/bin/python3".into(), "-c".into(), imports.into()];
    rows.push((
        "python imports (venv in the view)".into(),
        b.interleaved_on(&runners, "python imports", true, |r| {
            Ok(vec![time(r, &py)?])
        })?,
    ));

    let mut t1 = Table::new(
        format!("project of {files} files: start-up, find, grep -r (seconds, medians)"),
        &["what", "runner", "median s", "ratio to native"],
    );
    for (what, s) in &rows {
        let native = s.median(Runner::Native, 0);
        for &r in &runners {
            let v = s.median(r, 0);
            t1.row(vec![
                what.clone(),
                r.name().into(),
                v.map_or("-".into(), |v| format!("{v:.3}")),
                stats::fmt_ratio(v.zip(native).and_then(|(v, n)| stats::ratio(v, n))),
            ]);
        }
    }

    // Appending to a 200 MB file: the overlay copies it up and the harvest hashes it; the
    // supervisor copies it to a private copy. Both write it back.
    let big = b.cache.join("append-project");
    if !big.join("big.bin").is_file() {
        std::fs::create_dir_all(&big)?;
        let data: Vec<u8> = (0..200u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(big.join("big.bin"), data)?;
        run_step(
            Command::new(&b.wrappers.vrift)
                .arg("init")
                .current_dir(&big)
                .env("VRIFT_HOME", &b.wrappers.vrift_home),
        )?;
    }
    let big_place = Place::InPlace(big.clone());
    let append = bb(&["sh", "-c", "echo x >> big.bin"]);
    let s = b.interleaved_on(
        &runners
            .iter()
            .copied()
            .filter(|r| *r != Runner::Proot)
            .collect::<Vec<_>>(),
        "append to a 200 MB file",
        false,
        |r| {
            Ok(vec![run_timed(
                &mut b.wrappers.command(r, &big_place, &append),
            )?
            .wall
            .as_secs_f64()])
        },
    )?;
    let mut t2 = b.seconds_table(
        "append 2 bytes to a 200 MB file (harvest and write-back included)".into(),
        &s,
    );
    t2.notes
        .push("The file grows by 2 bytes each run; every runner appends to the same file.".into());
    Ok(vec![t1, t2])
}
