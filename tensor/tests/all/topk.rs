//! Top-k by magnitude: exactly k kept, the largest magnitudes, ties broken towards the lower
//! flat index, the same answer on every call. Values are small integers so that ties are
//! common.

use proptest::prelude::*;
use tensor::Tensor;

/// The reference: indices sorted by decreasing magnitude, equal magnitudes by index (a stable
/// sort keeps index order), the first `count` kept.
fn naive_mask(x: &[f64], count: usize) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[j].abs().total_cmp(&x[i].abs()));
    let mut mask = vec![0.0; x.len()];
    for &i in &order[..count] {
        mask[i] = 1.0;
    }
    mask
}

fn values_and_count() -> impl Strategy<Value = (Vec<usize>, Vec<f64>, usize)> {
    prop::collection::vec(0usize..=5, 1..=3).prop_flat_map(|shape| {
        let n: usize = shape.iter().product();
        (
            Just(shape),
            prop::collection::vec((-3i32..=3).prop_map(f64::from), n),
            0..=n,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn keeps_exactly_k_largest_with_ties_to_the_lower_index(
        (shape, values, count) in values_and_count(),
    ) {
        let x = Tensor::from_vec(&shape, values.clone());
        let top = x.top_k_abs(count);
        prop_assert_eq!(top.kept, count);
        prop_assert_eq!(top.mask.shape(), x.shape());
        prop_assert_eq!(top.mask.sum_all(), count as f64);
        prop_assert_eq!(top.mask.data(), &naive_mask(&values, count)[..]);
        let smallest_kept = values
            .iter()
            .zip(top.mask.data())
            .filter(|(_, &m)| m == 1.0)
            .fold(f64::INFINITY, |t, (v, _)| t.min(v.abs()));
        prop_assert_eq!(top.threshold, smallest_kept);
        // The same selection on a second call.
        prop_assert_eq!(x.top_k_abs(count), top);
    }
}

#[test]
fn all_equal_magnitudes_keep_the_first_k() {
    let x = Tensor::<f32>::from_vec(&[7], vec![2.0, -2.0, 2.0, -2.0, 2.0, -2.0, 2.0]);
    let top = x.top_k_abs(3);
    assert_eq!(top.mask.data(), &[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(top.threshold, 2.0);
}
