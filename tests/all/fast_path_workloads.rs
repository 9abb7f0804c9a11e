//! The fast path equals the tape path on every WORKLOADS.md benchmark case (`tms`, `squared`,
//! `mlp-wide`, `cnn`, `attention`, as `toys::workloads` builds them), in f32, each through its
//! hand-written pass (MLP, CNN, attention): one batch of each, the same references,
//! the same mask, and the loss, coefficients and every factor gradient within tolerance.
//!
//! Tolerance 2e-3, relative to each quantity's largest magnitude (the squared error relative
//! to `S`): f32 rounds at about 1e-7, and the fast path's sums of large terms
//! (`S - 2 ct.d + ct G ct`, `G ct - d`) cancel a few digits when the reconstruction is close.
//! Where the two masks differ, the coefficients involved must tie with the threshold to
//! rounding, and the numbers are then compared under the tape's mask.

use l3d::fast::FastStep;
use l3d::pairs::pair_gradients;
use l3d::step::{tape_step, MaskRule, StepResult};
use l3d::{Decomposition, StepPath};
use tensor::{rng, Tensor};
use toys::workloads::BenchCase;

const TOL: f64 = 2e-3;

fn max_abs(t: &Tensor<f32>) -> f64 {
    t.data().iter().fold(0.0, |m, v| m.max(v.abs() as f64))
}

/// Largest difference over the larger of the two magnitudes and `floor`.
fn relative(a: &Tensor<f32>, b: &Tensor<f32>, floor: f64) -> f64 {
    let diff = a.max_abs_diff(b) as f64;
    let scale = max_abs(a).max(max_abs(b)).max(floor);
    if scale == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

fn check(case: BenchCase) {
    let model = case.model();
    let x = case.data();
    let config = case.config(StepPath::Fast);
    let d = Decomposition::new(&model, &config).unwrap();
    let rows: Vec<usize> = (0..config.batch_size).collect();
    let seed = 5;

    let batch = x.gather_rows(&rows);
    let (reference, divergence) = (config.reference, config.divergence);
    let grads: Vec<Tensor<f32>> = pair_gradients(
        &model,
        &d.param_index,
        &batch,
        reference,
        divergence,
        &config.positions,
        &mut rng(seed),
    )
    .unwrap()
    .into_iter()
    .map(|g| g.into_dense())
    .collect();
    let rule = MaskRule::top_k(config.top_k);
    let tape = tape_step(&d, &grads, rule).unwrap();

    let mut fast = FastStep::new(&model, &x, &d, &config).unwrap();
    let mlp = !matches!(case, BenchCase::Cnn | BenchCase::Attention);
    assert_eq!(fast.uses_mlp(), mlp, "{}: an MLP view", case.name());
    assert!(
        fast.uses_hand_written_pass(),
        "{}: a hand-written pass",
        case.name()
    );
    let mut run = |rule| -> StepResult<f32> {
        let out = fast.run(&d, &rows, &mut rng(seed), rule, true).unwrap();
        out.unwrap().to_step_result()
    };
    let mut result = run(rule);
    if result.mask != tape.mask {
        let c = tape.coefficients.data();
        let threshold = c
            .iter()
            .zip(tape.mask.data())
            .filter(|(_, &m)| m == 1.0)
            .fold(f32::INFINITY, |t, (c, _)| t.min(c.abs()));
        let largest = max_abs(&tape.coefficients);
        for ((c, a), b) in c.iter().zip(result.mask.data()).zip(tape.mask.data()) {
            let gap = (c.abs() - threshold).abs() as f64;
            assert!(
                a == b || gap <= TOL * largest,
                "{}: mask differs at |c| = {c}",
                case.name()
            );
        }
        result = run(MaskRule::Given(&tape.mask));
    }
    let name = case.name();
    let c = relative(&result.coefficients, &tape.coefficients, 0.0);
    assert!(c < TOL, "{name}: coefficients differ by {c}");
    let s = tape.sq_norm as f64;
    assert!(
        ((result.sq_norm - tape.sq_norm) as f64).abs() < TOL * s,
        "{name}: S"
    );
    let e = ((result.sq_error - tape.sq_error) as f64).abs() / s;
    assert!(e < TOL, "{name}: squared error differs by {e} of S");
    let largest = tape
        .factor_grads
        .iter()
        .fold(0.0f64, |m, g| m.max(max_abs(g)));
    for (i, (f, t)) in result
        .factor_grads
        .iter()
        .zip(&tape.factor_grads)
        .enumerate()
    {
        let g = relative(f, t, 1e-3 * largest);
        assert!(g < TOL, "{name}: factor {i} gradient differs by {g}");
    }
}

#[test]
fn tms() {
    check(BenchCase::Tms);
}

#[test]
fn squared() {
    check(BenchCase::Squared);
}

#[test]
fn mlp_wide() {
    check(BenchCase::MlpWide);
}

#[test]
fn cnn() {
    check(BenchCase::Cnn);
}

#[test]
fn attention() {
    check(BenchCase::Attention);
}
