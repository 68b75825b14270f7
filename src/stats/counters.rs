//! The figures kept for one route: outcomes by method and status, a latency histogram, bytes.

use hdrhistogram::Histogram;

use super::{is_success, LATENCY_SIGNIFICANT_DIGITS, MAX_TRACKED_LATENCY_MICROS};

/// Methods counted by name; anything else counts as `OTHER`.
pub const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "OTHER",
];

/// The index of `method` in [`METHODS`].
pub fn method_index(method: &[u8]) -> u8 {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|known| known.as_bytes() == method)
        .unwrap_or(METHODS.len() - 1) as u8
}

/// Figures for one route over some span of time. Merging two spans adds them up.
#[derive(Debug, Clone)]
pub struct RouteCounters {
    /// `(method index, status, requests)`, a handful of entries per route.
    pub outcomes: Vec<(u8, u16, u64)>,
    /// Latency in microseconds, first byte in to last byte out.
    pub latency: Histogram<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Default for RouteCounters {
    fn default() -> Self {
        RouteCounters {
            outcomes: Vec::new(),
            latency: new_latency_histogram(),
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

/// An empty latency histogram with confab's bounds and precision.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_MICROS, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

impl RouteCounters {
    /// Records one request.
    pub fn record(&mut self, method: u8, status: u16, micros: u64, bytes_in: u64, bytes_out: u64) {
        self.count(method, status, 1);
        self.latency
            .saturating_record(micros.clamp(1, MAX_TRACKED_LATENCY_MICROS));
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
    }

    fn count(&mut self, method: u8, status: u16, requests: u64) {
        match self
            .outcomes
            .iter_mut()
            .find(|(m, s, _)| *m == method && *s == status)
        {
            Some((_, _, count)) => *count += requests,
            None => self.outcomes.push((method, status, requests)),
        }
    }

    /// Adds `other` to these figures.
    pub fn merge(&mut self, other: &RouteCounters) {
        for &(method, status, requests) in &other.outcomes {
            self.count(method, status, requests);
        }
        let _ = self.latency.add(&other.latency);
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
    }

    pub fn requests(&self) -> u64 {
        self.outcomes.iter().map(|(_, _, count)| count).sum()
    }

    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(_, status, _)| !is_success(*status))
            .map(|(_, _, count)| count)
            .sum()
    }
}
