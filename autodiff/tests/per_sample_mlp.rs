//! Per-sample gradients of an MLP: the batched pass equals B single-sample gradients, which
//! equal central finite differences (f64).

use autodiff::check::numerical_gradient;
use autodiff::{per_sample_grads, per_sample_grads_loop, Result, Tape, Var};
use tensor::{rng, Tensor};

/// Layers of widths 3 -> 4 -> 5 -> 4 -> 3 -> 2 with relu, gelu, elu, tanh, each with a bias;
/// the per-sample loss is the MSE against a batched target.
fn mlp(tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    let mut h = x[0];
    for (layer, pair) in p.chunks(2).enumerate() {
        h = tape.try_linear(h, pair[0], Some(pair[1]))?;
        h = match layer {
            0 => tape.relu(h),
            1 => tape.gelu(h),
            2 => tape.elu(h, 1.0),
            3 => tape.tanh(h),
            _ => h,
        };
    }
    tape.try_mse(h, x[1])
}

fn params() -> Vec<Tensor<f64>> {
    let widths = [3, 4, 5, 4, 3, 2];
    let mut r = rng(11);
    widths
        .windows(2)
        .flat_map(|w| {
            [
                Tensor::randn(&[w[1], w[0]], 0.8, &mut r),
                Tensor::randn(&[w[1]], 0.3, &mut r),
            ]
        })
        .collect()
}

#[test]
fn batched_equals_loop_equals_finite_differences() {
    let p = params();
    let mut r = rng(5);
    let x = Tensor::<f64>::randn(&[6, 3], 1.0, &mut r);
    let y = Tensor::<f64>::randn(&[6, 2], 1.0, &mut r);
    let batched = per_sample_grads(&p, &[&x, &y], mlp).unwrap();
    let looped = per_sample_grads_loop(&p, &[&x, &y], mlp).unwrap();
    for (i, (b, l)) in batched.into_iter().zip(&looped).enumerate() {
        let b = b.into_dense();
        assert_eq!(b.shape()[0], 6);
        assert!(b.max_abs_diff(l) < 1e-12, "param {i}: {:?} vs {:?}", b, l);
    }
    // Finite differences for sample 2, every parameter.
    let xs = x.gather_rows(&[2]);
    let ys = y.gather_rows(&[2]);
    for (i, w) in p.iter().enumerate() {
        let loss_at = |wi: &Tensor<f64>| {
            let mut q = p.clone();
            q[i] = wi.clone();
            let mut tape = Tape::new();
            let pv: Vec<Var> = q.iter().map(|t| tape.param(t.clone())).collect();
            let xv = [tape.input(xs.clone()), tape.input(ys.clone())];
            let l = mlp(&mut tape, &pv, &xv).unwrap();
            tape.value(l).item()
        };
        let numeric = numerical_gradient(loss_at, w);
        let analytic = looped[i].row_tensor(2);
        let err = analytic.max_abs_diff(&numeric);
        assert!(err < 1e-7, "param {i}: max error {err}");
    }
}
