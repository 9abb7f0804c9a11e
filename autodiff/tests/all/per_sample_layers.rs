//! Per-sample gradients of real layers: one batched pass ([`per_sample_grads`]) equals B
//! single-sample passes ([`per_sample_grads_loop`]), in f64, for a small CNN (conv, relu, max
//! pool, flatten, linear), token and positional embeddings, causal self-attention (separate
//! and fused projections, one and two heads) and a small attention-only transformer.
//!
//! The two paths do the same arithmetic on differently shaped products (B samples at once
//! against one at a time), so they differ by rounding only: a few eps relative to the largest
//! entry. Every op's gradient itself is checked against finite differences in `vjp.rs`.

use crate::common;

use autodiff::{per_sample_grads, per_sample_grads_loop, Conv2dOptions, Grad, Result, Tape, Var};
use proptest::prelude::*;
use rand::Rng;
use tensor::{rng, Tensor};

/// `max |a - b| <= TOL max(max |b|, FLOOR)`: rounding of sums of at most a few hundred terms
/// is far below 1e-12 relative, while a wrong or missing term is O(1).
const TOL: f64 = 1e-12;

/// Below this scale the bound is absolute (1e-13), for gradients that are all near zero.
const FLOOR: f64 = 0.1;

fn relative_error(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    let scale = b.data().iter().fold(FLOOR, |m, v| m.max(v.abs()));
    a.max_abs_diff(b) / scale
}

