//! Workload `syscalls`: the cost vrift adds to one notified system call, on a view path
//! (a hit) and on a path outside the view (pass-through), next to proot and bwrap; and the
//! kernel's own floor for a notification round trip.

use std::ffi::OsString;

use anyhow::{Context, Result};

use super::fixtures;
use super::harness::{run_timed, Place, Runner};
use super::stats::{added_us_per_call, fmt_ratio, median, ratio};
use super::table::Table;
use super::Bench;

const FILES: usize = 100;

/// `key=<number>` from a bench program's output line.
pub fn value(out: &str, key: &str) -> Result<f64> {
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .with_context(|| format!("no {key}= in the program's output {out:?}"))?
        .parse()
        .with_context(|| format!("{key} in {out:?}"))
}

pub fn run(b: &Bench) -> Result<Vec<Table>> {
    let bin = fixtures::static_program(&b.programs, &b.cache, "syscalls")?;
    let view = b.cache.join("syscalls/view");
    let outside = b.cache.join("syscalls/outside");
    fixtures::flat_files(&view, FILES, 4096)?;
    fixtures::flat_files(&outside, FILES, 4096)?;
    let calls: u64 = if b.opts.quick { 10_000 } else { 100_000 };
    // vrift ingests `view` and runs there; proot binds it onto itself.
    let place = Place::InPlace(view.clone());

    let mut t = Table::new(
        format!("syscalls: static C program, {calls} calls each"),
        &[
            "calls",
            "native ms",
            "overlay ms",
            "overlay/native",
            "overlay +us/call",
            "supervisor ms",
            "supervisor/native",
            "supervisor +us/call",
            "trace ms",
            "trace/vrift",
            "proot ms",
            "proot/native",
            "proot +us/call",
            "bwrap ms",
            "bwrap/native",
        ],
    );
    for (dir, label) in [(&view, "view (hit)"), (&outside, "outside (pass-through)")] {
        let argv: Vec<OsString> = vec![
            bin.clone().into(),
            dir.clone().into(),
            FILES.to_string().into(),
            calls.to_string().into(),
        ];
        let s = b.interleaved(&format!("syscalls {label}"), true, |r| {
            let out = run_timed(&mut b.wrappers.command(r, &place, &argv))?.stdout;
            Ok(vec![value(&out, "stat_ns")?, value(&out, "open_ns")?])
        })?;
        for (m, what) in [(0, "stat"), (1, "open+read+close")] {
            let native = s.median(Runner::Native, m);
            let ms = |r: Runner| {
                s.median(r, m)
                    .map_or("-".into(), |v| format!("{:.0}", v / 1e6))
            };
            let rel =
                |r: Runner| fmt_ratio(s.median(r, m).zip(native).and_then(|(v, n)| ratio(v, n)));
            let added = |r: Runner| {
                s.median(r, m)
                    .zip(native)
                    .and_then(|(v, n)| added_us_per_call(v, n, calls))
                    .map_or("-".into(), |us| format!("{us:+.1}"))
            };
            t.row(vec![
                format!("{what}, {label}"),
                ms(Runner::Native),
                ms(Runner::VriftOverlay),
                rel(Runner::VriftOverlay),
                added(Runner::VriftOverlay),
                ms(Runner::Vrift),
                rel(Runner::Vrift),
                added(Runner::Vrift),
                ms(Runner::VriftTrace),
                fmt_ratio(
                    s.median(Runner::VriftTrace, m)
                        .zip(s.median(Runner::Vrift, m))
                        .and_then(|(t, v)| ratio(t, v)),
                ),
                ms(Runner::Proot),
                rel(Runner::Proot),
                added(Runner::Proot),
                ms(Runner::Bwrap),
                rel(Runner::Bwrap),
            ]);
        }
    }
    t.notes.push(format!(
        "Loop time measured inside the program (start-up excluded); {FILES} files of 4 KiB \
         cycled by absolute path. Under the supervisor one notified call per iteration \
         (newfstatat, openat; read and close are not notified); under the overlay none. \"+us/call\" = (runner - native) / calls."
    ));
    Ok(vec![t, floor(b)?])
}

/// The notification round trip with a trivial C supervisor, by worker count and
/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: what no supervisor can beat on this machine.
fn floor(b: &Bench) -> Result<Table> {
    let bin = fixtures::static_program(&b.programs, &b.cache, "notify_rtt")?;
    let calls: u64 = if b.opts.quick { 20_000 } else { 200_000 };
    let configs = [(1, 0), (1, 1), (2, 0), (2, 1)];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut base = Vec::new();
    let mut sync_state = String::new();
    for i in 0..b.opts.runs {
        for (c, &(workers, sync)) in configs.iter().enumerate() {
            eprintln!(
                "bench: notify floor: run {}/{}, {workers} worker(s), sync {sync}",
                i + 1,
                b.opts.runs
            );
            let out = run_timed(
                std::process::Command::new(&bin)
                    .arg(calls.to_string())
                    .arg(workers.to_string())
                    .arg(sync.to_string()),
            )?
            .stdout;
            samples[c].push(value(&out, "notify_ns")?);
            base.push(value(&out, "base_ns")?);
            if sync == 1 {
                sync_state = out
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("sync="))
                    .unwrap_or_default()
                    .to_string();
            }
        }
    }
    let mut t = Table::new(
        "notification floor: getppid notified, answered CONTINUE by a minimal C supervisor",
        &[
            "supervisor threads in RECV",
            "SYNC_WAKE_UP",
            "round trip us",
        ],
    );
    for (c, &(workers, sync)) in configs.iter().enumerate() {
        let sync_cell = match (sync, sync_state.as_str()) {
            (0, _) => "off".to_string(),
            (_, "1") => "on".to_string(),
            (_, s) => format!("on ({s})"),
        };
        t.row(vec![
            workers.to_string(),
            sync_cell,
            median(&samples[c]).map_or("-".into(), |ns| format!("{:.1}", ns / 1000.0)),
        ]);
    }
    t.notes.push(format!(
        "{calls} calls per run; the same call without a filter takes {:.2} us (median).",
        median(&base).unwrap_or(0.0) / 1000.0
    ));
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_read_by_key() {
        let out = "stat_ns=120 open_ns=3400 calls=10\n";
        assert_eq!(value(out, "stat_ns").unwrap(), 120.0);
        assert_eq!(value(out, "open_ns").unwrap(), 3400.0);
    }

    #[test]
    fn a_missing_or_bad_value_is_an_error_naming_the_key() {
        let e = value("calls=10", "stat_ns").unwrap_err().to_string();
        assert!(e.contains("stat_ns"), "{e}");
        assert!(value("stat_ns=x", "stat_ns").is_err());
    }
}
