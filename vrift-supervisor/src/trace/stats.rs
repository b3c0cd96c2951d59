//! Pure aggregation of what the eBPF maps hold into per-syscall report rows: summing the
//! per-CPU slots and reading percentiles off the latency histograms.

use vrift_ebpf_common::{hist_bucket_range, SyscallSlot, HIST_BUCKETS, OVERFLOW_SLOT};

use super::syscall_names::syscall_name;

/// One syscall's statistics for the traced process tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallRow {
    /// x86_64 syscall number ([`OVERFLOW_SLOT`] collects numbers outside the table).
    pub nr: u32,
    /// Its name, `"(other)"` for the overflow slot, `"syscall_<nr>"` when unassigned.
    pub name: String,
    /// Calls made (counted at entry: exact).
    pub calls: u64,
    /// Calls whose duration was measured (entered and returned while traced; `exit_group`
    /// never returns, and a call already running when tracing started is not timed).
    pub timed: u64,
    /// Sum of the measured durations, in nanoseconds.
    pub total_ns: u64,
    /// Median duration (from the histogram: within 12.5% of the true value).
    pub p50_ns: Option<u64>,
    /// 99th percentile duration (same precision).
    pub p99_ns: Option<u64>,
}

/// Sums one syscall's slots from every CPU.
pub fn merge_slots<'a>(per_cpu: impl IntoIterator<Item = &'a SyscallSlot>) -> SyscallSlot {
    let mut sum = SyscallSlot::ZERO;
    for slot in per_cpu {
        sum.count += slot.count;
        sum.timed += slot.timed;
        sum.total_ns += slot.total_ns;
        for (total, n) in sum.hist.iter_mut().zip(slot.hist.iter()) {
            *total += n;
        }
    }
    sum
}

/// The `q`-quantile (0 < q <= 1) of the durations in `hist`, or `None` when it is empty.
///
/// Returns the middle of the bucket holding the value of rank `ceil(q * n)`; buckets below 4
/// ns are exact, wider ones are at most 25% wide, so the answer is within 12.5% of the
/// sample's true quantile.
pub fn quantile(hist: &[u64; HIST_BUCKETS], q: f64) -> Option<u64> {
    let n: u64 = hist.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0u64;
    for (idx, &count) in hist.iter().enumerate() {
        seen += count;
        if seen >= rank {
            let (lo, hi) = hist_bucket_range(idx);
            return Some(if hi == u64::MAX {
                lo
            } else {
                lo + (hi - lo) / 2
            });
        }
    }
    unreachable!("rank {rank} is at most the total {n}")
}

/// The report row for syscall slot `nr` with merged statistics `slot`.
pub fn row(nr: u32, slot: &SyscallSlot) -> SyscallRow {
    let name = if nr == OVERFLOW_SLOT {
        "(other)".to_owned()
    } else {
        syscall_name(nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned)
    };
    SyscallRow {
        nr,
        name,
        calls: slot.count,
        timed: slot.timed,
        total_ns: slot.total_ns,
        p50_ns: quantile(&slot.hist, 0.50),
        p99_ns: quantile(&slot.hist, 0.99),
    }
}

/// Rows for every syscall the tree made at least once, by syscall number.
pub fn rows(slots: impl IntoIterator<Item = (u32, SyscallSlot)>) -> Vec<SyscallRow> {
    let mut rows: Vec<SyscallRow> = slots
        .into_iter()
        .filter(|(_, slot)| slot.count > 0 || slot.timed > 0)
        .map(|(nr, slot)| row(nr, &slot))
        .collect();
    rows.sort_by_key(|r| r.nr);
    rows
}

#[cfg(test)]
mod tests {
    use vrift_ebpf_common::hist_bucket;

    use super::*;

    fn slot_of(durations: &[u64]) -> SyscallSlot {
        let mut slot = SyscallSlot::ZERO;
        for &d in durations {
            slot.count += 1;
            slot.timed += 1;
            slot.total_ns += d;
            slot.hist[hist_bucket(d)] += 1;
        }
        slot
    }

    /// The exact quantile by the same rank rule, for comparison.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn empty_histogram_has_no_quantiles() {
        assert_eq!(quantile(&SyscallSlot::ZERO.hist, 0.5), None);
        let r = row(110, &SyscallSlot::ZERO);
        assert_eq!((r.p50_ns, r.p99_ns), (None, None));
    }

    #[test]
    fn small_durations_are_exact() {
        let slot = slot_of(&[1, 2, 2, 3]);
        assert_eq!(quantile(&slot.hist, 0.5), Some(2));
        assert_eq!(quantile(&slot.hist, 0.99), Some(3));
        assert_eq!(quantile(&slot.hist, 0.25), Some(1));
    }

    #[test]
    fn one_value_gives_that_value_within_the_bucket_precision() {
        let slot = slot_of(&[10_000; 7]);
        let p50 = quantile(&slot.hist, 0.5).unwrap();
        assert!(p50.abs_diff(10_000) * 8 <= 10_000, "{p50}");
    }

    #[test]
    fn quantiles_stay_within_an_eighth_of_the_exact_value() {
        // A skewed mix: many fast calls, a slow tail.
        let mut durations: Vec<u64> = (0..990).map(|i| 300 + (i * 37) % 900).collect();
        durations.extend((0..10).map(|i| 2_000_000 + i * 150_000));
        let slot = slot_of(&durations);
        durations.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let want = exact(&durations, q);
            let got = quantile(&slot.hist, q).unwrap();
            assert!(
                got.abs_diff(want) * 8 <= want,
                "q={q}: got {got}, exact {want}"
            );
        }
        // The p99 of this mix is in the fast group only just: 990 of 1000 are fast.
        assert!(quantile(&slot.hist, 0.99).unwrap() < 2_000);
        assert!(quantile(&slot.hist, 0.995).unwrap() > 1_000_000);
    }

    #[test]
    fn merging_sums_every_cpu() {
        let a = slot_of(&[5, 100, 100]);
        let b = slot_of(&[100, 7_000]);
        let sum = merge_slots([&a, &b]);
        assert_eq!((sum.count, sum.timed, sum.total_ns), (5, 5, 7_305));
        assert_eq!(sum.hist[hist_bucket(100)], 3);
        assert_eq!(
            quantile(&sum.hist, 0.5),
            quantile(&slot_of(&[100]).hist, 0.5)
        );
    }

    #[test]
    fn rows_skip_unused_syscalls_and_name_the_rest() {
        let mut untimed = SyscallSlot::ZERO;
        untimed.count = 1; // exit_group: entered, never returned
        let rows = rows([
            (OVERFLOW_SLOT, slot_of(&[9])),
            (110, slot_of(&[50, 60])),
            (0, SyscallSlot::ZERO),
            (231, untimed),
            (335, slot_of(&[1])),
        ]);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["getppid", "exit_group", "syscall_335", "(other)"]);
        assert_eq!(
            (rows[0].calls, rows[0].timed, rows[0].total_ns),
            (2, 2, 110)
        );
        assert_eq!((rows[1].calls, rows[1].timed, rows[1].p50_ns), (1, 0, None));
    }
}
