//! Summaries of repeated measurements, and the machine's load while they were taken, shared
//! by the benchmark programs.

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

/// `median [min-max]` of `values`, with `digits` decimals; `-` if there are none.
///
/// # Examples
///
/// ```
/// use jobpool_bench::summary::spread;
///
/// assert_eq!(spread(&[3.0, 1.0, 2.5], 1), "2.5 [1.0-3.0]");
/// assert_eq!(spread(&[], 2), "-");
/// ```
pub fn spread(values: &[f64], digits: usize) -> String {
    if values.is_empty() {
        return "-".into();
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let med = median(values);
    format!("{med:.digits$} [{min:.digits$}-{max:.digits$}]")
}

/// The machine's load average over the last minute, as `/proc/loadavg` gives it (`?` where
/// there is none): the benchmark programs print it at their start and end.
///
/// # Examples
///
/// ```
/// let load = jobpool_bench::summary::load_average();
/// assert!(load == "?" || load.parse::<f64>().is_ok());
/// ```
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
