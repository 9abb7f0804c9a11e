//! Bad input to the tape's fallible ops, to `grad` and to the per-sample gradients: an error
//! (never a panic) whose message names the op and the shapes involved.

use autodiff::{
    per_sample_grads, per_sample_grads_loop, Conv2dOptions, Result, Tape, Var, Window2d,
};
use std::fmt::Display;
use tensor::{Tensor, Transpose};

fn z(shape: &[usize]) -> Tensor<f64> {
    Tensor::zeros(shape)
}

/// Asserts that `result` is an error whose message contains every one of `parts`.
#[track_caller]
fn assert_error<V, E: Display>(result: std::result::Result<V, E>, parts: &[&str]) {
    let Err(err) = result else {
        panic!("expected an error naming {parts:?}, got a value");
    };
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "{msg:?} does not name {part:?}");
    }
}

#[test]
fn tape_ops() {
    let mut t = Tape::<f64>::new();
    let a = t.param(z(&[2, 3]));
    let b = t.param(z(&[4]));
    let s = t.param(z(&[]));
    assert_error(t.try_add(a, b), &["add", "[2, 3]", "[4]"]);
    assert_error(t.try_sub(a, b), &["sub", "[2, 3]", "[4]"]);
    assert_error(t.try_mul(a, b), &["mul", "[2, 3]", "[4]"]);
    assert_error(t.try_div(a, b), &["div", "[2, 3]", "[4]"]);
    assert_error(t.try_mask(a, &z(&[3])), &["mask", "[2, 3]", "[3]"]);
    assert_error(t.try_sum_axis(a, 2), &["sum_axis", "axis 2", "[2, 3]"]);
    assert_error(t.try_mean_axis(a, 2), &["mean_axis", "axis 2", "[2, 3]"]);
    assert_error(t.try_reshape(a, &[5]), &["reshape", "[2, 3]", "[5]"]);
    assert_error(t.try_permute(a, &[0, 0]), &["permute", "[0, 0]", "[2, 3]"]);
    assert_error(t.try_transpose(b), &["transpose", "[4]"]);
    assert_error(t.try_transpose(s), &["transpose", "[]"]);
    assert_error(
        t.try_gather_rows(a, &[1, 2]),
        &["gather_rows", "2", "[2, 3]"],
    );
    assert_error(t.try_gather_rows(s, &[0]), &["gather_rows", "[]"]);
    assert_error(
        t.try_slice_axis(a, 2, 0..1),
        &["slice_axis", "axis 2", "[2, 3]"],
    );
    assert_error(
        t.try_slice_axis(a, 1, 1..4),
        &["slice_axis", "1..4", "[2, 3]"],
    );
    assert_error(t.try_concat(&[a, b], 0), &["concat", "[2, 3]", "[4]"]);
    assert_error(t.try_concat(&[a, a], 2), &["concat", "axis 2", "[2, 3]"]);
    assert_error(t.try_concat(&[], 0), &["concat", "empty"]);
    assert_error(t.try_log_softmax(s), &["log_softmax", "[]"]);
    let empty_rows = t.param(z(&[2, 0]));
    assert_error(t.try_log_softmax(empty_rows), &["log_softmax", "[2, 0]"]);
}

#[test]
fn products_and_layers() {
    let mut t = Tape::<f64>::new();
    let x = t.input(z(&[5, 3]));
    let w = t.param(z(&[4, 2]));
    let bias = t.param(z(&[3]));
    let v = t.param(z(&[3]));
    assert_error(
        t.try_matmul_t(x, Transpose::No, w, Transpose::No),
        &["matmul", "[5, 3]", "[4, 2]"],
    );
    assert_error(
        t.try_matmul_t(x, Transpose::No, v, Transpose::No),
        &["matmul", "[5, 3]", "[3]"],
    );
    assert_error(t.try_linear(x, w, None), &["matmul", "[5, 3]", "[4, 2]"]);
    let w = t.param(z(&[4, 3]));
    assert_error(t.try_linear(x, w, Some(bias)), &["add", "[5, 4]", "[3]"]);
}

