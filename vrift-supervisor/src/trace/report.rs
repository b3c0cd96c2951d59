//! The report of `vrift trace`: the eBPF measurements and the supervisor's own counts, merged
//! per syscall, as text for a person, JSON for tools, and a Chrome trace-event timeline.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::syscall_names::{syscall_name, syscall_number, KERNEL_FILE_CALLS};
use super::{TraceData, TraceUnavailable};
use crate::projection::supervisor::filter::FILE_CALLS;
use crate::projection::supervisor::served::{PathCount, ServedStats};

/// One file syscall: how the view served it and what it cost.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FileRow {
    pub name: String,
    pub calls: u64,
    pub hit: u64,
    pub miss: u64,
    pub passthrough: u64,
    pub denied: u64,
    /// hit / (hit + miss): how often a path looked up in the view was there.
    pub hit_rate: Option<f64>,
    pub total_ns: Option<u64>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    /// Time the supervisor spent answering these calls (for calls it answered itself, the
    /// whole cost: the kernel never ran them, so total/p50/p99 cover only the others).
    pub supervisor_ns: u64,
}

/// A syscall the supervisor does not see (everything but file calls).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OtherRow {
    pub name: String,
    pub calls: u64,
    pub total_ns: u64,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PathRow {
    pub path: String,
    pub calls: u64,
    pub misses: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub command: Vec<String>,
    pub exit_status: u8,
    pub wall_ns: u64,
    /// The projection that served the view (`overlay`, `supervisor`).
    pub projection: String,
    /// Why the eBPF columns (calls of other syscalls, total, p50, p99) are missing.
    pub ebpf_missing: Option<String>,
    /// Why the hit, miss, pass-through and denied columns are missing (the overlay without
    /// eBPF: nothing else sees the calls).
    pub classes_missing: Option<String>,
    /// File calls whose path record was lost: counted in `calls`, in no class.
    pub unclassified: u64,
    pub file_syscalls: Vec<FileRow>,
    pub other_syscalls: Vec<OtherRow>,
    pub top_paths: Vec<PathRow>,
    pub top_misses: Vec<PathRow>,
    /// Timeline records lost (the report's counts are still exact).
    pub timeline_dropped: u64,
    /// Calls counted but not timed (too many in flight at once).
    pub untimed: u64,
    /// Children the eBPF side could not follow (its process map was full).
    pub unfollowed_children: u64,
}

const TOP: usize = 10;

