//! The loss of one step and its gradient with respect to every factor, against finite
//! differences in f64 (the top-k mask held fixed), and the CP encode against the dense encoder.

use crate::common;

use autodiff::check::numerical_gradient;
use common::{inputs, TinyMlp};
use l3d::pairs::{pair_gradients, per_sample_gradients};
use l3d::step::{encode, tape_step, MaskRule};
use l3d::{Decomposition, Divergence, L3dConfig, Model, Positions, Reference};
use proptest::prelude::*;
use tensor::{rng, Tensor};

fn pair_grads(
    model: &TinyMlp<f64>,
    d: &Decomposition<f64>,
    div: Divergence,
    b: usize,
    seed: u64,
) -> Vec<Tensor<f64>> {
    let x = inputs::<f64>(b, seed);
    let mut r = rng(seed + 1);
    pair_gradients(
        model,
        &d.param_index,
        &x,
        Reference::RandomSample,
        div,
        &Positions::All,
        &mut r,
    )
    .unwrap()
    .into_iter()
    .map(|g| g.into_dense())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Every factor's gradient equals central differences of the loss, one coordinate at a
    /// time, with the mask of the unperturbed point held fixed (top-k is piecewise constant, so
    /// its own derivative is zero almost everywhere and the mask is what the tape holds
    /// constant too). Tolerance 1e-6 relative: central differences at h = 1e-6 in f64 are
    /// accurate to about 1e-9 for this smooth function.
    #[test]
    fn factor_gradients_equal_finite_differences(
        n_v in 1usize..4, rank in 1usize..3, b in 2usize..6, seed in 0u64..1000, kl in any::<bool>()
    ) {
        let mut model = TinyMlp::<f64>::new(seed);
        let div = if kl { Divergence::Kl } else { Divergence::Mse };
        if kl {
            model.output = l3d::OutputKind::Logits;
        }
        let config = L3dConfig { n_subnetworks: n_v, rank, seed, top_k: 0.5, ..Default::default() };
        let d = Decomposition::new(&model, &config).unwrap();
        let grads = pair_grads(&model, &d, div, b, seed);
        let step = tape_step(&d, &grads, MaskRule::top_k(0.5)).unwrap();
        let mask = step.mask.clone();
        let factors: Vec<Tensor<f64>> = d.factors().into_iter().cloned().collect();
        for (f, analytic) in factors.iter().zip(&step.factor_grads) {
            let which = factors.iter().position(|g| std::ptr::eq(g, f)).unwrap();
            let loss_at = |value: &Tensor<f64>| {
                let mut moved = d.clone();
                *moved.factors_mut()[which] = value.clone();
                tape_step(&moved, &grads, MaskRule::Given(&mask)).unwrap().loss()
            };
            let numeric = numerical_gradient(loss_at, f);
            // Rounding noise of central differences is about 1e-16 |loss| / h = 1e-10 for a
            // loss of order 1, so norms below 1e-3 are compared in absolute terms (1e-6 of 1e-3 = 1e-9).
            let scale = numeric.norm().max(analytic.norm()).max(1e-3);
            let err = analytic.max_abs_diff(&numeric) / scale;
            prop_assert!(err < 1e-6, "factor {}: relative error {}", which, err);
        }
    }

    /// `c[i, v]` from the CP factors equals `<dense V_in[v], g_i>` summed over tensors.
    #[test]
    fn cp_encode_equals_dense_encode(n_v in 1usize..5, rank in 1usize..4, b in 2usize..7, seed in 0u64..1000) {
        let model = TinyMlp::<f64>::new(seed);
        let config = L3dConfig { n_subnetworks: n_v, rank, seed, ..Default::default() };
        let d = Decomposition::new(&model, &config).unwrap();
        let grads = pair_grads(&model, &d, Divergence::Mse, b, seed);
        let c = encode(&d, &grads).unwrap();
        for i in 0..b {
            for v in 0..n_v {
                let dense: f64 = d.encoder_subnetwork(v).iter().zip(&grads)
                    .map(|(vin, g)| vin.dot(&g.row_tensor(i)))
                    .sum();
                let got = c.data()[i * n_v + v];
                prop_assert!((got - dense).abs() <= 1e-12 * dense.abs().max(1.0), "{} vs {}", got, dense);
            }
        }
    }
}

#[test]
fn decoder_subnetworks_have_unit_norm_after_init() {
    let model = TinyMlp::<f64>::new(1);
    let config = L3dConfig {
        n_subnetworks: 3,
        rank: 2,
        ..Default::default()
    };
    let d = Decomposition::new(&model, &config).unwrap();
    for v in 0..3 {
        let sq: f64 = d.subnetwork(v).iter().map(|t| t.sum_squares()).sum();
        assert!((sq - 1.0).abs() < 1e-12, "subnetwork {v}: |v|^2 = {sq}");
    }
}

#[test]
fn the_authors_mse_variant_differs_from_the_papers_by_the_reference_free_term() {
    // g_paper = 2/n J^T (y - r), g_authors = 1/n J^T (2y - r): their difference is
    // 1/n J^T r, which changes with the reference; their sum with r = y... check directly:
    // with r = y (the sample as its own reference) the paper's gradient vanishes and the
    // authors' equals 1/n J^T y.
    let model = TinyMlp::<f64>::new(4);
    let config = L3dConfig::default();
    let d = Decomposition::new(&model, &config).unwrap();
    let x = inputs::<f64>(3, 9);
    let y0 = model.evaluate_w0(&x).unwrap();
    let paper = per_sample_gradients(&model, &d.param_index, &x, &y0, Divergence::Mse).unwrap();
    let authors =
        per_sample_gradients(&model, &d.param_index, &x, &y0, Divergence::MseAuthors).unwrap();
    let zero = Tensor::zeros(y0.shape());
    let half_at_zero =
        per_sample_gradients(&model, &d.param_index, &x, &zero, Divergence::Mse).unwrap();
    for ((p, a), z) in paper.into_iter().zip(authors).zip(half_at_zero) {
        assert_eq!(p.into_dense().sum_squares(), 0.0);
        // Paper MSE against r = 0 is 2/n J^T y: twice the authors' gradient at r = y.
        let a = a.into_dense();
        let z = z.into_dense().mul_scalar(0.5);
        assert!(a.max_abs_diff(&z) < 1e-12);
    }
}
