//! The root package's integration tests, one binary: each file below is one of
//! its modules, so a cold build compiles and links this crate's tests once, not once per file.

mod bench_table;
mod fast_path_workloads;