#[test]
fn image_layers() {
    let mut t = Tape::<f64>::new();
    let x = t.input(z(&[2, 3, 5, 5]));
    let flat = t.input(z(&[2, 75]));
    let k = t.param(z(&[4, 3, 3, 3]));
    let s = t.param(z(&[]));
    let plain = Conv2dOptions::default();
    // Channels: the input has 3, the kernel expects 2.
    let k2 = t.param(z(&[4, 2, 3, 3]));
    assert_error(
        t.try_conv2d(x, k2, None, plain),
        &["conv2d", "[2, 3, 5, 5]", "[4, 2, 3, 3]", "3 channels"],
    );
    assert_error(
        t.try_conv2d(flat, k, None, plain),
        &["conv2d", "[2, 75]", "[4, 3, 3, 3]"],
    );
    let k3 = t.param(z(&[4, 3, 9]));
    assert_error(
        t.try_conv2d(x, k3, None, plain),
        &["conv2d", "[2, 3, 5, 5]", "[4, 3, 9]"],
    );
    let bias = t.param(z(&[3]));
    assert_error(
        t.try_conv2d(x, k, Some(bias), plain),
        &["conv2d", "[3]", "[4, 3, 3, 3]"],
    );
    // A 3x3 kernel at dilation 3 spans 7x7 pixels; the input padded by 1 is 7x7, by 0 is 5x5.
    let dilated = Conv2dOptions {
        dilation: (3, 3),
        ..plain
    };
    assert_error(
        t.try_conv2d(x, k, None, dilated),
        &["conv2d", "7x7", "5x5", "[2, 3, 5, 5]"],
    );
    let padded = Conv2dOptions {
        padding: (1, 1),
        ..dilated
    };
    assert!(t.try_conv2d(x, k, None, padded).is_ok());
    let zero_stride = Conv2dOptions {
        stride: (0, 1),
        ..plain
    };
    assert_error(
        t.try_conv2d(x, k, None, zero_stride),
        &["conv2d", "stride 0x1", "at least 1"],
    );
    let w6 = Window2d::new((6, 1));
    assert_error(
        t.try_unfold2d(x, &w6),
        &["unfold2d", "6x1", "5x5", "[2, 3, 5, 5]"],
    );
    assert_error(t.try_unfold2d(flat, &w6), &["unfold2d", "[2, 75]"]);
    let cols = t.input(z(&[2, 9, 27]));
    let w3 = Window2d::new((3, 3));
    assert_error(
        t.try_fold2d(cols, &w3, [3, 5, 6]),
        &["fold2d", "[2, 9, 27]", "[3, 5, 6]"],
    );
    assert_error(
        t.try_max_pool2d(x, (6, 2), (2, 2)),
        &["max_pool2d", "6x2", "5x5", "[2, 3, 5, 5]"],
    );
    assert_error(
        t.try_max_pool2d(x, (2, 2), (0, 2)),
        &["max_pool2d", "stride 0x2", "at least 1"],
    );
    assert_error(
        t.try_max_pool2d(flat, (2, 2), (2, 2)),
        &["max_pool2d", "[2, 75]"],
    );
    assert_error(
        t.try_avg_pool2d(x, (8, 8), (1, 1), (1, 1)),
        &["avg_pool2d", "8x8", "7x7", "[2, 3, 5, 5]"],
    );
    assert_error(
        t.try_avg_pool2d(s, (1, 1), (1, 1), (0, 0)),
        &["avg_pool2d", "[]"],
    );
    assert_error(t.try_flatten(s), &["flatten", "[]"]);
    assert_error(
        t.try_max_axis(x, 4),
        &["max_axis", "axis 4", "[2, 3, 5, 5]"],
    );
    let empty = t.input(z(&[2, 0]));
    assert_error(t.try_max_axis(empty, 1), &["max_axis", "[2, 0]"]);
}

