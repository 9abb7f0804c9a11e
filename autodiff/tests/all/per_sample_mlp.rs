//! Per-sample gradients of MLPs: the batched pass equals B single-sample gradients, which
//! equal central finite differences (f64). Plus a model that uses a parameter twice and
//! scales by a shared weight through broadcasting (a layer-norm-like affine), and functions
//! that mix samples, which must be refused with a clear error.

use autodiff::check::numerical_gradient;
use autodiff::{per_sample_grads, per_sample_grads_loop, Result, Tape, Var};
use proptest::prelude::*;
use proptest::sample::Index;
use tensor::{rng, Tensor};

/// Batched and looped per-sample gradients are the same arithmetic on differently shaped
/// GEMMs, whose blocking may reorder a sum; the difference is rounding, a few eps relative.
const PATHS_TOL: f64 = 1e-10;

/// Finite differences against the tape: the checker's step h = 1e-6 leaves about
/// `eps |loss| / h` (1e-9) of rounding noise, well below this relative error.
const FD_TOL: f64 = 1e-6;

/// Errors are relative to the largest gradient entry, or to this floor when every entry is
/// small (then the bound is absolute, 1e-7, still two orders above the noise).
const FLOOR: f64 = 0.1;

/// `max |a - b| / max(max |b|, FLOOR)`.
fn relative_error(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    let scale = b.data().iter().fold(FLOOR, |m, v| m.max(v.abs()));
    a.max_abs_diff(b) / scale
}

