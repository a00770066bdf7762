//! The soak's randomness: a small generator, seeded per round.

use std::time::Duration;

/// splitmix64: small, fast, and plenty to choose between a few cases.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of round `round`: every choice of a round follows from (seed, round).
    pub(crate) fn for_round(seed: u64, round: u64) -> Rng {
        let mut mixer = Rng(seed ^ round.wrapping_mul(0xA076_1D64_78BD_642F));
        Rng(mixer.next_u64())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub(crate) fn percent(&mut self, percent: usize) -> bool {
        self.range(0, 99) < percent
    }

    pub(crate) fn micros(&mut self, lo: usize, hi: usize) -> Duration {
        Duration::from_micros(self.range(lo, hi) as u64)
    }
}
