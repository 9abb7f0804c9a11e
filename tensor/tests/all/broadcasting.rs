//! Broadcasting on random shapes: the three paths of `try_zip_broadcast` (equal shapes, a
//! trailing shape, the general walk) against a naive multi-index loop, and `sum_to_shape` as
//! the adjoint of broadcasting. Small-integer data, so every comparison is exact.

use proptest::prelude::*;
use tensor::Tensor;

/// Integers in -4..=4 from `seed`.
fn ints(shape: &[usize], seed: usize) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| ((i * 7 + seed * 3) % 9) as f64 - 4.0)
}

/// The multi-index of flat offset `flat` in a row-major `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &size) in shape.iter().enumerate().rev() {
        index[i] = flat % size;
        flat /= size;
    }
    index
}

/// The flat offset in `shape` read by the output index `out_index` under broadcasting: the
/// shape aligns with the output's trailing axes, and an axis of size 1 always reads index 0.
fn broadcast_offset(out_index: &[usize], shape: &[usize]) -> usize {
    let skip = out_index.len() - shape.len();
    shape.iter().enumerate().fold(0, |offset, (axis, &size)| {
        let i = if size == 1 { 0 } else { out_index[skip + axis] };
        offset * size + i
    })
}

/// `f(a, b)` broadcast to `out_shape`, one output element at a time.
fn naive_zip(a: &Tensor<f64>, b: &Tensor<f64>, out_shape: &[usize]) -> Tensor<f64> {
    Tensor::from_fn(out_shape, |flat| {
        let index = unravel(flat, out_shape);
        a.data()[broadcast_offset(&index, a.shape())] * 10.0
            + b.data()[broadcast_offset(&index, b.shape())]
    })
}

/// An output shape and two operand shapes that broadcast to it: each operand drops some
/// leading axes and stretches (sets to 1) some others. Sizes 0 to 4, rank 0 to 4.
fn broadcast_case() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(0usize..=4, 0..=4).prop_flat_map(|out| {
        let rank = out.len();
        (
            Just(out),
            prop::collection::vec(any::<bool>(), rank),
            prop::collection::vec(any::<bool>(), rank),
            0..=rank,
            0..=rank,
        )
            .prop_map(|(out, stretch_a, stretch_b, drop_a, drop_b)| {
                let operand = |stretch: &[bool], drop: usize| -> Vec<usize> {
                    (drop..out.len())
                        .map(|i| if stretch[i] { 1 } else { out[i] })
                        .collect()
                };
                let a = operand(&stretch_a, drop_a);
                let b = operand(&stretch_b, drop_b);
                (out, a, b)
            })
    })
}

/// The shape `a` and `b` broadcast to: per trailing-aligned axis, the size that is not 1.
fn expected_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| (i + s.len()).checked_sub(rank).map_or(1, |j| s[j]);
    (0..rank)
        .map(|i| {
            let (x, y) = (at(a, i), at(b, i));
            if x == 1 {
                y
            } else {
                x
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_path_matches_the_naive_loop((_, sa, sb) in broadcast_case(), seed in 0usize..9) {
        let (a, b) = (ints(&sa, seed), ints(&sb, seed + 1));
        let shape = expected_shape(&sa, &sb);
        let got = a.try_zip_broadcast(&b, "test", |x, y| x * 10.0 + y).unwrap();
        prop_assert_eq!(got, naive_zip(&a, &b, &shape));
        // The named ops go through the same paths.
        let sum = a.add(&b);
        prop_assert_eq!(sum.shape(), &shape[..]);
        prop_assert_eq!(b.add(&a), sum);
    }

    /// `<broadcast(a), g> == <a, sum_to_shape(g)>`: summing to a shape is the adjoint
    /// (transpose) of broadcasting to the larger one.
    #[test]
    fn sum_to_shape_is_the_adjoint_of_broadcasting(
        (out, sa, _) in broadcast_case(),
        seed in 0usize..9,
    ) {
        let a = ints(&sa, seed);
        let g = ints(&out, seed + 2);
        let broadcast_a = Tensor::zeros(&out).add(&a);
        let reduced = g.sum_to_shape(&sa);
        prop_assert_eq!(reduced.shape(), &sa[..]);
        prop_assert_eq!(broadcast_a.dot(&g), a.dot(&reduced));
        // Summing to the shape itself is the identity.
        prop_assert_eq!(g.sum_to_shape(&out), g);
    }
}

#[test]
fn a_bias_over_a_batch_and_a_column_against_a_row() {
    // a[i, j] = 3 i + j over [2, 3]; bias [3]; column [2, 1]; row [1, 3].
    let a = Tensor::<f64>::from_fn(&[2, 3], |i| i as f64);
    let bias = Tensor::from_vec(&[3], vec![10.0, 20.0, 30.0]);
    assert_eq!(a.add(&bias).data(), &[10.0, 21.0, 32.0, 13.0, 24.0, 35.0]);
    let column = Tensor::from_vec(&[2, 1], vec![1.0, 2.0]);
    let row = Tensor::from_vec(&[1, 3], vec![1.0, 10.0, 100.0]);
    // outer[i, j] = column[i] * row[j].
    assert_eq!(
        column.mul(&row).data(),
        &[1.0, 10.0, 100.0, 2.0, 20.0, 200.0]
    );
}
