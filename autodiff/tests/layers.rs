//! The composed layers' forwards against direct loops: conv2d (unfold, matmul, add, permute,
//! reshape) against `tensor::conv2d_naive`, the pools against a loop over each window. Data are
//! small integers (halves for the averages), so every sum is exact and results compare equal.

use autodiff::{Conv2dOptions, Tape, Window2d};
use tensor::{conv2d_naive, Tensor};

fn ints(shape: &[usize], seed: usize) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| ((i * 7 + seed) % 9) as f64 - 4.0)
}

/// Convolution options with every field away from its default somewhere, and asymmetric ones.
fn conv_options() -> Vec<Conv2dOptions> {
    let plain = Conv2dOptions::default();
    vec![
        plain,
        Conv2dOptions {
            padding: (1, 1),
            ..plain
        },
        Conv2dOptions {
            stride: (2, 1),
            padding: (0, 2),
            dilation: (1, 2),
        },
        Conv2dOptions {
            stride: (3, 2),
            padding: (2, 1),
            dilation: (2, 1),
        },
    ]
}

#[test]
fn conv2d_is_the_naive_convolution_plus_bias() {
    for options in conv_options() {
        for kernel in [(1, 1), (3, 3), (2, 3)] {
            for (h, w) in [(1, 1), (3, 5), (6, 4), (8, 8)] {
                let x = ints(&[2, 3, h, w], 1);
                let k = ints(&[4, 3, kernel.0, kernel.1], 2);
                let bias = ints(&[4], 3);
                let window = options.window(kernel);
                if window.try_output_size("conv2d", x.shape()).is_err() {
                    continue;
                }
                let mut tape = Tape::new();
                let (xv, kv, bv) = (
                    tape.input(x.clone()),
                    tape.param(k.clone()),
                    tape.param(bias.clone()),
                );
                let y = tape.conv2d(xv, kv, Some(bv), options);
                let expect = conv2d_naive(&x, &k, &window).add(&bias.reshape(&[4, 1, 1]));
                assert_eq!(tape.value(y), &expect, "{window} on {:?}", x.shape());
            }
        }
    }
}

/// `reduce` over every window of every channel of `x`, windows read through `window` with
/// out-of-image taps as `pad`: the pools by their definition.
fn pool_naive(
    x: &Tensor<f64>,
    window: &Window2d,
    pad: f64,
    reduce: impl Fn(&[f64]) -> f64,
) -> Tensor<f64> {
    let &[n, c, h, w] = x.shape() else { panic!() };
    let (oh, ow) = window.try_output_size("pool_naive", x.shape()).unwrap();
    let (kh, kw) = window.kernel;
    Tensor::from_fn(&[n, c, oh, ow], |flat| {
        let plane = flat / (oh * ow);
        let (p, q) = (flat / ow % oh, flat % ow);
        let mut taps = Vec::new();
        for i in 0..kh {
            for j in 0..kw {
                let y = (p * window.stride.0 + i) as isize - window.padding.0 as isize;
                let z = (q * window.stride.1 + j) as isize - window.padding.1 as isize;
                let inside = (0..h as isize).contains(&y) && (0..w as isize).contains(&z);
                taps.push(if inside {
                    x.data()[(plane * h + y as usize) * w + z as usize]
                } else {
                    pad
                });
            }
        }
        reduce(&taps)
    })
}

#[test]
fn pools_are_their_definitions() {
    let geometries = [
        ((1, 1), (1, 1), (0, 0)),
        ((2, 2), (2, 2), (1, 1)),
        ((3, 2), (1, 2), (1, 0)),
        ((3, 3), (2, 3), (0, 1)),
    ];
    for (kernel, stride, padding) in geometries {
        for (h, w) in [(3, 3), (4, 7), (8, 8)] {
            let x = ints(&[2, 3, h, w], 4);
            let mut tape = Tape::new();
            let xv = tape.input(x.clone());
            let max = tape.max_pool2d(xv, kernel, stride);
            let avg = tape.avg_pool2d(xv, kernel, stride, padding);
            let window = Window2d::new(kernel).with_stride(stride);
            let largest = |t: &[f64]| t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let expect = pool_naive(&x, &window, f64::NAN, largest);
            assert_eq!(tape.value(max), &expect, "max_pool2d {window} on {h}x{w}");
            let window = window.with_padding(padding);
            let mean = |t: &[f64]| t.iter().sum::<f64>() / t.len() as f64;
            let expect = pool_naive(&x, &window, 0.0, mean);
            let got = tape.value(avg);
            let err = got.max_abs_diff(&expect);
            // Sums of integers are exact; the division by kh kw rounds once either way.
            assert!(err <= 1e-15, "avg_pool2d {window} on {h}x{w}: {err:e}");
        }
    }
}

#[test]
fn max_pool2d_routes_a_tie_to_the_first_tap_in_row_major_order() {
    // One 2x2 window holding [[1, 5], [5, 2]]: the 5 at (0, 1) comes first in row-major order.
    let mut tape = Tape::<f64>::new();
    let x = tape.param(Tensor::from_vec(&[1, 1, 2, 2], vec![1.0, 5.0, 5.0, 2.0]));
    let y = tape.max_pool2d(x, (2, 2), (2, 2));
    let loss = tape.sum_all(y);
    let g = tape.grad(loss, &[x]).unwrap();
    assert_eq!(g[0].data(), &[0.0, 1.0, 0.0, 0.0]);
}
