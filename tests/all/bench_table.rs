//! The benchmark table's layout (`benches/support/table.rs`), tested here so that
//! `cargo test` runs it: the bench targets themselves only run under `cargo bench`.

#[path = "../../benches/support/table.rs"]
mod table;

use l3d::fast::Timings;
use std::time::Duration;
use table::{BenchRow, BenchTable, ProductRow};
use toys::workloads::BenchCase;

#[test]
fn the_table_prints_every_case_and_says_when_memory_was_not_tracked() {
    let row = |case: BenchCase| BenchRow {
        case,
        fast: Duration::from_micros(450),
        tape: Duration::from_millis(3),
        fast_peak: None,
        tape_peak: None,
        split: Timings {
            gradients: Duration::from_micros(45),
            ..Timings::default()
        },
        speedup_2_threads: 1.0,
        // Not counted for the CNN and the transformer.
        fast_gflops: if case == BenchCase::Cnn { 0.0 } else { 2.0 },
        tape_gflops: 0.5,
    };
    let table = BenchTable {
        rows: BenchCase::ALL.iter().map(|&c| row(c)).collect(),
        sgemm_gflops: 100.0,
        fast_gemm_gflops: 90.0,
        products: vec![ProductRow {
            m: 64,
            k: 256,
            n: 128,
            role: "encode",
            tensor_gflops: 10.0,
            sgemm_gflops: 40.0,
        }],
        peak_by_batch: vec![
            (BenchCase::Cnn, 64, 3 << 20),
            (BenchCase::Cnn, 256, 5 << 20),
        ],
        threads: 2,
        tracking: false,
    };
    let text = table.to_string();
    assert!(text.contains("| 1.00x | - | 0.5 |"), "{text}");
    assert!(text.contains("| 1.00x | 2.0 | 0.5 |"), "{text}");
    // 1,370 parameters: 64 and 256 times as many floats.
    assert!(
        text.contains(
            "cnn fast-path peak by batch size: batch 64: 3.0 MB, batch 256: 5.0 MB (B x n_params \
             floats would be 342 KB and 1.3 MB)."
        ),
        "{text}"
    );
    for case in BenchCase::ALL {
        assert!(
            text.contains(&format!(
                "| {} | 450 µs | 3.00 ms | 7x | n/a | n/a | 10%",
                case.name()
            )),
            "{text}"
        );
    }
    assert!(text.contains("raw sgemm 1024^3: 100.0 GFLOP/s"));
    assert!(text.contains("Peak memory: n/a"), "{text}");
    assert!(
        text.contains("| encode | 64 x 256 x 128 | 10.0 | 40.0 | 0.25 |"),
        "{text}"
    );
}
