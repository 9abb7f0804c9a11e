//! Root package: owns the cross-crate tests and benchmarks.
