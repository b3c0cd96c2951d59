//! Formatting shared by the store commands: sizes, times, hashes, manifest entries as JSON,
//! and a buffered stdout that treats a closed pipe (`| head`) as a normal end.

use std::io::{self, BufWriter, StdoutLock, Write};

use serde_json::{json, Value};
use vrift_common::hash::Hash;
use vrift_common::manifest::{display_path, escape_bytes, Entry, EntryKind};

/// "1.5 MiB" style, exact bytes below 1 KiB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The first 12 hex digits, enough to tell blobs apart by eye.
pub fn short_hash(h: &Hash) -> String {
    h.to_hex()[..12].to_string()
}

/// UTC "YYYY-MM-DD HH:MM:SS" for nanoseconds since the epoch (negative ones too).
pub fn fmt_mtime(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// One manifest entry as JSON; paths and targets as escaped text (see `display_path`).
pub fn entry_json(path: &[u8], e: &Entry) -> Value {
    json!({
        "path": display_path(path),
        "kind": e.kind.name(),
        "mode": format!("{:04o}", e.mode),
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "hash": (e.kind == EntryKind::File).then(|| e.hash.to_hex()),
        "target": (e.kind == EntryKind::Symlink).then(|| escape_bytes(&e.target)),
        "owner": e.meta.owner.map(|o| json!({"uid": o.uid, "gid": o.gid})),
        "link": (e.meta.link != 0).then_some(e.meta.link),
        "xattrs": (!e.meta.xattrs.is_empty()).then(|| {
            e.meta
                .xattrs
                .iter()
                .map(|x| (escape_bytes(&x.name), json!(escape_bytes(&x.value))))
                .collect::<serde_json::Map<String, Value>>()
        }),
    })
}

/// Buffered stdout.
pub fn stdout() -> BufWriter<StdoutLock<'static>> {
    BufWriter::with_capacity(64 * 1024, io::stdout().lock())
}

/// Treat EPIPE on stdout as success: the reader has seen what it wanted.
pub fn finish_output(result: io::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Print a JSON value followed by a newline.
pub fn print_json(v: &Value) -> anyhow::Result<()> {
    let mut out = stdout();
    let r = serde_json::to_writer_pretty(&mut out, v)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    finish_output(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(fmt_mtime(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_mtime(-1), "1969-12-31 23:59:59");
        assert_eq!(fmt_mtime(1_700_000_000_999_999_999), "2023-11-14 22:13:20");
        assert_eq!(
            fmt_mtime(951_782_400 * 1_000_000_000),
            "2000-02-29 00:00:00"
        );
        // Extremes do not panic.
        let _ = fmt_mtime(i64::MAX);
        let _ = fmt_mtime(i64::MIN);
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }
}
