//! Unit tests for the generator's randomness and naming.

use super::rng::{permute, SplitMix64, Zipf};
use super::*;

#[test]
fn permutation_gives_unique_ids() {
    let mut seen = std::collections::HashSet::new();
    assert!((0..100_000u32).all(|n| seen.insert(permute(42, n))));
}

#[test]
fn rng_is_deterministic_and_bounded() {
    let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
    for _ in 0..1000 {
        let value = a.below(10);
        assert_eq!(value, b.below(10));
        assert!(value < 10);
    }
}

#[test]
fn zipf_favours_low_ranks() {
    let zipf = Zipf::new(100, 1.1);
    let mut rng = SplitMix64::new(1);
    let mut counts = [0usize; 100];
    (0..20_000).for_each(|_| counts[zipf.sample(&mut rng)] += 1);
    assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[99]);
}

#[test]
fn company_names_start_with_the_known_ones() {
    let names = company_names(100, 3);
    assert_eq!(names.len(), 100);
    assert_eq!(names[1], "Microsoft Corporation");
    assert_eq!(company_short_name("Amazon.com, Inc."), "Amazon.com");
}

#[test]
fn refuses_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let zero = DatagenOptions {
        out: dir.path().join("x"),
        conversations: 0,
        seed: 1,
    };
    assert!(matches!(
        generate(&zero),
        Err(DatagenError::InvalidOptions(_))
    ));
    std::fs::write(dir.path().join("occupied"), b"").unwrap();
    let occupied = DatagenOptions {
        out: dir.path().to_path_buf(),
        conversations: 10,
        seed: 1,
    };
    assert!(matches!(
        generate(&occupied),
        Err(DatagenError::InvalidOptions(_))
    ));
}
