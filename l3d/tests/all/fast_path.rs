//! The fast path (`l3d::fast`) against the plain tape path (`step::tape_step` on dense
//! per-sample gradients): the same coefficients, mask, loss and factor gradients, on random
//! MLPs (the fast path's own forward and backward), on the same MLPs without their MLP view
//! (the tape's factored gradients), on a model with several rows per sample, and on given
//! gradients of tensors with 1, 2 and 3 modes. Then: one thread and two give the same bits,
//! and training on either path gives the same decomposition.

use crate::random_mlp;
use crate::rows_model;

use l3d::fast::per_sample::MlpPerSample;
use l3d::fast::FastStep;
use l3d::pairs::{pair_gradients, per_sample_gradients};
use l3d::step::{tape_step, MaskRule, StepResult};
use l3d::{
    Decomposition, Divergence, L3dConfig, Model, Reference, StepPath, TopKCount, Trainer, WarmStart,
};
use nets::Activation;
use proptest::prelude::*;
use random_mlp::{normal_inputs, RandomMlp, ACTIVATIONS};
use rows_model::RowsModel;
use tensor::{rng, Float, Tensor};

/// One batch on the tape path, drawing references from `rng(seed)` as `Trainer` does.
pub(crate) fn tape_batch<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    x: &Tensor<T>,
    seed: u64,
    rule: MaskRule<T>,
) -> StepResult<T> {
    let (reference, divergence) = (config.reference, config.divergence);
    let grads: Vec<Tensor<T>> = pair_gradients(
        model,
        &d.param_index,
        x,
        reference,
        divergence,
        &config.positions,
        &mut rng(seed),
    )
    .unwrap()
    .into_iter()
    .map(|g| g.into_dense())
    .collect();
    tape_step(d, &grads, rule).unwrap()
}

/// The same batch (every row of `x`) on the fast path.
pub(crate) fn fast_batch<T: Float>(
    model: &dyn Model<T>,
    d: &Decomposition<T>,
    config: &L3dConfig,
    x: &Tensor<T>,
    seed: u64,
    rule: MaskRule<T>,
) -> StepResult<T> {
    let mut fast = FastStep::new(model, x, d, config).unwrap();
    let rows: Vec<usize> = (0..x.shape()[0]).collect();
    let out = fast.run(d, &rows, &mut rng(seed), rule, true).unwrap();
    out.expect("random gradients are not all zero")
        .to_step_result()
}

/// Largest magnitude in a tensor.
fn max_abs(a: &Tensor<impl Float>) -> f64 {
    a.data().iter().fold(0.0, |m, v| m.max(v.to_f64().abs()))
}

/// Largest difference relative to the larger magnitude of the two, or to `floor` if that is
/// larger (0 when both are 0).
fn relative_above(a: &Tensor<impl Float>, b: &Tensor<impl Float>, floor: f64) -> f64 {
    let scale = max_abs(a).max(max_abs(b)).max(floor);
    let diff = a
        .data()
        .iter()
        .zip(b.data())
        .fold(0.0f64, |m, (x, y)| m.max((x.to_f64() - y.to_f64()).abs()));
    if scale == 0.0 {
        0.0
    } else {
        diff / scale
    }
}

fn relative(a: &Tensor<impl Float>, b: &Tensor<impl Float>) -> f64 {
    relative_above(a, b, 0.0)
}

/// Every number of the two results within `tol` (relative; the squared error relative to
/// `S`, since the fast path computes it as `S - 2 ct.d + ct G ct`).
pub(crate) fn assert_agree<T: Float>(
    fast: &StepResult<T>,
    tape: &StepResult<T>,
    tol: f64,
    floor: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&fast.mask, &tape.mask);
    let c = relative(&fast.coefficients, &tape.coefficients);
    prop_assert!(c < tol, "coefficients differ by {}", c);
    let s = (fast.sq_norm.to_f64() - tape.sq_norm.to_f64()).abs() / tape.sq_norm.to_f64();
    prop_assert!(s < tol, "sum |g|^2 differs by {}", s);
    let e = (fast.sq_error.to_f64() - tape.sq_error.to_f64()).abs() / tape.sq_norm.to_f64();
    prop_assert!(e < tol, "sum |g - g_hat|^2 differs by {} of S", e);
    prop_assert_eq!(fast.factor_grads.len(), tape.factor_grads.len());
    // A factor whose gradient vanishes (an encoder equal to its decoder, say) is compared
    // against a thousandth of the step's largest gradient, and a step whose gradients all
    // vanish against `floor`, not against rounding noise. (The loss is of order 1 and the
    // factors of unit scale, so gradients of order 1 are the natural scale.)
    let largest = tape
        .factor_grads
        .iter()
        .fold(0.0f64, |m, g| m.max(max_abs(g)));
    let floor = (1e-3 * largest).max(floor);
    for (i, (f, t)) in fast.factor_grads.iter().zip(&tape.factor_grads).enumerate() {
        let g = relative_above(f, t, floor);
        prop_assert!(g < tol, "factor {} gradient differs by {}", i, g);
    }
    Ok(())
}