/// Runs both paths and compares every parameter's gradient, densified, at `[B, ..shape]`.
/// Returns the batched path's gradients as they came (factored or dense).
fn batched_equals_loop<F>(
    f: F,
    p: &[Tensor<f64>],
    batch: &[&Tensor<f64>],
) -> std::result::Result<Vec<Grad<f64>>, TestCaseError>
where
    F: Fn(&mut Tape<f64>, &[Var], &[Var]) -> Result<Var> + Sync,
{
    let b = batch[0].shape()[0];
    let batched = per_sample_grads(p, batch, &f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let looped =
        per_sample_grads_loop(p, batch, &f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (i, (g, l)) in batched.iter().zip(&looped).enumerate() {
        let g = g.clone().into_dense();
        let mut expected_shape = vec![b];
        expected_shape.extend_from_slice(p[i].shape());
        prop_assert_eq!(g.shape(), &expected_shape[..], "param {}", i);
        let err = relative_error(&g, l);
        prop_assert!(
            err < TOL,
            "param {i}: batched vs loop, relative error {err:e}"
        );
    }
    Ok(batched)
}

/// A CNN's layer sizes: `c_in` channels of `h x w` pixels, `c_out` filters of 3x3 under
/// `conv`, 2x2 max pooling with stride 2, `classes` logits.
#[derive(Debug, Clone, Copy)]
struct Cnn {
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    conv: Conv2dOptions,
    classes: usize,
}

impl Cnn {
    /// Width after flatten: `c_out` pooled planes.
    fn flat(&self) -> usize {
        let out = |n: usize, s: usize, p: usize, d: usize| (n + 2 * p - 2 * d - 1) / s + 1;
        let oh = out(
            self.h,
            self.conv.stride.0,
            self.conv.padding.0,
            self.conv.dilation.0,
        );
        let ow = out(
            self.w,
            self.conv.stride.1,
            self.conv.padding.1,
            self.conv.dilation.1,
        );
        self.c_out * (oh / 2) * (ow / 2)
    }

    /// Kernel `[c_out, c_in, 3, 3]`, its bias, the linear layer's weight and bias.
    fn params(&self, seed: u64) -> Vec<Tensor<f64>> {
        let mut r = rng(seed);
        vec![
            Tensor::randn(&[self.c_out, self.c_in, 3, 3], 0.5, &mut r),
            Tensor::randn(&[self.c_out], 0.3, &mut r),
            Tensor::randn(&[self.classes, self.flat()], 0.5, &mut r),
            Tensor::randn(&[self.classes], 0.3, &mut r),
        ]
    }

    /// `x[0]: [B, c_in, h, w]` -> conv -> relu -> max pool 2x2 -> flatten -> linear -> logits,
    /// and the per-sample KL divergence to the reference logits `x[1]: [B, classes]`.
    fn loss(&self, tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
        let h = tape.try_conv2d(x[0], p[0], Some(p[1]), self.conv)?;
        let h = tape.relu(h);
        let h = tape.try_max_pool2d(h, (2, 2), (2, 2))?;
        let h = tape.try_flatten(h)?;
        let logits = tape.try_linear(h, p[2], Some(p[3]))?;
        tape.try_kl_div(logits, x[1])
    }
}

fn options() -> impl Strategy<Value = Conv2dOptions> {
    (
        (1usize..=2, 1usize..=2),
        (0usize..=1, 0usize..=1),
        (1usize..=2, 1usize..=2),
    )
        .prop_map(|(stride, padding, dilation)| Conv2dOptions {
            stride,
            padding,
            dilation,
        })
}

/// How a learned positional embedding `p[1]` enters.
#[derive(Debug, Clone, Copy)]
enum Positions {
    /// `p[1]: [T_max, d]` looked up by the constant ids `0..T` (a shared `[T]`).
    Lookup,
    /// `p[1]: [T, d]` added to the batch `[B, T, d]` by broadcasting.
    Broadcast,
    /// `p[1]: [T_max, d]`, its first `T` rows sliced off and added.
    Slice,
}

/// Tokens `x[0]: [B, T]` embedded by `p[0]: [V, d]`, plus positions, read out by
/// `p[2]: [V, d]` to logits `[B, T, V]`; the loss is the KL divergence to `x[2]`'s softmax,
/// summed over positions.
fn embedded(positions: Positions, tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    let t = tape.shape(x[0])[1];
    let tokens = tape.try_embedding(p[0], x[0])?;
    let pos = match positions {
        Positions::Lookup => {
            let ids = tape.constant(Tensor::from_fn(&[t], |i| i as f64));
            tape.try_embedding(p[1], ids)?
        }
        Positions::Broadcast => p[1],
        Positions::Slice => tape.try_slice_axis(p[1], 0, 0..t)?,
    };
    let h = tape.try_add(tokens, pos)?;
    let logits = tape.try_linear(h, p[2], None)?;
    tape.try_kl_div(logits, x[1])
}

/// The attention workload's model at small sizes: tokens `x[0]: [B, T]` embedded by
/// `p[0]: [V, d]` plus positions `p[1]: [T, d]`; per layer a residual causal self-attention
/// with one head and separate `[d, d]` projections (`p[2..6]`, then `p[6..10]`), after a layer
/// norm (`p[10..12]` and `p[12..14]`) when `layer_norm`; unembedding `p[last]: [V, d]`;
/// the KL divergence to `x[1]`'s softmax summed over positions.
fn transformer(layer_norm: bool, tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    let tokens = tape.try_embedding(p[0], x[0])?;
    let mut h = tape.try_add(tokens, p[1])?;
    for layer in 0..2 {
        let normed = if layer_norm {
            let (gamma, beta) = (p[10 + 2 * layer], p[11 + 2 * layer]);
            tape.try_layer_norm(h, gamma, beta, 1e-5)?
        } else {
            h
        };
        let weights = &p[2 + 4 * layer..6 + 4 * layer];
        let mixed = common::self_attention(tape, normed, weights, 1)?;
        h = tape.try_add(h, mixed)?;
    }
    let logits = tape.try_linear(h, p[p.len() - 1], None)?;
    tape.try_kl_div(logits, x[1])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn cnn_batched_equals_loop(
        (b, c_in, c_out, classes) in (1usize..=4, 1usize..=3, 1usize..=4, 1usize..=4),
        (h, w) in (8usize..=11, 8usize..=11),
        conv in options(),
        seed in any::<u64>(),
    ) {
        let cnn = Cnn { c_in, c_out, h, w, conv, classes };
        let p = cnn.params(seed);
        let mut r = rng(seed ^ 1);
        let x = Tensor::<f64>::uniform(&[b, c_in, h, w], 0.0, 1.0, &mut r);
        let reference = Tensor::<f64>::randn(&[b, classes], 1.0, &mut r);
        let grads = batched_equals_loop(|t, p, x| cnn.loss(t, p, x), &p, &[&x, &reference])?;
        // The kernel's gradient came factored: one outer product per output position.
        let Grad::Outer { left, right, shape } = &grads[0] else {
            return Err(TestCaseError::fail("the kernel's per-sample gradient was formed"));
        };
        prop_assert_eq!(shape, p[0].shape());
        prop_assert_eq!(left.shape()[2], c_out);
        prop_assert_eq!(right.shape()[2], c_in * 9);
    }

    #[test]
    fn embeddings_batched_equal_loop(
        (b, t, vocab, d) in (1usize..=4, 1usize..=5, 1usize..=6, 1usize..=4),
        extra_positions in 0usize..=3,
        positions in prop_oneof![
            Just(Positions::Lookup), Just(Positions::Broadcast), Just(Positions::Slice)
        ],
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let t_max = match positions {
            Positions::Broadcast => t,
            _ => t + extra_positions,
        };
        let p = vec![
            Tensor::<f64>::randn(&[vocab, d], 1.0, &mut r),
            Tensor::randn(&[t_max, d], 1.0, &mut r),
            Tensor::randn(&[vocab, d], 0.5, &mut r),
        ];
        let ids = Tensor::<f64>::from_fn(&[b, t], |_| r.gen_range(0..vocab) as f64);
        let reference = Tensor::<f64>::randn(&[b, t, vocab], 1.0, &mut r);
        let grads = batched_equals_loop(|tape, p, x| embedded(positions, tape, p, x), &p,
            &[&ids, &reference])?;
        // The table's per-sample gradient is scattered dense (see ops/embedding.rs).
        prop_assert!(matches!(grads[0], Grad::Dense(_)));
    }

    #[test]
    fn self_attention_batched_equals_loop(
        (b, t, dh) in (1usize..=4, 1usize..=5, 1usize..=3),
        heads in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let d = heads * dh;
        let mut r = rng(seed);
        let p: Vec<Tensor<f64>> = (0..4).map(|_| Tensor::randn(&[d, d], 0.7, &mut r)).collect();
        let x = Tensor::<f64>::randn(&[b, t, d], 1.0, &mut r);
        let target = Tensor::<f64>::randn(&[b, t, d], 1.0, &mut r);
        let loss = |tape: &mut Tape<f64>, p: &[Var], x: &[Var]| {
            let y = common::self_attention(tape, x[0], p, heads)?;
            tape.try_mse(y, x[1])
        };
        let grads = batched_equals_loop(loss, &p, &[&x, &target])?;
        // Each projection's per-sample gradient is one outer product per position.
        for (i, g) in grads.iter().enumerate() {
            prop_assert!(matches!(g, Grad::Outer { .. }), "projection {} was formed", i);
        }
    }

    #[test]
    fn fused_multihead_attention_batched_equals_loop(
        (b, t, dh) in (1usize..=4, 1usize..=5, 1usize..=3),
        heads in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let d = heads * dh;
        let mut r = rng(seed);
        let p = vec![
            Tensor::<f64>::randn(&[3 * d, d], 0.7, &mut r),
            Tensor::randn(&[3 * d], 0.3, &mut r),
            Tensor::randn(&[d, d], 0.7, &mut r),
            Tensor::randn(&[d], 0.3, &mut r),
        ];
        let x = Tensor::<f64>::randn(&[b, t, d], 1.0, &mut r);
        let target = Tensor::<f64>::randn(&[b, t, d], 1.0, &mut r);
        let loss = |tape: &mut Tape<f64>, p: &[Var], x: &[Var]| {
            let y = common::multihead_attention(tape, x[0], p, heads)?;
            tape.try_mse(y, x[1])
        };
        let grads = batched_equals_loop(loss, &p, &[&x, &target])?;
        // The fused [3d, d] projection stays factored: the slices cut its output, not it.
        prop_assert!(matches!(grads[0], Grad::Outer { .. }), "in_proj_weight was formed");
        prop_assert!(matches!(grads[1], Grad::Dense(_)), "in_proj_bias is dense");
    }

    #[test]
    fn transformer_batched_equals_loop(
        (b, t, vocab, d) in (1usize..=3, 1usize..=5, 1usize..=6, 1usize..=4),
        layer_norm in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let mut p = vec![
            Tensor::<f64>::randn(&[vocab, d], 1.0, &mut r),
            Tensor::randn(&[t, d], 1.0, &mut r),
        ];
        p.extend((0..8).map(|_| Tensor::randn(&[d, d], 0.5, &mut r)));
        if layer_norm {
            p.extend((0..4).map(|_| Tensor::randn(&[d], 0.5, &mut r).add_scalar(0.5)));
        }
        p.push(Tensor::randn(&[vocab, d], 0.5, &mut r));
        let ids = Tensor::<f64>::from_fn(&[b, t], |_| r.gen_range(0..vocab) as f64);
        let reference = Tensor::<f64>::randn(&[b, t, vocab], 1.0, &mut r);
        batched_equals_loop(|tape, p, x| transformer(layer_norm, tape, p, x), &p,
            &[&ids, &reference])?;
    }
}
