//! Prints the speed table of WORKLOADS.md's benchmark cases (see `support/`): seconds per
//! epoch on the fast and tape paths, their ratio, peak heap memory, the fast path's time split,
//! its speedup from one thread to two, raw `sgemm` GFLOP/s and the tape path's effective
//! GFLOP/s, and the tape path's large products against raw `sgemm`.
//!
//! Run: `cargo bench --bench l3d_table` (about a minute; `-- --quick` for one repeat of each).

mod support;

use support::{run, BenchOptions, TrackingAllocator};

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let options = if quick {
        BenchOptions::quick()
    } else {
        BenchOptions::default()
    };
    println!("{}", run(&options));
}
