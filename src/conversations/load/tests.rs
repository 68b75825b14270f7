//! Unit tests for layout detection and linking helpers.
