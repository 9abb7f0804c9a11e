//! Unfold (im2col) and fold (col2im) against naive loops: a convolution computed as unfold then
//! one GEMM equals the direct seven-loop convolution, and fold is unfold's adjoint. Data are
//! small integers, so every sum is exact and the comparisons are for equal bits.

use proptest::prelude::*;
use tensor::kernels::PARALLEL_MIN;
use tensor::{conv2d_naive, Tensor, Window2d};

fn ints(shape: &[usize], seed: usize) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| ((i * 7 + seed) % 9) as f64 - 4.0)
}

/// The convolution as unfold, one GEMM `cols @ w^T`, and a transpose back to `[N, out, .., ..]`.
fn conv2d_by_unfold(x: &Tensor<f64>, w: &Tensor<f64>, g: &Window2d) -> Tensor<f64> {
    let (oh, ow) = g.try_output_size("conv2d", x.shape()).unwrap();
    let (n, out) = (x.shape()[0], w.shape()[0]);
    let w2 = w.clone().reshape(&[out, w.numel() / out]);
    let y = x.unfold2d(g).matmul_nt(&w2);
    y.permute(&[0, 2, 1]).reshape(&[n, out, oh, ow])
}

/// Checks the window on images `[n, c, h, w]` with `out` filters: either the geometry is
/// refused (exactly when the window is wider than the padded image), or unfold and GEMM equal
/// the naive convolution and fold is unfold's adjoint, `<unfold(x), u> = <x, fold(u)>`.
fn check(n: usize, c: usize, (h, w): (usize, usize), out: usize, g: &Window2d) {
    let (kh, kw) = g.kernel;
    let fits = g.dilation.0 * (kh - 1) < h + 2 * g.padding.0
        && g.dilation.1 * (kw - 1) < w + 2 * g.padding.1;
    let x = ints(&[n, c, h, w], 1);
    let Ok(cols) = x.try_unfold2d(g) else {
        assert!(!fits, "{g} refused on {:?}", x.shape());
        return;
    };
    assert!(fits, "{g} accepted on {:?}", x.shape());
    let weight = ints(&[out, c, kh, kw], 2);
    let label = format!("{g} on {:?}", x.shape());
    assert_eq!(
        conv2d_by_unfold(&x, &weight, g),
        conv2d_naive(&x, &weight, g),
        "{label}"
    );
    let u = ints(cols.shape(), 3);
    let folded = u.fold2d(g, [c, h, w]);
    assert_eq!(cols.dot(&u), x.dot(&folded), "adjoint, {label}");
}

/// Geometries with every field away from its default somewhere, and asymmetric ones.
fn geometries() -> Vec<Window2d> {
    vec![
        Window2d::new((1, 1)),
        Window2d::new((3, 3)).with_padding((1, 1)),
        Window2d::new((2, 2)).with_stride((2, 2)),
        Window2d::new((2, 3))
            .with_stride((2, 1))
            .with_padding((0, 1))
            .with_dilation((1, 2)),
        Window2d::new((3, 2))
            .with_stride((3, 2))
            .with_padding((2, 0))
            .with_dilation((2, 1)),
    ]
}

#[test]
fn unfold_matches_the_naive_convolution_for_every_small_image() {
    for g in geometries() {
        for h in 0..=9 {
            for w in 0..=9 {
                check(2, 3, (h, w), 2, &g);
            }
        }
    }
}

#[test]
fn large_batches_split_over_images_give_each_image_its_own_result() {
    // Enough images that the output passes PARALLEL_MIN, so the parallel path runs.
    let g = Window2d::new((3, 3)).with_padding((1, 1));
    let n = PARALLEL_MIN / (8 * 8 * 2 * 9) + 3;
    let x = ints(&[n, 2, 8, 8], 5);
    let cols = x.unfold2d(&g);
    assert!(cols.numel() >= PARALLEL_MIN);
    let folded = cols.fold2d(&g, [2, 8, 8]);
    for i in [0, n / 2, n - 1] {
        let one = x.gather_rows(&[i]);
        let one_cols = one.unfold2d(&g);
        assert_eq!(cols.row(i), one_cols.row(0), "unfold of image {i}");
        assert_eq!(
            folded.row(i),
            one_cols.fold2d(&g, [2, 8, 8]).row(0),
            "fold of image {i}"
        );
    }
}

fn pair(range: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = (usize, usize)> {
    (range.clone(), range)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn unfold_matches_the_naive_convolution_for_random_geometries(
        (n, c, out) in (1usize..=3, 1usize..=3, 1usize..=3),
        image in pair(1..=9),
        kernel in pair(1..=4),
        stride in pair(1..=3),
        padding in pair(0..=2),
        dilation in pair(1..=3),
    ) {
        let g = Window2d { kernel, stride, padding, dilation };
        check(n, c, image, out, &g);
    }
}
