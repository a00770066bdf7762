//! What the benchmark programs share in reading their command line.

/// The number given after `flag` (`value`, the next argument), which must be positive;
/// panics with a message naming the flag otherwise.
///
/// ```
/// use jobpool_bench::cli::positive;
///
/// assert_eq!(positive(Some("15".to_string()), "--rounds"), 15);
/// ```
pub fn positive(value: Option<String>, flag: &str) -> usize {
    value
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| panic!("{flag} takes a positive number"))
}
