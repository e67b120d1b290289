//! End-to-end tests across melfuse crates live in `tests/*.rs`.
