//! What the supervisor did with each notified call, per syscall and per path: the columns of
//! `vrift trace` that only the supervisor knows (hit, miss, pass-through, denied, its own
//! time). Kept only when a trace asks for it, so `vrift run` pays nothing for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Served;

/// Syscall numbers tracked per slot (x86_64 has fewer than 512).
pub const SLOTS: usize = 512;

#[derive(Default)]
struct Slot {
    hit: AtomicU64,
    miss: AtomicU64,
    passthrough: AtomicU64,
    denied: AtomicU64,
    /// Answered by the supervisor itself (not continued): the kernel never runs these, so
    /// syscall tracepoints do not see them.
    answered: AtomicU64,
    supervisor_ns: AtomicU64,
}

/// Per-path counts: how often a path was asked for, and how often it was missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCount {
    pub calls: u64,
    pub misses: u64,
}

pub struct ServedStats {
    slots: Vec<Slot>,
    paths: Mutex<HashMap<Vec<u8>, PathCount>>,
}

/// One syscall's row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServedRow {
    pub hit: u64,
    pub miss: u64,
    pub passthrough: u64,
    pub denied: u64,
    pub answered: u64,
    pub supervisor_ns: u64,
}

impl ServedRow {
    pub fn total(&self) -> u64 {
        self.hit + self.miss + self.passthrough + self.denied
    }
}

impl std::fmt::Debug for ServedStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedStats")
            .field("rows", &self.rows())
            .finish_non_exhaustive()
    }
}

impl Default for ServedStats {
    fn default() -> Self {
        ServedStats {
            slots: (0..SLOTS).map(|_| Slot::default()).collect(),
            paths: Mutex::new(HashMap::new()),
        }
    }
}

impl ServedStats {
    pub fn record(&self, nr: i32, served: Served, continued: bool, ns: u64, path: Option<Vec<u8>>) {
        let Some(slot) = usize::try_from(nr).ok().and_then(|i| self.slots.get(i)) else {
            return;
        };
        let c = match served {
            Served::Hit => &slot.hit,
            Served::Miss => &slot.miss,
            Served::Passthrough => &slot.passthrough,
            Served::Denied => &slot.denied,
        };
        c.fetch_add(1, Ordering::Relaxed);
        if !continued {
            slot.answered.fetch_add(1, Ordering::Relaxed);
        }
        slot.supervisor_ns.fetch_add(ns, Ordering::Relaxed);
        if let Some(p) = path {
            let mut paths = self.paths.lock().unwrap();
            let e = paths.entry(p).or_default();
            e.calls += 1;
            if served == Served::Miss {
                e.misses += 1;
            }
        }
    }

    /// Rows by syscall number, for every syscall that was notified at least once.
    pub fn rows(&self) -> Vec<(u32, ServedRow)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(nr, s)| {
                (
                    nr as u32,
                    ServedRow {
                        hit: s.hit.load(Ordering::Relaxed),
                        miss: s.miss.load(Ordering::Relaxed),
                        passthrough: s.passthrough.load(Ordering::Relaxed),
                        denied: s.denied.load(Ordering::Relaxed),
                        answered: s.answered.load(Ordering::Relaxed),
                        supervisor_ns: s.supervisor_ns.load(Ordering::Relaxed),
                    },
                )
            })
            .filter(|(_, r)| r.total() > 0)
            .collect()
    }

    pub fn paths(&self) -> HashMap<Vec<u8>, PathCount> {
        self.paths.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_syscall_and_path() {
        let s = ServedStats::default();
        s.record(4, Served::Hit, false, 10, Some(b"/p/a".to_vec()));
        s.record(4, Served::Miss, false, 5, Some(b"/p/b".to_vec()));
        s.record(4, Served::Miss, false, 5, Some(b"/p/b".to_vec()));
        s.record(257, Served::Passthrough, true, 1, None);
        s.record(9999, Served::Hit, false, 1, None); // out of range: ignored
        let rows = s.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            (
                4,
                ServedRow {
                    hit: 1,
                    miss: 2,
                    passthrough: 0,
                    denied: 0,
                    answered: 3,
                    supervisor_ns: 20
                }
            )
        );
        assert_eq!(rows[1].1.passthrough, 1);
        assert_eq!(
            s.paths()[&b"/p/b".to_vec()],
            PathCount {
                calls: 2,
                misses: 2
            }
        );
    }
}