/// Layers `l = 0..` of the given widths, each `h <- act_l(h W_l^T + b_l)` with activations
/// relu, gelu, elu, tanh in turn and a linear last layer; the per-sample loss is the MSE
/// against the batched target `x[1]`. Also returns the inputs of relu and elu (their kinks
/// must stay away from finite-difference steps).
fn mlp_forward(tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<(Var, Vec<Var>)> {
    let mut h = x[0];
    let mut kinks = Vec::new();
    let layers = p.len() / 2;
    for (l, pair) in p.chunks(2).enumerate() {
        h = tape.try_linear(h, pair[0], Some(pair[1]))?;
        if l + 1 == layers {
            break;
        }
        h = match l % 4 {
            0 => {
                kinks.push(h);
                tape.relu(h)
            }
            1 => tape.gelu(h),
            2 => {
                kinks.push(h);
                tape.elu(h, 1.0)
            }
            _ => tape.tanh(h),
        };
    }
    Ok((tape.try_mse(h, x[1])?, kinks))
}

fn mlp(tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    Ok(mlp_forward(tape, p, x)?.0)
}

fn mlp_params(widths: &[usize], seed: u64) -> Vec<Tensor<f64>> {
    let mut r = rng(seed);
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

/// The loss of sample `s` alone, with parameter `i` replaced by `wi`.
fn sample_loss<'a, F>(
    f: &'a F,
    p: &'a [Tensor<f64>],
    batch: &[&Tensor<f64>],
    s: usize,
) -> impl Fn(usize, &Tensor<f64>) -> f64 + 'a
where
    F: Fn(&mut Tape<f64>, &[Var], &[Var]) -> Result<Var>,
{
    let rows: Vec<Tensor<f64>> = batch.iter().map(|t| t.gather_rows(&[s])).collect();
    move |i, wi| {
        let mut tape = Tape::new();
        let pv: Vec<Var> = p
            .iter()
            .enumerate()
            .map(|(j, t)| tape.param(if j == i { wi.clone() } else { t.clone() }))
            .collect();
        let xv: Vec<Var> = rows.iter().map(|t| tape.input(t.clone())).collect();
        let loss = f(&mut tape, &pv, &xv).expect("the model records");
        tape.value(loss).item()
    }
}

/// The batched path equals the loop, and the loop's sample `s` equals finite differences.
fn check_per_sample<F>(
    f: F,
    p: &[Tensor<f64>],
    batch: &[&Tensor<f64>],
    s: usize,
) -> std::result::Result<(), TestCaseError>
where
    F: Fn(&mut Tape<f64>, &[Var], &[Var]) -> Result<Var> + Sync,
{
    let b = batch[0].shape()[0];
    let batched = per_sample_grads(p, batch, &f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let looped =
        per_sample_grads_loop(p, batch, &f).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (i, (g, l)) in batched.into_iter().zip(&looped).enumerate() {
        let g = g.into_dense();
        let mut expected_shape = vec![b];
        expected_shape.extend_from_slice(p[i].shape());
        prop_assert_eq!(g.shape(), &expected_shape[..], "param {}", i);
        let err = relative_error(&g, l);
        prop_assert!(
            err < PATHS_TOL,
            "param {i}: batched vs loop, relative error {err:e}"
        );
    }
    let loss = sample_loss(&f, p, batch, s);
    for (i, w) in p.iter().enumerate() {
        let numeric = numerical_gradient(|wi| loss(i, wi), w);
        let err = relative_error(&looped[i].row_tensor(s), &numeric);
        prop_assert!(
            err < FD_TOL,
            "param {i} of sample {s}: relative error {err:e}"
        );
    }
    Ok(())
}

/// Smallest |pre-activation| of a kinked activation for sample `s` (at the unperturbed
/// parameters).
fn closest_kink(p: &[Tensor<f64>], batch: &[&Tensor<f64>], s: usize) -> f64 {
    let mut tape = Tape::new();
    let pv: Vec<Var> = p.iter().map(|t| tape.param(t.clone())).collect();
    let xv: Vec<Var> = batch
        .iter()
        .map(|t| tape.input(t.gather_rows(&[s])))
        .collect();
    let (_, kinks) = mlp_forward(&mut tape, &pv, &xv).expect("the model records");
    kinks
        .iter()
        .flat_map(|v| tape.value(*v).data().to_vec())
        .fold(f64::INFINITY, |m, z| m.min(z.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mlp_batched_equals_loop_equals_finite_differences(
        widths in prop::collection::vec(1usize..=5, 6),
        b in 1usize..=6,
        sample in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let p = mlp_params(&widths, seed);
        let mut r = rng(seed ^ 1);
        let x = Tensor::<f64>::randn(&[b, widths[0]], 1.0, &mut r);
        let y = Tensor::<f64>::randn(&[b, widths[5]], 1.0, &mut r);
        let s = sample.index(b);
        // A finite-difference step moves a pre-activation by about 1e-6 |x|; keep relu's and
        // elu's kinks two orders further away.
        prop_assume!(closest_kink(&p, &[&x, &y], s) > 1e-4);
        check_per_sample(mlp, &p, &[&x, &y], s)?;
    }

    #[test]
    fn tied_weight_and_shared_scale(
        (b, d, h) in (1usize..=5, 1usize..=4, 2usize..=5),
        gamma_has_unit_axis in any::<bool>(),
        sample in any::<Index>(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let gamma_shape = if gamma_has_unit_axis { vec![1, h] } else { vec![h] };
        let p = vec![
            Tensor::<f64>::randn(&[h, d], 0.8, &mut r),
            Tensor::randn(&[h], 0.3, &mut r),
            Tensor::randn(&gamma_shape, 1.0, &mut r).add_scalar(1.0),
            Tensor::randn(&[h], 0.3, &mut r),
        ];
        let x = Tensor::<f64>::randn(&[b, d], 1.0, &mut r);
        let y = Tensor::<f64>::randn(&[b, d], 1.0, &mut r);
        check_per_sample(tied_norm, &p, &[&x, &y], sample.index(b))?;
    }
}

/// `W: [h, d]` encodes and, tied, decodes; between them a layer-norm-like affine with the
/// shared `gamma: [h]` (or `[1, h]`) and `beta: [h]`:
///
/// ```text
/// a = gelu(x W^T + b1)                       [B, h]
/// n = (a - mean(a)) / sqrt(var(a) + 1e-3)    per row
/// y = (n * gamma + beta) W                   [B, d]   (W used a second time)
/// loss = mse(y, target) + 0.01 |b1|^2        [B]      (a shared term added to every sample)
/// ```
fn tied_norm(tape: &mut Tape<f64>, p: &[Var], x: &[Var]) -> Result<Var> {
    let (w, b1, gamma, beta) = (p[0], p[1], p[2], p[3]);
    let a = tape.try_linear(x[0], w, Some(b1))?;
    let a = tape.gelu(a);
    let rows = tape.shape(a)[0];
    let mean = tape.try_mean_axis(a, 1)?;
    let mean = tape.try_reshape(mean, &[rows, 1])?;
    let centred = tape.try_sub(a, mean)?;
    let sq = tape.square(centred);
    let var = tape.try_mean_axis(sq, 1)?;
    let var = tape.try_reshape(var, &[rows, 1])?;
    let var = tape.add_scalar(var, 1e-3);
    let std = tape.sqrt(var);
    let n = tape.try_div(centred, std)?;
    let n = tape.try_mul(n, gamma)?;
    let n = tape.try_add(n, beta)?;
    let y = tape.matmul(n, w);
    let fit = tape.try_mse(y, x[1])?;
    let b1_sq = tape.square(b1);
    let penalty = tape.sum_all(b1_sq);
    let penalty = tape.scale(penalty, 0.01);
    tape.try_add(fit, penalty)
}

/// A weight stored with more axes than its matmul uses (a convolution kernel is stored
/// `[out, in, kh, kw]` and multiplied as `[out, in kh kw]`): its per-sample gradient crosses the
/// reshape still factored, and densifies under the stored shape.
#[test]
fn a_reshaped_weight_keeps_its_factored_gradient_under_its_own_shape() {
    let mut r = rng(5);
    let p = vec![Tensor::<f64>::randn(&[2, 3, 2], 1.0, &mut r)];
    let x = Tensor::<f64>::randn(&[4, 5, 6], 1.0, &mut r);
    let y = Tensor::<f64>::randn(&[4, 5, 2], 1.0, &mut r);
    let f = |tape: &mut Tape<f64>, p: &[Var], x: &[Var]| {
        let w = tape.try_reshape(p[0], &[2, 6])?;
        let h = tape.try_linear(x[0], w, None)?;
        tape.try_mse(h, x[1])
    };
    let batched = per_sample_grads(&p, &[&x, &y], f).expect("per-sample gradients");
    let looped = per_sample_grads_loop(&p, &[&x, &y], f).expect("per-sample gradients");
    let Some(autodiff::Grad::Outer { left, right, shape }) = batched.into_iter().next() else {
        panic!("the weight's per-sample gradient was formed");
    };
    assert_eq!(
        (left.shape(), right.shape()),
        (&[4, 5, 2][..], &[4, 5, 6][..])
    );
    assert_eq!(shape, [2, 3, 2]);
    let dense = autodiff::Grad::Outer { left, right, shape }.into_dense();
    assert_eq!(dense.shape(), &[4, 2, 3, 2]);
    assert!(relative_error(&dense, &looped[0]) < PATHS_TOL);
}

/// Functions of the batch whose per-sample losses mix samples, each with the op that mixes.
type Mixing = fn(&mut Tape<f64>, Var) -> Result<Var>;

const MIXING: &[(&str, Mixing)] = &[
    ("sum_all", |t, h| Ok(t.sum_all(h))),
    ("sum_axis(0)", |t, h| t.try_sum_axis(h, 0)),
    ("gather_rows", |t, h| {
        let first = t.try_gather_rows(h, &[0])?;
        t.try_sum_axis(first, 0)
    }),
    ("concat along the batch axis", |t, h| {
        let both = t.try_concat(&[h, h], 0)?;
        t.try_sum_axis(both, 0)
    }),
    ("slice_axis along the batch axis", |t, h| {
        let first = t.try_slice_axis(h, 0, 0..1)?;
        t.try_sum_axis(first, 0)
    }),
    ("max_axis(0)", |t, h| t.try_max_axis(h, 0)),
    ("log_softmax over the batch axis", |t, h| {
        t.try_log_softmax(h)
    }),
    ("reshape across the batch axis", |t, h| {
        let n = t.value(h).numel();
        let row = t.try_reshape(h, &[1, n])?;
        t.try_sum_axis(row, 1)
    }),
];

#[test]
fn functions_that_mix_samples_are_refused() {
    let p = mlp_params(&[3, 4, 2], 1);
    let mut r = rng(2);
    let x = Tensor::<f64>::randn(&[5, 3], 1.0, &mut r);
    let y = Tensor::<f64>::randn(&[5, 2], 1.0, &mut r);
    for (op, mix) in MIXING {
        // loss_b = mse_b + (a scalar that depends on every sample): shape [B], but mixed.
        let f = |tape: &mut Tape<f64>, p: &[Var], x: &[Var]| {
            let per_sample = mlp(tape, p, x)?;
            let mixed = mix(tape, per_sample)?;
            tape.try_add(per_sample, mixed)
        };
        let err = per_sample_grads(&p, &[&x, &y], f).unwrap_err().to_string();
        assert!(
            err.contains("mixes samples") && err.contains(op),
            "{op}: {err}"
        );
    }
}

#[test]
fn a_contraction_over_the_batch_axis_is_refused() {
    let p = vec![Tensor::<f64>::randn(&[3, 3], 1.0, &mut rng(3))];
    let x = Tensor::<f64>::randn(&[4, 3], 1.0, &mut rng(4));
    // x^T x sums over the batch: [3, 3]; the loss is then broadcast back to [B].
    let f = |tape: &mut Tape<f64>, p: &[Var], x: &[Var]| {
        let gram = tape.try_matmul_t(x[0], tensor::Transpose::Yes, x[0], tensor::Transpose::No)?;
        let h = tape.try_mul(gram, p[0])?;
        let s = tape.sum_all(h);
        let xs = tape.sum_rows(x[0]);
        tape.try_mul(xs, s)
    };
    let err = per_sample_grads(&p, &[&x], f).unwrap_err().to_string();
    assert!(
        err.contains("mixes samples") && err.contains("matmul"),
        "{err}"
    );
}
