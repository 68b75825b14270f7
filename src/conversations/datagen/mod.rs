//! Synthetic dataset generator (placeholder while the loader is written).
