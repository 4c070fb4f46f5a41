//! Helpers for the whole-system tests in `tests/tests/` (skeleton; being written).
