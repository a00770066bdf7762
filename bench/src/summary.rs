//! Summaries of repeated measurements, shared by the benchmark programs.

/// The median of `values` (the mean of the two middle ones for an even count).
///
/// # Panics
///
/// If `values` is empty.
///
/// # Examples
///
/// ```
/// use jobpool_bench::summary::median;
///
/// assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
/// ```
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
