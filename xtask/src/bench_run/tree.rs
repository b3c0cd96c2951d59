//! Workload `tree`: busybox `find . -type f | xargs sha256sum` over a generated view of
//! 20,000 files, checked to print the same digests under every runner.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::fixtures;
use super::harness::{self, run_timed, which, Place, Runner};
use super::table::Table;
use super::Bench;

pub fn run(b: &Bench) -> Result<Table> {
    let files = if b.opts.quick { 2_000 } else { 20_000 };
    let tree = b.cache.join(format!("tree-{files}"));
    fixtures::generated_tree(&tree, files)?;
    harness::ensure_init(&b.wrappers, &tree)?;
    let busybox = which("busybox").context("busybox")?;
    let out_dir = b.cache.join("out");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("{}", out_dir.display()))?;
    let place = Place::InPlace(tree.clone());
    let out_of = |r: Runner| out_dir.join(format!("tree-{}.txt", r.name()));
    let argv = |r: Runner| -> Vec<OsString> {
        let bb = busybox.display();
        let script = format!(
            "{bb} find . -type f -name '*.dat' | {bb} xargs {bb} sha256sum > '{}'",
            out_of(r).display()
        );
        vec![
            busybox.clone().into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]
    };

    let s = b.interleaved(&format!("tree of {files} files"), true, |r| {
        let t = run_timed(&mut b.wrappers.command(r, &place, &argv(r)))?;
        Ok(vec![t.wall.as_secs_f64()])
    })?;
    let expected = sorted_lines(&out_of(Runner::Native))?;
    if expected.len() != files {
        bail!(
            "native run hashed {} files, expected {files}",
            expected.len()
        );
    }
    for &r in &b.runners {
        if sorted_lines(&out_of(r))? != expected {
            bail!(
                "{}: the digests differ from the native run's",
                out_of(r).display()
            );
        }
    }
    // What `vrift run` itself costs here: stat-check refresh, farm lookup, namespace.
    let true_argv: Vec<OsString> = vec![busybox.clone().into(), "true".into()];
    let start = b.interleaved_on(
        &[Runner::Native, Runner::Vrift],
        "tree start-up",
        false,
        |r| {
            Ok(vec![run_timed(
                &mut b.wrappers.command(r, &place, &true_argv),
            )?
            .wall
            .as_secs_f64()])
        },
    )?;

    let mut t = b.seconds_table(
        format!("tree: busybox find | xargs sha256sum over {files} files"),
        &s,
    );
    let (sn, sv) = (
        start.median(Runner::Native, 0),
        start.median(Runner::Vrift, 0),
    );
    if let (Some(sn), Some(sv)) = (sn, sv) {
        t.notes.push(format!(
            "Wall time of the whole command, vrift's start-up included: `vrift run -- busybox \
             true` in this tree takes {:.2} s (native {:.3} s). Every runner printed the same \
             {files} digests.",
            sv, sn
        ));
    }
    Ok(t)
}

fn sorted_lines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    Ok(lines)
}
