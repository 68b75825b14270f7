//! Running one analysis over every core: the rows are split into one contiguous range per
//! thread, each thread scans its range chunk by chunk (reporting progress and checking for
//! cancellation between chunks), and the partial counts are merged in range order.
//!
//! Scoped standard threads are enough here: the split is static because every row costs
//! about the same, so a work-stealing pool would add a dependency without a gain.

use std::ops::Range;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::JobControl;
use crate::conversations::{ConversationIndex, RowAnalysis};

/// Rows scanned between two progress updates and cancellation checks.
pub const ANALYSIS_CHUNK_ROWS: u32 = 4_096;

/// Why an analysis ended without a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupted {
    /// The job was cancelled, or confab is stopping.
    Stopped,
    /// A scanning thread panicked.
    Panicked,
}

/// Runs `analysis` over all of `index` on `threads` threads.
pub fn run_analysis<A: RowAnalysis>(
    index: &ConversationIndex,
    analysis: &A,
    threads: usize,
    control: &JobControl,
) -> Result<Value, Interrupted> {
    let rows = index.len() as u32;
    control.set_total(u64::from(rows));
    let ranges = split(rows, threads.max(1));
    let partials = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|range| scope.spawn(move || scan(index, analysis, range, control)))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| Interrupted::Panicked)?)
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut merged = A::Counts::default();
    for partial in partials {
        A::merge(&mut merged, partial);
    }
    Ok(analysis.render(index, merged))
}

fn scan<A: RowAnalysis>(
    index: &ConversationIndex,
    analysis: &A,
    range: Range<u32>,
    control: &JobControl,
) -> Result<A::Counts, Interrupted> {
    let mut counts = A::Counts::default();
    let mut start = range.start;
    while start < range.end {
        if control.should_stop() {
            return Err(Interrupted::Stopped);
        }
        let end = range.end.min(start.saturating_add(ANALYSIS_CHUNK_ROWS));
        analysis.scan(index, start..end, &mut counts);
        control
            .done
            .fetch_add(u64::from(end - start), Ordering::Relaxed);
        start = end;
    }
    Ok(counts)
}

/// `0..rows` cut into `parts` contiguous ranges whose lengths differ by at most one.
fn split(rows: u32, parts: usize) -> Vec<Range<u32>> {
    let parts = parts.min(rows.max(1) as usize) as u32;
    let (size, extra) = (rows / parts, rows % parts);
    let mut start = 0;
    (0..parts)
        .map(|part| {
            let end = start + size + u32::from(part < extra);
            let range = start..end;
            start = end;
            range
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_row_once() {
        assert_eq!(split(10, 3), vec![0..4, 4..7, 7..10]);
        assert_eq!(split(2, 8), vec![0..1, 1..2]);
        assert_eq!(split(0, 4), vec![0..0]);
    }
}