/// A random MLP and a config for it.
#[derive(Debug, Clone)]
struct Case {
    widths: Vec<usize>,
    acts: Vec<usize>,
    biases: Vec<bool>,
    n_v: usize,
    rank: usize,
    b: usize,
    divergence: usize,
    reference: usize,
    top_k: f64,
    subset: Vec<bool>,
    seed: u64,
}

fn cases(max_batch: usize) -> impl Strategy<Value = Case> {
    (
        1usize..4,
        1usize..5,
        1usize..4,
        2usize..max_batch,
        0u64..10_000,
    )
        .prop_flat_map(move |(depth, n_v, rank, b, seed)| {
            (
                prop::collection::vec(1usize..7, depth + 1),
                prop::collection::vec(0usize..6, depth),
                prop::collection::vec(any::<bool>(), depth),
                (0usize..3, 0usize..3, 0.05f64..1.0),
                prop::collection::vec(prop::bool::weighted(0.8), 2 * depth),
            )
                .prop_map(
                    move |(widths, acts, biases, (divergence, reference, top_k), subset)| Case {
                        widths,
                        acts,
                        biases,
                        n_v,
                        rank,
                        b,
                        divergence,
                        reference,
                        top_k,
                        subset,
                        seed,
                    },
                )
        })
}

impl Case {
    fn model<T: Float>(&self) -> RandomMlp<T> {
        let acts: Vec<_> = self.acts.iter().map(|&a| ACTIVATIONS[a]).collect();
        RandomMlp::new(&self.widths, &acts, &self.biases, self.seed)
    }

