//! How much memory a decomposition will need, estimated from the shapes alone, so that a
//! run whose buffers cannot fit is refused before anything is allocated.
//!
//! Legend: `n_v` subnetworks, `B` the batch, and per decomposed tensor `t` its shape
//! `[d_0, .., d_{M-1}]` (`numel_t` elements), its CP rank `R_t` and `C_t = n_v R_t` columns
//! per factor. The buffers that grow with the settings, in elements:
//!
//! - factors: an encoder and a decoder factor `[d_m, C_t]` per mode, each with its gradient
//!   and AdamW's two moments: `8 sum_t sum_m d_m C_t`;
//! - the decoder's mode Grams `K_m = F_m^T F_m: [C_t, C_t]` and their adjoints (the fast
//!   path's loss): `2 sum_t M_t C_t^2`, and the subnetwork Gram and its adjoint `2 n_v^2`;
//! - dense subnetworks `[n_v, numel_t]` and their adjoints: `2 n_v sum_t numel_t`;
//! - per batch: coefficients, masks and their adjoints `[B, n_v]`: `4 B n_v`, and per-sample
//!   gradients `[B, numel_t]` (dense on the tape path, their adjoint too): `2 B sum_t numel_t`.
//!
//! The model, the data and the per-layer activations are not counted: they are allocated
//! (and checked) when they are read, and they do not grow with `n_v`. The estimate is of the
//! order of what the run allocates, not a bound on it.

use crate::config::L3dConfig;

/// The memory estimate of a decomposition, in bytes, with what dominates it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    pub bytes: f64,
    /// The largest single buffer, described (`"mode Gram of '0.weight', [100000, 100000]"`).
    pub largest: String,
    pub largest_bytes: f64,
}

/// The estimate for decomposing the `decomposed` tensors, given as `(name, shape)`, of an
/// `f32` model with `config` (see the module's legend). Counts in `f64`, so absurd settings
/// give large numbers rather than overflow.
pub fn estimate(decomposed: &[(String, Vec<usize>)], config: &L3dConfig) -> MemoryEstimate {
    const BYTES: f64 = 4.0;
    let n_v = config.n_subnetworks as f64;
    let b = config.batch_size as f64;
    let mut elements = 2.0 * n_v * n_v + 4.0 * b * n_v;
    let mut largest = (0.0, String::new());
    for (name, shape) in decomposed {
        let c = n_v * config.rank_for(name, shape.len()) as f64;
        let numel: f64 = shape.iter().map(|&d| d as f64).product();
        let modes = shape.len() as f64;
        let factor_sum: f64 = shape.iter().map(|&d| d as f64 * c).sum();
        elements += 8.0 * factor_sum + 2.0 * modes * c * c + 2.0 * (n_v + b) * numel;
        for (size, what) in [
            (c * c, format!("mode Gram of '{name}', [{c}, {c}]")),
            (
                n_v * numel,
                format!("dense subnetworks of '{name}', [{n_v}, {numel}]"),
            ),
            (
                b * numel,
                format!("per-sample gradients of '{name}', [{b}, {numel}]"),
            ),
        ] {
            if size > largest.0 {
                largest = (size, what);
            }
        }
    }
    // Ties go to the first tensor's buffer: at rank 1 its mode Grams are as large as the
    // subnetwork Gram, and they are allocated first.
    if n_v * n_v > largest.0 {
        largest = (n_v * n_v, "subnetwork Gram".to_string());
    }
    MemoryEstimate {
        bytes: elements * BYTES,
        largest: largest.1,
        largest_bytes: largest.0 * BYTES,
    }
}

/// `bytes` for people: `1.5 GB`, `312.0 MB`.
pub fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_tms_run_is_small_and_an_absurd_n_v_is_huge() {
        let tms = vec![
            ("W".to_string(), vec![2, 5]),
            ("b_final".to_string(), vec![5]),
        ];
        let paper = L3dConfig::default();
        assert!(estimate(&tms, &paper).bytes < 1e6);
        let absurd = L3dConfig {
            n_subnetworks: 100_000,
            ..paper
        };
        let e = estimate(&tms, &absurd);
        // Three mode Grams of [1e5, 1e5] and their adjoints: 6e10 elements, 240 GB.
        assert!(e.bytes > 2.4e11, "{e:?}");
        assert!(e.largest.starts_with("mode Gram of 'W'"), "{}", e.largest);
        assert_eq!(e.largest_bytes, 4e10);
    }

    #[test]
    fn bytes_for_people() {
        assert_eq!(human_bytes(999.0), "999 bytes");
        assert_eq!(human_bytes(4e10), "40.0 GB");
        assert_eq!(human_bytes(2.5e15), "2500.0 TB");
    }
}
