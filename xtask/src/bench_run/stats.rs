//! Medians, ratios and per-call costs: the arithmetic behind the benchmark tables.

/// The median of `samples` (the mean of the two middle values for an even count).
/// `None` for no samples.
pub fn median(samples: &[f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[mid]
    } else {
        (s[mid - 1] + s[mid]) / 2.0
    })
}

/// `value / base`, or `None` when the base is not a positive number.
pub fn ratio(value: f64, base: f64) -> Option<f64> {
    (base > 0.0).then(|| value / base)
}

/// Microseconds one notified call adds: `(wrapped_ns - native_ns) / calls / 1000`.
pub fn added_us_per_call(wrapped_ns: f64, native_ns: f64, calls: u64) -> Option<f64> {
    (calls > 0).then(|| (wrapped_ns - native_ns) / calls as f64 / 1000.0)
}

/// A ratio for a table cell: `1.07x`, or `-` when there is none.
pub fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_count_is_the_middle_value() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }

    #[test]
    fn median_of_even_count_is_the_mean_of_the_middle_pair() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_ignores_an_outlier() {
        assert_eq!(median(&[1.0, 1.1, 100.0]), Some(1.1));
    }

    #[test]
    fn median_of_nothing_is_none() {
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratio_needs_a_positive_base() {
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
        assert_eq!(ratio(3.0, 0.0), None);
    }

    #[test]
    fn added_cost_is_per_call_in_microseconds() {
        // 100,000 calls, 300 ms more than native: 3 us each.
        let us = added_us_per_call(500e6, 200e6, 100_000).unwrap();
        assert!((us - 3.0).abs() < 1e-9, "{us}");
        assert_eq!(added_us_per_call(1.0, 0.0, 0), None);
    }

    #[test]
    fn ratio_cells() {
        assert_eq!(fmt_ratio(Some(1.066)), "1.07x");
        assert_eq!(fmt_ratio(None), "-");
    }
}
