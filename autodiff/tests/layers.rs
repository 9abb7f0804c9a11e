//! The composed layers' forwards against direct loops: conv2d (unfold, matmul, add, permute,
//! reshape) against `tensor::conv2d_naive`. Data are small integers, so every sum is exact and
//! results compare equal.

use autodiff::{Conv2dOptions, Tape};
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
