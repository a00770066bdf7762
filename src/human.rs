//! How numbers are shown to people: durations in a unit that fits them, and caps that may be
//! unbounded.

use std::fmt;
use std::time::Duration;

/// A duration shown with a unit that fits its size, to about three significant digits:
/// `740 ns`, `12.5 µs`, `3.8 ms`, `3.78 s`, `2 min 05 s`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        let secs = self.0.as_secs_f64();
        let text = if nanos < 1_000 {
            format!("{nanos} ns")
        } else if nanos < 1_000_000 {
            three_digits(secs * 1e6, "µs")
        } else if nanos < 1_000_000_000 {
            three_digits(secs * 1e3, "ms")
        } else if secs < 60.0 {
            three_digits(secs, "s")
        } else {
            let whole = self.0.as_secs();
            format!("{} min {:02} s", whole / 60, whole % 60)
        };
        f.pad(&text)
    }
}

/// `value` with as many decimals as keep about three significant digits.
fn three_digits(value: f64, unit: &str) -> String {
    let decimals = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

/// A cap shown as a number, or `∞` for `usize::MAX` (what a user passes for "no cap").
#[derive(Clone, Copy, Debug)]
pub(crate) struct HumanCap(pub(crate) usize);

impl fmt::Display for HumanCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == usize::MAX {
            f.pad("∞")
        } else {
            f.pad(&self.0.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(d: Duration) -> String {
        HumanDuration(d).to_string()
    }

    #[test]
    fn each_duration_gets_a_unit_that_fits() {
        assert_eq!(shown(Duration::from_nanos(740)), "740 ns");
        assert_eq!(shown(Duration::from_nanos(12_480)), "12.5 µs");
        assert_eq!(shown(Duration::from_micros(3_782)), "3.78 ms");
        assert_eq!(shown(Duration::from_micros(3_782_900)), "3.78 s");
        assert_eq!(shown(Duration::from_millis(45_250)), "45.2 s");
        assert_eq!(shown(Duration::from_secs(125)), "2 min 05 s");
        assert_eq!(
            format!("{:>9}", HumanDuration(Duration::from_millis(5))),
            "  5.00 ms"
        );
    }

    #[test]
    fn an_unbounded_cap_is_shown_as_infinity() {
        assert_eq!(HumanCap(usize::MAX).to_string(), "∞");
        assert_eq!(format!("{}/{}", HumanCap(3), HumanCap(8)), "3/8");
    }
}
