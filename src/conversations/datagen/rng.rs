//! Deterministic randomness for the generator: SplitMix64, a Zipf-like sampler and
//! a seeded 32-bit permutation for unique ids. Written here to avoid a dependency.

/// The SplitMix64 generator (Steele, Lea and Flood, 2014): tiny, fast, and good
/// enough for synthetic data.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0), by multiply-shift.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A number in `low..=high`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// A float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `percent`/100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Samples ranks `0..n` with probability proportional to `1 / (rank + 1)^exponent`.
#[derive(Clone, Debug)]
pub(crate) struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(exponent);
                total
            })
            .collect();
        Self { cumulative }
    }

    pub(crate) fn sample(&self, rng: &mut SplitMix64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.unit() * total;
        let rank = self.cumulative.partition_point(|&c| c <= target);
        rank.min(self.cumulative.len().saturating_sub(1))
    }
}

/// A bijection on `u32` keyed by `key`: distinct inputs give distinct outputs, so
/// `permute(key, n)` for `n = 0, 1, ...` is a stream of unique random-looking ids.
pub(crate) fn permute(key: u64, value: u32) -> u32 {
    let mut x = value ^ (key as u32);
    for round_key in [(key >> 32) as u32 | 1, 0x85EB_CA6B, 0xC2B2_AE35] {
        x ^= x >> 16;
        x = x.wrapping_mul(round_key | 1);
        x ^= x >> 13;
    }
    x ^ (x >> 16)
}
