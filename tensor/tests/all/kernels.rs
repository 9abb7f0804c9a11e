//! The kernels against naive loops, on small-integer data (every partial sum is exact, so any
//! summation order gives the same bits), for every size 0..=16 and some large odd ones, into
//! NaN-filled outputs (a kernel that skips an element leaves a NaN behind).
//!
//! The large sizes pass `kernels::PARALLEL_MIN`, so the parallel chunked paths run as well.

use tensor::kernels::{
    axpy, dot, dot_naive, map_into, norm, sum, sum_squares, zip_apply, zip_map_into, CHUNK,
    PARALLEL_MIN,
};
use tensor::{matmul_naive, Tensor, Transpose};

/// Small sizes, then odd ones around the lane width, the chunk and the parallel threshold.
fn sizes() -> impl Iterator<Item = usize> {
    (0..=16).chain([17, 31, 33, 1023, CHUNK + 1, PARALLEL_MIN + 1, 3 * CHUNK + 7])
}

/// Integers in -5..=5, in a pattern that depends on `seed`.
fn ints(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 + seed) % 11) as f32 - 5.0).collect()
}

#[test]
fn reductions_match_a_left_to_right_loop() {
    for n in sizes() {
        let (x, y) = (ints(n, 1), ints(n, 4));
        assert_eq!(dot(&x, &y), dot_naive(&x, &y), "dot at n = {n}");
        assert_eq!(sum(&x), x.iter().fold(0.0, |s, v| s + v), "sum at n = {n}");
        let squares = x.iter().fold(0.0, |s, v| s + v * v);
        assert_eq!(sum_squares(&x), squares, "sum_squares at n = {n}");
        assert_eq!(norm(&x), squares.sqrt(), "norm at n = {n}");
    }
}

#[test]
fn maps_fill_every_element_of_a_nan_output() {
    for n in sizes() {
        let (x, y) = (ints(n, 2), ints(n, 9));
        let mut out = vec![f32::NAN; n];
        map_into(&mut out, &x, |v| 2.0 * v + 1.0);
        let expect: Vec<f32> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        assert_eq!(out, expect, "map_into at n = {n}");
        let mut out = vec![f32::NAN; n];
        zip_map_into(&mut out, &x, &y, |a, b| a * b - a);
        let expect: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a * b - a).collect();
        assert_eq!(out, expect, "zip_map_into at n = {n}");
    }
}

#[test]
fn in_place_updates_touch_each_element_once() {
    for n in sizes() {
        let x = ints(n, 3);
        let mut y = ints(n, 6);
        let expect: Vec<f32> = x.iter().zip(&y).map(|(a, b)| -3.0 * a + b).collect();
        axpy(-3.0, &x, &mut y);
        assert_eq!(y, expect, "axpy at n = {n}");
        // Counting: each element incremented exactly once.
        let mut count = vec![0.0f32; n];
        zip_apply(&mut count, &x, |c, _| *c += 1.0);
        assert!(count.iter().all(|&c| c == 1.0), "zip_apply at n = {n}");
    }
}

type ScalarFn = fn(f32) -> f32;

#[test]
fn tensor_maps_match_their_scalar_functions() {
    for n in sizes() {
        let x = Tensor::from_vec(&[n], ints(n, 5));
        let cases: [(&str, Tensor<f32>, ScalarFn); 4] = [
            ("relu", x.relu(), |v| v.max(0.0)),
            ("neg", x.neg(), |v| -v),
            ("square", x.square(), |v| v * v),
            ("abs", x.abs(), f32::abs),
        ];
        for (name, got, f) in cases {
            let expect: Vec<f32> = x.data().iter().map(|&v| f(v)).collect();
            assert_eq!(got.data(), &expect[..], "{name} at n = {n}");
        }
    }
}

fn int_matrix(shape: &[usize], seed: usize) -> Tensor<f32> {
    Tensor::from_fn(shape, |i| ((i * 5 + seed) % 9) as f32 - 4.0)
}

/// `op(a)` as a plain row-major matrix.
fn apply(a: &Tensor<f32>, t: Transpose) -> Tensor<f32> {
    match t {
        Transpose::No => a.clone(),
        Transpose::Yes => a.transpose(),
    }
}

/// The stored shape of an operand whose `op` is `[rows, cols]`.
fn stored(rows: usize, cols: usize, t: Transpose) -> Vec<usize> {
    match t {
        Transpose::No => vec![rows, cols],
        Transpose::Yes => vec![cols, rows],
    }
}

const TRANSPOSES: [(Transpose, Transpose); 4] = [
    (Transpose::No, Transpose::No),
    (Transpose::No, Transpose::Yes),
    (Transpose::Yes, Transpose::No),
    (Transpose::Yes, Transpose::Yes),
];

#[test]
fn matmul_matches_the_triple_loop_for_every_size_to_16_and_each_transpose() {
    for (ta, tb) in TRANSPOSES {
        for m in 0..=16 {
            for k in 0..=16 {
                for n in 0..=16 {
                    let a = int_matrix(&stored(m, k, ta), 1);
                    let b = int_matrix(&stored(k, n, tb), 2);
                    let expect = matmul_naive(&apply(&a, ta), &apply(&b, tb));
                    let got = a.matmul_t(ta, &b, tb);
                    assert_eq!(got, expect, "{m}x{k}x{n} ({ta:?}, {tb:?})");
                }
            }
        }
    }
}

#[test]
fn matmul_matches_the_triple_loop_at_large_odd_sizes() {
    for (m, k, n) in [(257, 129, 65), (1, 301, 3), (67, 1, 131)] {
        for (ta, tb) in TRANSPOSES {
            let a = int_matrix(&stored(m, k, ta), 3);
            let b = int_matrix(&stored(k, n, tb), 4);
            let expect = matmul_naive(&apply(&a, ta), &apply(&b, tb));
            assert_eq!(
                a.matmul_t(ta, &b, tb),
                expect,
                "{m}x{k}x{n} ({ta:?}, {tb:?})"
            );
        }
    }
}

#[test]
fn batched_matmul_is_one_product_per_batch_entry() {
    // Sizes that take the parallel path (m n k >= 4096) and sizes that do not.
    for (batch, m, k, n) in [(3, 2, 3, 4), (5, 17, 19, 15), (2, 1, 1, 1)] {
        for (ta, tb) in TRANSPOSES {
            let a = int_matrix(&[&[batch][..], &stored(m, k, ta)].concat(), 5);
            let b = int_matrix(&[&[batch][..], &stored(k, n, tb)].concat(), 6);
            let shared = int_matrix(&stored(k, n, tb), 7);
            let both = a.matmul_t(ta, &b, tb);
            let with_shared = a.matmul_t(ta, &shared, tb);
            assert_eq!(both.shape(), &[batch, m, n]);
            for i in 0..batch {
                let ai = apply(&a.row_tensor(i), ta);
                let bi = apply(&b.row_tensor(i), tb);
                let label = format!("[{batch}] {m}x{k}x{n} ({ta:?}, {tb:?}), entry {i}");
                assert_eq!(both.row_tensor(i), matmul_naive(&ai, &bi), "{label}");
                let si = apply(&shared, tb);
                assert_eq!(with_shared.row_tensor(i), matmul_naive(&ai, &si), "{label}");
            }
        }
    }
}
