//! Integration tests for the store, one binary with modules (faster builds).

mod basic;
mod common;
mod corruption;
mod crash;
mod reads;
