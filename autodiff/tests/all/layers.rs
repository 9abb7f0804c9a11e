//! The composed layers' forwards against direct loops: conv2d (unfold, matmul, add, permute,
//! reshape) against `tensor::conv2d_naive`, the pools against a loop over each window, on small
//! integers (every sum exact, so results compare equal); attention and layer norm against
//! loops written from their definitions, to rounding.

use crate::common;

use autodiff::{Conv2dOptions, Tape, Window2d};
use tensor::{conv2d_naive, rng, Tensor};

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

/// `nn.MultiheadAttention(d, heads, batch_first=True)` with a causal mask, by its definition:
/// `[q k v] = x W_in^T + b_in`; per head `i` and query `t`, weights `softmax_u(q_i[t] .
/// k_i[u] / sqrt(dh))` over keys `u <= t`, output `sum_u weight_u v_i[u]`; then
/// `heads W_out^T + b_out`. Plain loops over `x: [B, T, d]`.
fn multihead_attention_naive(x: &Tensor<f64>, p: &[Tensor<f64>], heads: usize) -> Tensor<f64> {
    let &[b, t, d] = x.shape() else { panic!() };
    let dh = d / heads;
    let (w_in, b_in, w_out, b_out) = (p[0].data(), p[1].data(), p[2].data(), p[3].data());
    let at = |s: usize, u: usize| &x.data()[(s * t + u) * d..(s * t + u + 1) * d];
    let mut out = vec![0.0; b * t * d];
    for s in 0..b {
        let proj: Vec<Vec<f64>> = (0..t)
            .map(|u| {
                (0..3 * d)
                    .map(|j| b_in[j] + (0..d).map(|i| w_in[j * d + i] * at(s, u)[i]).sum::<f64>())
                    .collect()
            })
            .collect();
        for q in 0..t {
            let mut mixed = vec![0.0; d];
            for h in 0..heads {
                let feature = |u: usize, part: usize, e: usize| proj[u][part * d + h * dh + e];
                let scores: Vec<f64> = (0..=q)
                    .map(|u| {
                        (0..dh)
                            .map(|e| feature(q, 0, e) * feature(u, 1, e))
                            .sum::<f64>()
                    })
                    .map(|z| z / (dh as f64).sqrt())
                    .collect();
                let top = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let total: f64 = scores.iter().map(|z| (z - top).exp()).sum();
                for (u, z) in scores.iter().enumerate() {
                    let weight = (z - top).exp() / total;
                    for e in 0..dh {
                        mixed[h * dh + e] += weight * feature(u, 2, e);
                    }
                }
            }
            for o in 0..d {
                let y = b_out[o] + (0..d).map(|j| w_out[o * d + j] * mixed[j]).sum::<f64>();
                out[(s * t + q) * d + o] = y;
            }
        }
    }
    Tensor::from_vec(&[b, t, d], out)
}

/// Attention through softmax and exp, in a different order than the loops: equal to a few eps
/// of the outputs' scale.
const ROUNDING: f64 = 1e-13;

#[test]
fn attention_is_its_definition() {
    let mut r = rng(7);
    for (heads, d, t) in [(1, 4, 1), (1, 3, 5), (2, 4, 5), (3, 6, 7)] {
        let x = Tensor::<f64>::randn(&[2, t, d], 1.0, &mut r);
        let fused = [
            Tensor::randn(&[3 * d, d], 0.5, &mut r),
            Tensor::randn(&[3 * d], 0.5, &mut r),
            Tensor::randn(&[d, d], 0.5, &mut r),
            Tensor::randn(&[d], 0.5, &mut r),
        ];
        let mut tape = Tape::new();
        let xv = tape.input(x.clone());
        let pv: Vec<_> = fused.iter().map(|p| tape.param(p.clone())).collect();
        let y = common::multihead_attention(&mut tape, xv, &pv, heads).unwrap();
        let expect = multihead_attention_naive(&x, &fused, heads);
        let err = tape.value(y).max_abs_diff(&expect);
        assert!(
            err < ROUNDING,
            "fused, {heads} heads, d {d}, T {t}: {err:e}"
        );
        // Separate q, k, v, o without biases: the fused layer with W_in = [W_q; W_k; W_v] and
        // zero biases.
        let w_in = fused[0].clone();
        let mut separate: Vec<_> = (0..3)
            .map(|i| tape.param(w_in.slice_axis(0, i * d..(i + 1) * d)))
            .collect();
        separate.push(tape.param(fused[2].clone()));
        let y = common::self_attention(&mut tape, xv, &separate, heads).unwrap();
        let zero_biases = [
            w_in,
            Tensor::zeros(&[3 * d]),
            fused[2].clone(),
            Tensor::zeros(&[d]),
        ];
        let expect = multihead_attention_naive(&x, &zero_biases, heads);
        let err = tape.value(y).max_abs_diff(&expect);
        assert!(
            err < ROUNDING,
            "separate, {heads} heads, d {d}, T {t}: {err:e}"
        );
    }
}

#[test]
fn causal_mask_sets_future_keys_to_minus_infinity_and_cuts_their_gradient() {
    let mut r = rng(8);
    let scores = Tensor::<f64>::randn(&[2, 3, 4, 4], 1.0, &mut r);
    let u = Tensor::<f64>::randn(&[2, 3, 4, 4], 1.0, &mut r);
    let mut tape = Tape::new();
    let x = tape.param(scores.clone());
    let masked = tape.causal_mask(x);
    // sum(u * masked) is not finite, but its gradient with respect to `masked` is `u`, so the
    // gradient of `x` is the mask's vjp of `u`.
    let weights = tape.constant(u.clone());
    let weighted = tape.mul(masked, weights);
    let loss = tape.sum_all(weighted);
    let g = tape.grad(loss, &[x]).unwrap().remove(0);
    for i in 0..scores.numel() {
        // Entry i sits at query row i / 4 % 4 and key column i % 4.
        let (query, key) = (i / 4 % 4, i % 4);
        let (value, grad) = (tape.value(masked).data()[i], g.data()[i]);
        if key > query {
            assert_eq!((value, grad), (f64::NEG_INFINITY, 0.0), "entry {i}");
        } else {
            assert_eq!((value, grad), (scores.data()[i], u.data()[i]), "entry {i}");
        }
    }
}

#[test]
fn layer_norm_is_its_definition() {
    let mut r = rng(9);
    let x = Tensor::<f64>::randn(&[3, 4, 5], 2.0, &mut r);
    let gamma = Tensor::<f64>::randn(&[5], 1.0, &mut r);
    let beta = Tensor::<f64>::randn(&[5], 1.0, &mut r);
    let mut tape = Tape::new();
    let (xv, gv, bv) = (
        tape.input(x.clone()),
        tape.param(gamma.clone()),
        tape.param(beta.clone()),
    );
    let y = tape.layer_norm(xv, gv, bv, 1e-5);
    let expect = Tensor::from_fn(&[3, 4, 5], |i| {
        let row = &x.data()[i / 5 * 5..i / 5 * 5 + 5];
        let mean = row.iter().sum::<f64>() / 5.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0;
        (x.data()[i] - mean) / (var + 1e-5).sqrt() * gamma.data()[i % 5] + beta.data()[i % 5]
    });
    let err = tape.value(y).max_abs_diff(&expect);
    assert!(err < ROUNDING, "{err:e}");
}
