//! Prints the speed table of WORKLOADS.md's benchmark cases (see `support/`): seconds per
//! epoch on the fast and tape paths, their ratio, peak heap memory, the fast path's time split,
//! its speedup from one thread to two, raw `sgemm` GFLOP/s and the tape path's effective
//! GFLOP/s, and the tape path's large products against raw `sgemm`.
//!
//! Run: `cargo bench --bench l3d_table` (a few minutes; `-- --quick` for one repeat of each;
//! case names select cases, e.g. `cargo bench --bench l3d_table -- cnn attention`).

mod support;

use support::{run, BenchOptions, TrackingAllocator};
use toys::workloads::BenchCase;

#[global_allocator]
static ALLOC: TrackingAllocator = TrackingAllocator;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut options = if quick {
        BenchOptions::quick()
    } else {
        BenchOptions::default()
    };
    // `cargo bench` passes `--bench`; anything not a flag names a case.
    let named: Vec<BenchCase> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(
            |a| match <BenchCase as clap::ValueEnum>::from_str(&a, false) {
                Ok(case) => case,
                Err(_) => {
                    let names: Vec<&str> = BenchCase::ALL.iter().map(|c| c.name()).collect();
                    eprintln!("unknown case `{a}`; the cases are {}", names.join(", "));
                    std::process::exit(2);
                }
            },
        )
        .collect();
    if !named.is_empty() {
        options.cases = named;
    }
    println!("{}", run(&options));
}