impl Report {
    pub fn build(
        command: Vec<String>,
        exit_status: u8,
        wall_ns: u64,
        projection: &str,
        ebpf: &Result<TraceData, TraceUnavailable>,
        served: Option<&ServedStats>,
    ) -> Report {
        let none = ServedStats::default();
        let classes_missing = match (served, ebpf) {
            (Some(_), _) => None,
            (None, Err(e)) => Some(format!(
                "under the {projection} projection the kernel serves every call, and only \
                 eBPF could classify them, which is unavailable: {e}"
            )),
            (None, Ok(_)) => Some("the eBPF side recorded no paths".into()),
        };
        let served = served.unwrap_or(&none);
        let mut file_nrs: Vec<u32> = FILE_CALLS
            .iter()
            .chain(KERNEL_FILE_CALLS)
            .filter_map(|n| syscall_number(n))
            .collect();
        file_nrs.sort_unstable();
        file_nrs.dedup();
        let served_rows: HashMap<u32, _> = served.rows().into_iter().collect();
        let ebpf_rows: HashMap<u32, &super::SyscallRow> = match ebpf {
            Ok(d) => d.per_syscall.iter().map(|r| (r.nr, r)).collect(),
            Err(_) => HashMap::new(),
        };
        let mut file_syscalls = Vec::new();
        for nr in &file_nrs {
            let s = served_rows.get(nr).copied().unwrap_or_default();
            let e = ebpf_rows.get(nr);
            // Calls the supervisor answered itself never reach the kernel's syscall
            // tracepoints (seccomp runs first), so eBPF sees only the continued ones.
            let calls = e.map(|r| r.calls + s.answered).unwrap_or(s.total());
            if calls == 0 && s.total() == 0 {
                continue;
            }
            let looked_up = s.hit + s.miss;
            file_syscalls.push(FileRow {
                name: syscall_name(*nr).unwrap_or("?").to_string(),
                calls,
                hit: s.hit,
                miss: s.miss,
                passthrough: s.passthrough,
                denied: s.denied,
                hit_rate: (looked_up > 0).then(|| s.hit as f64 / looked_up as f64),
                total_ns: e.map(|r| r.total_ns),
                p50_ns: e.and_then(|r| r.p50_ns),
                p99_ns: e.and_then(|r| r.p99_ns),
                supervisor_ns: s.supervisor_ns,
            });
        }
        file_syscalls.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
        let mut other_syscalls: Vec<OtherRow> = ebpf_rows
            .values()
            .filter(|r| !file_nrs.contains(&r.nr))
            .map(|r| OtherRow {
                name: r.name.clone(),
                calls: r.calls,
                total_ns: r.total_ns,
                p50_ns: r.p50_ns,
                p99_ns: r.p99_ns,
            })
            .collect();
        other_syscalls.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.name.cmp(&b.name)));
        let paths = served.paths();
        let mut by_count: Vec<(&Vec<u8>, &PathCount)> = paths.iter().collect();
        let row = |(p, c): (&Vec<u8>, &PathCount)| PathRow {
            path: String::from_utf8_lossy(p).into_owned(),
            calls: c.calls,
            misses: c.misses,
        };
        by_count.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then(a.0.cmp(b.0)));
        let top_paths = by_count.iter().take(TOP).map(|x| row(*x)).collect();
        let mut by_miss: Vec<_> = paths.iter().filter(|(_, c)| c.misses > 0).collect();
        by_miss.sort_by(|a, b| b.1.misses.cmp(&a.1.misses).then(a.0.cmp(b.0)));
        let top_misses = by_miss.into_iter().take(TOP).map(row).collect();
        Report {
            command,
            exit_status,
            wall_ns,
            projection: projection.to_string(),
            ebpf_missing: ebpf.as_ref().err().map(|e| e.to_string()),
            classes_missing,
            unclassified: ebpf.as_ref().map(|d| d.paths_dropped).unwrap_or(0),
            file_syscalls,
            other_syscalls,
            top_paths,
            top_misses,
            timeline_dropped: ebpf.as_ref().map(|d| d.dropped).unwrap_or(0),
            untimed: ebpf.as_ref().map(|d| d.untimed).unwrap_or(0),
            unfollowed_children: ebpf.as_ref().map(|d| d.unfollowed_children).unwrap_or(0),
        }
    }

    /// The report for a person.
    pub fn to_text(&self) -> String {
        let mut o = String::new();
        // Only the supervisor spends time of its own on a call.
        let supervised = self.projection == "supervisor";
        let _ = writeln!(
            o,
            "vrift trace: `{}` exited {} after {}",
            self.command.join(" "),
            self.exit_status,
            dur(Some(self.wall_ns))
        );
        if let Some(why) = &self.classes_missing {
            let _ = writeln!(
                o,
                "The hit, miss, pass and denied columns are missing: {why}. \
                 `--projection supervisor` classifies the calls without eBPF."
            );
        } else if let Some(why) = &self.ebpf_missing {
            let _ = writeln!(
                o,
                "eBPF measurements unavailable ({why}): calls of non-file syscalls, total, \
                 p50 and p99 are missing; the supervisor's counts below are complete."
            );
        }
        if self.unclassified > 0 {
            let _ = writeln!(
                o,
                "{} file calls were counted but lost their path record (the ring buffer was \
                 full): they are in `calls`, in no class.",
                self.unclassified
            );
        }
        let _ = writeln!(
            o,
            "\n{:<14} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10} {:>9} {:>9} {:>11}",
            "file syscall",
            "calls",
            "hit",
            "miss",
            "pass",
            "denied",
            "hit%",
            "total",
            "p50",
            "p99",
            "supervisor"
        );
        let mut t = [0u64; 7];
        for r in &self.file_syscalls {
            let _ = writeln!(
                o,
                "{:<14} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10} {:>9} {:>9} {:>11}",
                r.name,
                r.calls,
                r.hit,
                r.miss,
                r.passthrough,
                r.denied,
                pct(r.hit_rate),
                dur(r.total_ns),
                dur(r.p50_ns),
                dur(r.p99_ns),
                dur(supervised.then_some(r.supervisor_ns))
            );
            for (i, v) in [
                r.calls,
                r.hit,
                r.miss,
                r.passthrough,
                r.denied,
                r.total_ns.unwrap_or(0),
                r.supervisor_ns,
            ]
            .into_iter()
            .enumerate()
            {
                t[i] += v;
            }
        }
        let rate = (t[1] + t[2] > 0).then(|| t[1] as f64 / (t[1] + t[2]) as f64);
        let _ = writeln!(
            o,
            "{:<14} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6} {:>10} {:>9} {:>9} {:>11}",
            "total",
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            pct(rate),
            dur(self.ebpf_missing.is_none().then_some(t[5])),
            "",
            "",
            dur(supervised.then_some(t[6]))
        );
        if !self.other_syscalls.is_empty() {
            let _ = writeln!(
                o,
                "\n{:<20} {:>9} {:>10} {:>9} {:>9}",
                "other syscall", "calls", "total", "p50", "p99"
            );
            for r in &self.other_syscalls {
                let _ = writeln!(
                    o,
                    "{:<20} {:>9} {:>10} {:>9} {:>9}",
                    r.name,
                    r.calls,
                    dur(Some(r.total_ns)),
                    dur(r.p50_ns),
                    dur(r.p99_ns)
                );
            }
        }
        for (title, rows) in [
            ("hot paths", &self.top_paths),
            ("hot misses", &self.top_misses),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(o, "\n{title:<14} {:>9} {:>9}  path", "calls", "misses");
            for r in rows {
                let _ = writeln!(o, "{:<14} {:>9} {:>9}  {}", "", r.calls, r.misses, r.path);
            }
        }
        if self.untimed > 0 {
            let _ = writeln!(o, "\n{} calls were counted but not timed", self.untimed);
        }
        if self.unfollowed_children > 0 {
            let _ = writeln!(
                o,
                "\n{} child processes could not be followed: their calls are not counted",
                self.unfollowed_children
            );
        }
        if self.timeline_dropped > 0 {
            let _ = writeln!(
                o,
                "\n{} timeline records were dropped (the counts above are exact)",
                self.timeline_dropped
            );
        }
        o
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn durations_are_all_in_ms() {
        assert_eq!(dur(Some(3_200_000)), "3.200ms");
        assert_eq!(dur(Some(1_234)), "0.0012ms");
        assert_eq!(dur(Some(12_345_678)), "12.3ms");
        assert_eq!(dur(Some(12_345_678_901)), "12345.7ms");
        assert_eq!(dur(None), "-");
    }

    #[test]
    fn listings_and_xattrs_are_file_calls() {
        let nr = |n| syscall_number(n).unwrap();
        let data = TraceData {
            per_syscall: ["getdents64", "fsetxattr", "close"]
                .iter()
                .map(|n| super::super::SyscallRow {
                    nr: nr(n),
                    name: n.to_string(),
                    calls: 3,
                    timed: 3,
                    total_ns: 3_000,
                    p50_ns: Some(1_000),
                    p99_ns: Some(1_000),
                })
                .collect(),
            ..TraceData::default()
        };
        let r = Report::build(
            vec!["x".into()],
            0,
            1,
            "supervisor",
            &Ok(data),
            Some(&ServedStats::default()),
        );
        let files: Vec<&str> = r.file_syscalls.iter().map(|f| f.name.as_str()).collect();
        assert!(
            files.contains(&"getdents64") && files.contains(&"fsetxattr"),
            "{files:?}"
        );
        let others: Vec<&str> = r.other_syscalls.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(others, vec!["close"]);
        assert!(!r.to_text().contains("us "), "{}", r.to_text());
    }
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// A duration in milliseconds, the one unit of the whole report: four decimals below 1 ms
/// (a tenth of a microsecond still shows), three below 10 ms, one above.
pub(crate) fn dur(ns: Option<u64>) -> String {
    match ns {
        None => "-".into(),
        Some(n) if n < 1_000_000 => format!("{:.4}ms", n as f64 / 1e6),
        Some(n) if n < 10_000_000 => format!("{:.3}ms", n as f64 / 1e6),
        Some(n) => format!("{:.1}ms", n as f64 / 1e6),
    }
}

/// The timeline in Chrome's trace-event format (chrome://tracing, Perfetto): one complete
/// event per syscall, by process and thread.
pub fn chrome_trace(data: &TraceData) -> serde_json::Value {
    let events: Vec<serde_json::Value> = data
        .events
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": syscall_name(e.nr).map(str::to_string).unwrap_or_else(|| format!("syscall_{}", e.nr)),
                "cat": "syscall",
                "ph": "X",
                "ts": e.start_ns.saturating_sub(data.clock_start_ns) as f64 / 1000.0,
                "dur": e.dur_ns as f64 / 1000.0,
                "pid": e.pid,
                "tid": e.tid,
            })
        })
        .collect();
    serde_json::json!({ "traceEvents": events, "displayTimeUnit": "ns" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::supervisor::Served;

    #[test]
    fn merges_supervisor_counts_with_ebpf_rows() {
        let served = ServedStats::default();
        let nr = syscall_number("newfstatat").unwrap() as i32;
        for _ in 0..3 {
            served.record(nr, Served::Hit, false, 100, Some(b"/p/a".to_vec()));
        }
        served.record(nr, Served::Miss, false, 100, Some(b"/p/missing".to_vec()));
        served.record(nr, Served::Passthrough, true, 100, Some(b"/etc/x".to_vec()));
        served.record(nr, Served::Passthrough, true, 100, Some(b"/etc/x".to_vec()));
        let data = TraceData {
            per_syscall: vec![
                crate::trace::SyscallRow {
                    nr: nr as u32,
                    name: "newfstatat".into(),
                    // The kernel ran only the two continued calls.
                    calls: 2,
                    timed: 2,
                    total_ns: 4000,
                    p50_ns: Some(900),
                    p99_ns: Some(1500),
                },
                crate::trace::SyscallRow {
                    nr: syscall_number("read").unwrap(),
                    name: "read".into(),
                    calls: 7,
                    timed: 7,
                    total_ns: 70,
                    p50_ns: Some(10),
                    p99_ns: Some(12),
                },
            ],
            ..Default::default()
        };
        let r = Report::build(
            vec!["x".into()],
            0,
            1,
            "supervisor",
            &Ok(data),
            Some(&served),
        );
        assert_eq!(r.file_syscalls.len(), 1);
        let f = &r.file_syscalls[0];
        assert_eq!((f.calls, f.hit, f.miss, f.passthrough), (6, 3, 1, 2));
        assert_eq!(f.hit_rate, Some(0.75));
        assert_eq!(f.total_ns, Some(4000));
        assert_eq!(r.other_syscalls.len(), 1);
        assert_eq!(r.other_syscalls[0].name, "read");
        assert_eq!(r.top_paths[0].path, "/p/a");
        assert_eq!(r.top_misses[0].path, "/p/missing");
        assert!(r.to_text().contains("newfstatat"));
    }

    #[test]
    fn without_ebpf_says_which_columns_are_missing() {
        let served = ServedStats::default();
        let nr = syscall_number("openat").unwrap() as i32;
        served.record(nr, Served::Passthrough, true, 100, None);
        let r = Report::build(
            vec!["x".into()],
            0,
            1,
            "supervisor",
            &Err(TraceUnavailable::NotPermitted("no CAP_BPF".into())),
            Some(&served),
        );
        assert_eq!(r.file_syscalls[0].calls, 1);
        assert_eq!(r.file_syscalls[0].total_ns, None);
        let text = r.to_text();
        assert!(text.contains("no CAP_BPF"), "{text}");
        assert!(text.contains("are missing"), "{text}");
    }
}