    fn config<T: Float>(&self, model: &RandomMlp<T>) -> L3dConfig {
        let names = model.param_names();
        let mut decompose: Vec<String> = names
            .iter()
            .zip(&self.subset)
            .filter(|(_, &keep)| keep)
            .map(|(n, _)| n.clone())
            .collect();
        if decompose.is_empty() {
            decompose.push(names[0].clone());
        }
        L3dConfig {
            n_subnetworks: self.n_v,
            rank: self.rank,
            top_k: self.top_k,
            batch_size: self.b,
            divergence: [Divergence::Mse, Divergence::MseAuthors, Divergence::Kl][self.divergence],
            reference: [
                Reference::RandomSample,
                Reference::BatchMean,
                Reference::Zero,
            ][self.reference],
            decompose,
            seed: self.seed,
            ..Default::default()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// f64, tolerance 1e-9: both paths round at about 1e-16; the fast path's sums of large
    /// terms (`S - 2 ct.d + ct G ct`, `G ct - d`) lose a few digits more when the
    /// reconstruction is close, which random decompositions are not.
    #[test]
    fn fast_equals_tape_on_random_mlps_in_f64(case in cases(70), view in any::<bool>()) {
        let mut model = case.model::<f64>();
        model.view = view;
        check_case(&case, &model, 1e-9, 1e-4, 1e-20)?;
    }

    /// f32, tolerance 2e-3: rounding at about 1e-7, amplified by the same cancellations.
    #[test]
    fn fast_equals_tape_on_random_mlps_in_f32(case in cases(40)) {
        check_case(&case, &case.model::<f32>(), 2e-3, 1e-2, 1e-8)?;
    }
}

/// One batch of a random case on both paths, unless the tape's squared gradient norm is below
/// `noise` (rounding). The masks must be equal, except where two
/// coefficients are equal up to rounding at the threshold (zeros, say, from a sample whose
/// gradient vanishes): there either choice is right, so the differing entries must be such
/// ties, and the numbers are then compared under the tape's mask.
fn check_case<T: Float>(
    case: &Case,
    model: &RandomMlp<T>,
    tol: f64,
    floor: f64,
    noise: f64,
) -> Result<(), TestCaseError> {
    let config = case.config(model);
    let d = Decomposition::new(model, &config).unwrap();
    let x = normal_inputs::<T>(case.b, case.widths[0], case.seed + 1);
    let rule = MaskRule::top_k(case.top_k);
    let tape = tape_batch(model, &d, &config, &x, case.seed + 2, rule);
    // Gradients that vanish up to rounding (a dead unit before the only decomposed tensor, say)
    // are noise on the tape and may be exactly zero on the fast path, which then has no step:
    // such cases are skipped. In f32 the noise reaches about 1e-13 (widths [5, 1, 2, 1] with
    // the last bias alone decomposed and the batch mean as reference, seed 2376).
    prop_assume!(tape.sq_norm.to_f64() > noise);
    let fast = fast_batch(model, &d, &config, &x, case.seed + 2, rule);
    let fast = if fast.mask == tape.mask {
        fast
    } else {
        check_ties(&fast, &tape, tol)?;
        fast_batch(
            model,
            &d,
            &config,
            &x,
            case.seed + 2,
            MaskRule::Given(&tape.mask),
        )
    };
    assert_agree(&fast, &tape, tol, floor)
}

/// Where the masks differ, the coefficient is within `tol` times the largest coefficient of
/// the tape's threshold.
fn check_ties<T: Float>(
    fast: &StepResult<T>,
    tape: &StepResult<T>,
    tol: f64,
) -> Result<(), TestCaseError> {
    let c = tape.coefficients.data();
    let largest = max_abs(&tape.coefficients);
    let threshold = c
        .iter()
        .zip(tape.mask.data())
        .filter(|(_, &m)| m == T::one())
        .fold(f64::INFINITY, |t, (c, _)| t.min(c.to_f64().abs()));
    for ((c, a), b) in c.iter().zip(fast.mask.data()).zip(tape.mask.data()) {
        let gap = (c.to_f64().abs() - threshold).abs();
        prop_assert!(
            a == b || gap <= tol * largest,
            "mask differs at |c| = {}, threshold {}",
            c,
            threshold
        );
    }
    Ok(())
}

#[test]
fn several_rows_per_sample_stay_factored_and_agree() {
    // The tape keeps w1's gradient as M = 3 outer products per sample.
    let model = RowsModel::<f64>::new(3, 4, 5, 2, 11);
    for reference in [Reference::RandomSample, Reference::BatchMean] {
        let config = L3dConfig {
            n_subnetworks: 4,
            rank: 2,
            top_k: 0.4,
            reference,
            ..Default::default()
        };
        let d = Decomposition::new(&model, &config).unwrap();
        let x = normal_inputs::<f64>(37, 12, 12);
        let rule = MaskRule::top_k(0.4);
        let tape = tape_batch(&model, &d, &config, &x, 13, rule);
        let fast = fast_batch(&model, &d, &config, &x, 13, rule);
        assert_agree(&fast, &tape, 1e-9, 1e-6).unwrap();
    }
}

#[test]
fn given_gradients_of_one_two_and_three_modes_agree() {
    let shapes = [vec![5], vec![4, 3], vec![2, 3, 2]];
    let names: Vec<String> = ["v", "m", "t"].map(String::from).to_vec();
    let n = 45;
    let grads: Vec<Tensor<f64>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| Tensor::randn(&[&[n], &s[..]].concat(), 1.0, &mut rng(20 + i as u64)))
        .collect();
    let config = L3dConfig {
        n_subnetworks: 3,
        rank: 2,
        top_k: 0.3,
        ..Default::default()
    };
    let d = Decomposition::for_shapes(&names, &shapes, vec![0, 1, 2], &config).unwrap();
    let rows: Vec<usize> = (0..n).rev().step_by(2).collect();
    let batch: Vec<Tensor<f64>> = grads.iter().map(|g| g.gather_rows(&rows)).collect();
    let tape = tape_step(&d, &batch, MaskRule::top_k(0.3)).unwrap();
    let mut fast = FastStep::on_gradients(&grads, &d, &config).unwrap();
    let out = fast
        .run(&d, &rows, &mut rng(0), MaskRule::top_k(0.3), true)
        .unwrap()
        .unwrap();
    assert_agree(&out.to_step_result(), &tape, 1e-10, 1e-6).unwrap();
}

#[test]
fn materialised_per_sample_gradients_equal_the_tapes() {
    let acts = [Activation::Gelu, Activation::Tanh, Activation::Identity];
    let model = RandomMlp::<f64>::new(&[6, 9, 7, 3], &acts, &[true, false, true], 3);
    let x = normal_inputs::<f64>(70, 6, 4);
    let r = normal_inputs::<f64>(70, 3, 5);
    let all: Vec<usize> = (0..model.params().len()).collect();
    let mut fast = MlpPerSample::new(&model).unwrap();
    let mut out = Vec::new();
    for divergence in [Divergence::Mse, Divergence::MseAuthors, Divergence::Kl] {
        fast.gradients_into(&x, &r, divergence, &mut out).unwrap();
        let tape = per_sample_gradients(&model, &all, &x, &r, divergence).unwrap();
        for (f, t) in out.iter().zip(tape) {
            assert!(relative(f, &t.into_dense()) < 1e-12, "{divergence:?}");
        }
    }
}

#[test]
fn a_wide_model_with_several_chunks_and_packed_operands_agrees() {
    // Three chunks of the batch; layers large enough for the weights, and the factors shared
    // by the chunks, to be packed once; both the MLP pass and the tape's gradients.
    let acts = [Activation::Gelu, Activation::Tanh, Activation::Identity];
    for view in [true, false] {
        let mut model = RandomMlp::<f64>::new(&[40, 72, 64, 8], &acts, &[true, false, true], 9);
        model.view = view;
        let config = L3dConfig {
            n_subnetworks: 8,
            rank: 3,
            top_k: 0.2,
            batch_size: 70,
            ..Default::default()
        };
        let d = Decomposition::new(&model, &config).unwrap();
        let x = normal_inputs::<f64>(70, 40, 10);
        let rule = MaskRule::top_k(0.2);
        let tape = tape_batch(&model, &d, &config, &x, 11, rule);
        let fast = fast_batch(&model, &d, &config, &x, 11, rule);
        assert_agree(&fast, &tape, 1e-9, 1e-4).unwrap();
    }
}

#[test]
fn row_blocks_and_groups_of_chunks_in_the_backward_agree() {
    // A 200-wide layer: its factor gradients span three row blocks of the backward (96 rows
    // each), and 290 samples are ten chunks, more than one product takes at once (8). Equal
    // to the tape, and the same bits on one thread and two.
    let acts = [Activation::Tanh, Activation::Identity];
    let model = RandomMlp::<f64>::new(&[40, 200, 30], &acts, &[true, true], 4);
    let config = L3dConfig {
        n_subnetworks: 6,
        rank: 2,
        top_k: 0.2,
        batch_size: 290,
        ..Default::default()
    };
    let d = Decomposition::new(&model, &config).unwrap();
    let x = normal_inputs::<f64>(290, 40, 5);
    let rule = MaskRule::top_k(0.2);
    let tape = tape_batch(&model, &d, &config, &x, 6, rule);
    let fast = in_pool(2, || fast_batch(&model, &d, &config, &x, 6, rule));
    assert_agree(&fast, &tape, 1e-9, 1e-4).unwrap();
    let one = in_pool(1, || fast_batch(&model, &d, &config, &x, 6, rule));
    assert_eq!(one.factor_grads, fast.factor_grads);
}

/// A model big enough that the fast step runs in parallel (past `PARALLEL_WORK`).
fn wide_model(view: bool) -> (RandomMlp<f32>, L3dConfig, Tensor<f32>) {
    let acts = [Activation::Gelu, Activation::Relu, Activation::Identity];
    let mut model = RandomMlp::<f32>::new(&[48, 96, 96, 24], &acts, &[true, true, true], 7);
    model.view = view;
    let config = L3dConfig {
        n_subnetworks: 16,
        rank: 2,
        batch_size: 80,
        epochs: 2,
        ..Default::default()
    };
    let x = normal_inputs::<f32>(240, 48, 8);
    (model, config, x)
}

pub(crate) fn in_pool<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn one_thread_and_two_give_the_same_bits() {
    for view in [true, false] {
        let (model, config, x) = wide_model(view);
        let d = Decomposition::new(&model, &config).unwrap();
        let rows: Vec<usize> = (0..80).map(|i| (i * 7) % 240).collect();
        let run = || {
            let mut fast = FastStep::new(&model, &x, &d, &config).unwrap();
            let out = fast.run(&d, &rows, &mut rng(3), MaskRule::top_k(0.1), true);
            out.unwrap().unwrap().to_step_result()
        };
        let (one, two) = (in_pool(1, run), in_pool(2, run));
        assert_eq!(one.coefficients, two.coefficients);
        assert_eq!(one.mask, two.mask);
        assert_eq!(one.sq_error.to_bits(), two.sq_error.to_bits());
        assert_eq!(one.factor_grads, two.factor_grads);
        let train = || {
            let mut trainer = Trainer::new(&model, config.clone(), &x).unwrap();
            trainer.train(|_| true).unwrap();
            (trainer.decomposition().clone(), trainer.history().to_vec())
        };
        assert_eq!(in_pool(1, train), in_pool(2, train), "view {view}");
    }
}

#[test]
fn training_on_either_path_gives_the_same_decomposition() {
    training_agrees(L3dConfig::default());
    // The options of the authors' code: a warm start held at k = 0.999, int(k N) + 1 kept,
    // references drawn among all samples of the batch.
    training_agrees(L3dConfig {
        warm_start_epochs: 2,
        warm_start: WarmStart::Hold,
        top_k_count: TopKCount::FloorPlusOne,
        reference: Reference::RandomWithSelf,
        divergence: Divergence::MseAuthors,
        ..Default::default()
    });
}

/// Three epochs of training on each path from `base` (with a small MLP's settings).
fn training_agrees(base: L3dConfig) {
    let acts = [Activation::Tanh, Activation::Identity];
    let model = RandomMlp::<f64>::new(&[3, 5, 2], &acts, &[true, true], 1);
    let x = normal_inputs::<f64>(100, 3, 2);
    let train = |path| {
        let config = L3dConfig {
            n_subnetworks: 3,
            rank: 2,
            top_k: 0.3,
            epochs: 3,
            path,
            ..base.clone()
        };
        let mut trainer = Trainer::new(&model, config, &x).unwrap();
        trainer.train(|_| true).unwrap();
        (trainer.decomposition().clone(), trainer.history().to_vec())
    };
    let (fast, fast_history) = train(StepPath::Fast);
    let (tape, tape_history) = train(StepPath::Tape);
    for (f, t) in fast.factors().iter().zip(tape.factors()) {
        // Adam divides by the gradient's running RMS, so rounding differences of 1e-16 in a
        // gradient grow to about 1e-12 in the factors over these steps.
        assert!(
            relative(f, t) < 1e-8,
            "factors differ by {}",
            relative(f, t)
        );
    }
    for (f, t) in fast_history.iter().zip(&tape_history) {
        assert!((f.loss - t.loss).abs() < 1e-9 * t.loss);
        assert_eq!(f.p_act, t.p_act);
    }
}

/// The saved f32 case whose gradients vanish up to rounding (a unit of width 1 before the only
/// decomposed tensor, the last bias, against the batch mean): the tape's squared norm is
/// rounding noise, the fast path's is that or exactly zero (no step), well under the 1e-8
/// below which the f32 property skips a case.
#[test]
fn gradients_that_vanish_up_to_rounding_are_noise_on_both_paths() {
    let case = Case {
        widths: vec![5, 1, 2, 1],
        acts: vec![5, 1, 0],
        biases: vec![false, false, true],
        n_v: 4,
        rank: 2,
        b: 30,
        divergence: 0,
        reference: 1,
        top_k: 0.05,
        subset: vec![false, false, false, true, false, false],
        seed: 2376,
    };
    let model = case.model::<f32>();
    let config = case.config(&model);
    let d = Decomposition::new(&model, &config).unwrap();
    let x = normal_inputs::<f32>(case.b, case.widths[0], case.seed + 1);
    let rule = MaskRule::top_k(case.top_k);
    let tape = tape_batch(&model, &d, &config, &x, case.seed + 2, rule);
    assert!(tape.sq_norm.to_f64() < 1e-8, "{:e}", tape.sq_norm.to_f64());
    let mut fast = FastStep::new(&model, &x, &d, &config).unwrap();
    let rows: Vec<usize> = (0..case.b).collect();
    let out = fast
        .run(&d, &rows, &mut rng(case.seed + 2), rule, true)
        .unwrap();
    if let Some(out) = out {
        let sq_norm = out.to_step_result().sq_norm.to_f64();
        assert!(sq_norm < 1e-8, "{sq_norm:e}");
    }
}