#[test]
fn embedding_ids() {
    let mut t = Tape::<f64>::new();
    let table = t.param(z(&[64, 16]));
    let ids = |t: &mut Tape<f64>, v: Vec<f64>| t.input(Tensor::from_vec(&[2, 3], v));
    let out_of_range = ids(&mut t, vec![0.0, 1.0, 2.0, 3.0, 4.0, 70.0]);
    assert_error(
        t.try_embedding(table, out_of_range),
        &[
            "embedding",
            "id 70",
            "position [1, 2]",
            "[2, 3]",
            "0..64",
            "vocabulary size 64",
        ],
    );
    let negative = ids(&mut t, vec![0.0, -1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_error(
        t.try_embedding(table, negative),
        &["embedding", "id -1", "position [0, 1]"],
    );
    let fractional = ids(&mut t, vec![0.0, 1.0, 2.5, 3.0, 4.0, 5.0]);
    assert_error(
        t.try_embedding(table, fractional),
        &["embedding", "id 2.5", "position [0, 2]"],
    );
    let flat_table = t.param(z(&[64]));
    let good = ids(&mut t, vec![0.0; 6]);
    assert_error(
        t.try_embedding(flat_table, good),
        &["embedding", "[64]", "[2, 3]"],
    );
}

#[test]
fn transformer_blocks() {
    let mut t = Tape::<f64>::new();
    let x = t.input(z(&[2, 5, 6]));
    let scores = t.input(z(&[2, 5, 4]));
    let row = t.input(z(&[4]));
    assert_error(t.try_causal_mask(scores), &["causal_mask", "[2, 5, 4]"]);
    assert_error(t.try_causal_mask(row), &["causal_mask", "[4]"]);
    let other = t.input(z(&[2, 4, 6]));
    assert_error(
        t.try_attention(x, other, x, 2, true),
        &["attention", "[2, 5, 6]", "[2, 4, 6]"],
    );
    assert_error(
        t.try_attention(x, x, x, 4, true),
        &["attention", "4 heads", "[2, 5, 6]"],
    );
    assert_error(
        t.try_attention(x, x, x, 0, false),
        &["attention", "0 heads"],
    );
    assert_error(
        t.try_attention(row, row, row, 1, true),
        &["attention", "[4]"],
    );
    let gamma = t.param(z(&[6]));
    let short = t.param(z(&[5]));
    assert_error(
        t.try_layer_norm(x, gamma, short, 1e-5),
        &["layer_norm", "[6]", "[5]", "[2, 5, 6]"],
    );
    let s = t.input(z(&[]));
    assert_error(
        t.try_layer_norm(s, gamma, gamma, 1e-5),
        &["layer_norm", "scalar"],
    );
}

#[test]
fn divergences() {
    let mut t = Tape::<f64>::new();
    let y = t.input(z(&[5, 3]));
    let r = t.input(z(&[5, 4]));
    let s = t.param(z(&[]));
    assert_error(t.try_mse(y, r), &["mse", "[5, 3]", "[5, 4]"]);
    assert_error(t.try_kl_div(y, r), &["kl_div", "[5, 3]", "[5, 4]"]);
    assert_error(t.try_mse(s, s), &["mse", "scalar"]);
    let empty = t.input(z(&[5, 0]));
    assert_error(t.try_kl_div(empty, empty), &["log_softmax", "[5, 0]"]);
}

#[test]
fn grad_of_a_loss_that_is_not_a_scalar() {
    let mut t = Tape::<f64>::new();
    let w = t.param(z(&[2, 3]));
    let y = t.square(w);
    assert_error(t.grad(y, &[w]), &["grad", "scalar", "[2, 3]"]);
}

/// A linear model with a per-sample squared-error loss: `x[0]: [B, 3]`, `x[1]: [B, 2]`.
fn linear_mse(tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    let y = tape.try_linear(x[0], p[0], Some(p[1]))?;
    tape.try_mse(y, x[1])
}

fn linear_params() -> Vec<Tensor<f64>> {
    vec![Tensor::ones(&[2, 3]), Tensor::ones(&[2])]
}

#[test]
fn per_sample_grads_of_bad_batches() {
    let p = linear_params();
    let (x, y) = (z(&[4, 3]), z(&[4, 2]));
    let cases: [(&[&Tensor<f64>], &[&str]); 4] = [
        (&[], &["per_sample_grads", "no batched inputs"]),
        (
            &[&z(&[0, 3]), &z(&[0, 2])],
            &["per_sample_grads", "empty", "[0, 3]"],
        ),
        (
            &[&x, &z(&[5, 2])],
            &["per_sample_grads", "[4, 3]", "[5, 2]"],
        ),
        (&[&z(&[]), &y], &["per_sample_grads", "scalar"]),
    ];
    for (batch, parts) in cases {
        assert_error(per_sample_grads(&p, batch, linear_mse), parts);
        assert_error(per_sample_grads_loop(&p, batch, linear_mse), parts);
    }
}

#[test]
fn per_sample_grads_of_a_loss_of_the_wrong_shape() {
    let p = linear_params();
    let (x, y) = (z(&[4, 3]), z(&[4, 2]));
    // The model's output [B, 2] instead of one loss per sample.
    let unreduced = |t: &mut Tape<f64>, p: &[Var], x: &[Var]| t.try_linear(x[0], p[0], Some(p[1]));
    assert_error(
        per_sample_grads(&p, &[&x, &y], unreduced),
        &["[4]", "[4, 2]"],
    );
    assert_error(
        per_sample_grads_loop(&p, &[&x, &y], unreduced),
        &["[1]", "[1, 2]"],
    );
    // A shared value of the right shape that does not depend on the batch.
    let shared = |t: &mut Tape<f64>, p: &[Var], _: &[Var]| {
        let w = t.try_reshape(p[0], &[6])?;
        t.try_gather_rows(w, &[0, 1, 2, 3])
    };
    assert_error(
        per_sample_grads(&p, &[&x, &y], shared),
        &["does not depend", "[4]"],
    );
}

/// Shapes the per-sample rules cannot serve, refused with the op and the input shapes rather
/// than answered with a wrong shape.
#[test]
fn per_sample_grads_of_shared_values_that_span_the_batch() {
    let x = z(&[4, 3]);
    // A shared [B, 3] added to the batch: one parameter entry per sample.
    let per_row = |t: &mut Tape<f64>, p: &[Var], x: &[Var]| {
        let h = t.try_add(x[0], p[0])?;
        Ok(t.sum_rows(h))
    };
    assert_error(
        per_sample_grads(&[z(&[4, 3])], &[&x], per_row),
        &["add", "per-sample rule", "[4, 3]"],
    );
    // A shared batch of matrices multiplied by a batched one.
    let stacked = |t: &mut Tape<f64>, p: &[Var], x: &[Var]| {
        let h = t.try_matmul_t(x[0], Transpose::No, p[0], Transpose::No)?;
        Ok(t.sum_rows(h))
    };
    let x3 = z(&[4, 2, 3]);
    assert_error(
        per_sample_grads(&[z(&[4, 3, 5])], &[&x3], stacked),
        &["matmul", "per-sample rule", "[4, 3, 5]"],
    );
    // Broadcasting a batched [B] against a shared [3, 1] moves the batch axis to axis 1.
    let moved = |t: &mut Tape<f64>, p: &[Var], x: &[Var]| {
        let h = t.try_mul(x[0], p[0])?;
        t.try_sum_axis(h, 0)
    };
    assert_error(
        per_sample_grads(&[z(&[3, 1])], &[&z(&[3])], moved),
        &["mixes samples", "moves the batch axis"],
    );
}
