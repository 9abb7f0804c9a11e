//! Batch top-k: one threshold for the whole batch of coefficients.

use tensor::{Float, Tensor, TopK};

/// How many of `n` coefficients a fraction `k` keeps: `ceil(k n)`, at least 1 and at most
/// `n`. (The product is nudged down by 1e-9 first so that, say, `0.1 * 320` keeps exactly 32
/// even though `0.1` is not exact in binary.)
pub fn top_k_count(fraction: f64, n: usize) -> usize {
    let wanted = (fraction * n as f64 - 1e-9).ceil();
    (wanted.max(1.0) as usize).min(n)
}

/// Keeps the [`top_k_count`] entries of `c: [B, n_v]` of largest magnitude, over the whole
/// batch; ties go to the lower flat index (sample-major), so the choice is deterministic.
pub fn batch_top_k<T: Float>(c: &Tensor<T>, fraction: f64) -> TopK<T> {
    c.top_k_abs(top_k_count(fraction, c.numel()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_ceilings_within_bounds() {
        assert_eq!(top_k_count(0.1, 320), 32);
        assert_eq!(top_k_count(0.1, 160), 16);
        assert_eq!(top_k_count(0.1, 25), 3);
        assert_eq!(top_k_count(0.001, 10), 1);
        assert_eq!(top_k_count(1.0, 10), 10);
    }

    #[test]
    fn keeps_exactly_the_count() {
        let c = Tensor::<f32>::from_fn(&[32, 5], |i| ((i * 37) % 101) as f32 - 50.0);
        for k in [0.05, 0.1, 0.33, 1.0] {
            let top = batch_top_k(&c, k);
            assert_eq!(top.mask.sum_all() as usize, top_k_count(k, 160));
        }
    }
}
