//! Batch top-k: one threshold for the whole batch of coefficients.

use crate::config::TopKCount;
use tensor::{Float, Tensor, TopK};

/// How many of `n` coefficients a fraction `k` keeps: `ceil(k n)`, at least 1 and at most
/// `n`. (The product is nudged down by 1e-9 first so that, say, `0.1 * 320` keeps exactly 32
/// even though `0.1` is not exact in binary.)
pub fn top_k_count(fraction: f64, n: usize) -> usize {
    let wanted = (fraction * n as f64 - 1e-9).ceil();
    (wanted.max(1.0) as usize).min(n)
}

impl TopKCount {
    /// How many of `n` coefficients a fraction `k` keeps under this rule, at most `n`:
    /// [`top_k_count`] for `Ceil`; `floor(k n) + 1` for `FloorPlusOne` (the product nudged up
    /// by 1e-9, so that `0.1 * 320` counts as 32, as in exact arithmetic).
    pub fn of(self, fraction: f64, n: usize) -> usize {
        match self {
            TopKCount::Ceil => top_k_count(fraction, n),
            TopKCount::FloorPlusOne => ((fraction * n as f64 + 1e-9).floor() as usize + 1).min(n),
        }
    }
}

/// Keeps the `count` entries of `c: [B, n_v]` of largest magnitude, over the whole batch;
/// ties go to the lower flat index (sample-major), so the choice is deterministic.
pub fn batch_top_k<T: Float>(c: &Tensor<T>, count: usize) -> TopK<T> {
    c.top_k_abs(count)
}

/// [`batch_top_k`] without allocating: writes the 0/1 mask of `c` (flat, `[B, n_v]`) into
/// `mask` and returns how many were kept. `order` is scratch (reused; it only grows).
///
/// The order is the tensor crate's: larger magnitude first, ties to the lower flat index, NaN
/// last, a total order, so the kept set is exactly [`batch_top_k`]'s. Each entry becomes one
/// integer that sorts the same way (the magnitude's `f64` bits, which order non-negative
/// numbers, above the complemented index), so the selection compares integers only.
pub fn batch_top_k_into<T: Float>(
    c: &[T],
    count: usize,
    order: &mut Vec<u128>,
    mask: &mut [T],
) -> usize {
    assert_eq!(c.len(), mask.len(), "batch_top_k_into: mask length");
    assert!(
        (1..=c.len()).contains(&count),
        "batch_top_k_into: keeps {count} of {}",
        c.len()
    );
    order.clear();
    order.extend(c.iter().enumerate().map(|(i, v)| {
        let magnitude = if v.is_nan() {
            0
        } else {
            v.abs().to_f64().to_bits() as u128 + 1
        };
        (magnitude << 64) | (u64::MAX - i as u64) as u128
    }));
    if count < c.len() {
        order.select_nth_unstable_by(count - 1, |a, b| b.cmp(a));
    }
    mask.fill(T::zero());
    for &key in &order[..count] {
        mask[(u64::MAX - key as u64) as usize] = T::one();
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_free_form_keeps_the_same_entries() {
        // Ties (values repeat every 7), signs, a NaN, zeros of both signs, an infinity.
        let mut c = Tensor::<f32>::from_fn(&[16, 5], |i| ((i * 37) % 7) as f32 - 3.0);
        c.data_mut()[11] = f32::NAN;
        c.data_mut()[12] = -0.0;
        c.data_mut()[40] = f32::NEG_INFINITY;
        let mut order = Vec::new();
        for k in [0.01, 0.1, 0.33, 0.5, 1.0] {
            let mut mask = vec![f32::NAN; 80];
            let count = top_k_count(k, 80);
            let kept = batch_top_k_into(c.data(), count, &mut order, &mut mask);
            let reference = batch_top_k(&c, count);
            assert_eq!(mask, reference.mask.data(), "k = {k}");
            assert_eq!(kept, reference.kept);
        }
    }

    #[test]
    fn counts_are_ceilings_within_bounds() {
        assert_eq!(top_k_count(0.1, 320), 32);
        assert_eq!(top_k_count(0.1, 160), 16);
        assert_eq!(top_k_count(0.1, 25), 3);
        assert_eq!(top_k_count(0.001, 10), 1);
        assert_eq!(top_k_count(1.0, 10), 10);
        // The authors' count: int(k N) + 1.
        let authors = TopKCount::FloorPlusOne;
        assert_eq!(authors.of(0.1, 320), 33);
        assert_eq!(authors.of(0.1, 25), 3);
        assert_eq!(authors.of(0.001, 10), 1);
        assert_eq!(authors.of(1.0, 10), 10);
        assert_eq!(TopKCount::Ceil.of(0.1, 320), 32);
    }

    #[test]
    fn keeps_exactly_the_count() {
        let c = Tensor::<f32>::from_fn(&[32, 5], |i| ((i * 37) % 101) as f32 - 50.0);
        for k in [0.05, 0.1, 0.33, 1.0] {
            let top = batch_top_k(&c, top_k_count(k, 160));
            assert_eq!(top.mask.sum_all() as usize, top_k_count(k, 160));
        }
    }
}
