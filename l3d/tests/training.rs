//! Training: the planted problem, determinism across thread counts, exact resume, and errors.

mod common;

use common::{inputs, TinyMlp};
use l3d::persist::{load_checkpoint, load_decomposition, save_checkpoint, save_decomposition};
use l3d::{Decomposition, L3dConfig, L3dError, Trainer};
use rand::Rng;
use tensor::{rng, Tensor};

/// Planted directions: `n` unit-norm subnetworks over a `[6, 5]` matrix of rank 1 and a
/// `[6]` vector, as (matrix, vector) pairs.
fn planted_directions(n: usize, seed: u64) -> Vec<(Tensor<f64>, Tensor<f64>)> {
    let mut r = rng(seed);
    (0..n)
        .map(|_| {
            let a = Tensor::<f64>::randn(&[6, 1], 1.0, &mut r);
            let b = Tensor::<f64>::randn(&[1, 5], 1.0, &mut r);
            let m = a.matmul(&b);
            let v = Tensor::<f64>::randn(&[6], 0.5, &mut r);
            let norm = (m.sum_squares() + v.sum_squares()).sqrt();
            (m.mul_scalar(1.0 / norm), v.mul_scalar(1.0 / norm))
        })
        .collect()
}

/// Gradients that are sparse combinations of the planted directions: each sample uses one
/// direction, or two with probability 0.3, with coefficients of magnitude in [0.5, 1.5] and
/// random sign. Returns `[N, 6, 5]` and `[N, 6]`.
fn planted_gradients(dirs: &[(Tensor<f64>, Tensor<f64>)], n: usize, seed: u64) -> Vec<Tensor<f64>> {
    let mut r = rng(seed);
    let mut mats = Vec::with_capacity(n);
    let mut vecs = Vec::with_capacity(n);
    for _ in 0..n {
        let mut m = Tensor::zeros(&[6, 5]);
        let mut v = Tensor::zeros(&[6]);
        let count = if r.gen_bool(0.3) { 2 } else { 1 };
        for _ in 0..count {
            let k = r.gen_range(0..dirs.len());
            let sign = if r.gen_bool(0.5) { 1.0 } else { -1.0 };
            let c = sign * r.gen_range(0.5..1.5);
            m.add_assign(&dirs[k].0.mul_scalar(c));
            v.add_assign(&dirs[k].1.mul_scalar(c));
        }
        mats.push(m);
        vecs.push(v);
    }
    let stack = |ts: &[Tensor<f64>]| Tensor::stack(&ts.iter().collect::<Vec<_>>());
    vec![stack(&mats), stack(&vecs)]
}

fn cosine(a: &[Tensor<f64>], b: &[Tensor<f64>]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x.dot(y)).sum();
    let na: f64 = a.iter().map(|x| x.sum_squares()).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x.sum_squares()).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn planted_directions_are_recovered() {
    let dirs = planted_directions(4, 1);
    let grads = planted_gradients(&dirs, 1024, 2);
    let config = L3dConfig {
        n_subnetworks: 4,
        rank: 1,
        top_k: 0.35,
        epochs: 150,
        lr_step: 50,
        seed: 3,
        ..Default::default()
    };
    let names = vec!["w".to_string(), "b".to_string()];
    let mut trainer = Trainer::on_gradients(&grads, &names, config).unwrap();
    trainer.train(|_| true).unwrap();
    let d = trainer.decomposition();
    let last = trainer.history().last().unwrap();
    for (k, (m, v)) in dirs.iter().enumerate() {
        let best = (0..d.n_v)
            .map(|s| cosine(&d.subnetwork(s), &[m.clone(), v.clone()]).abs())
            .fold(0.0, f64::max);
        eprintln!("planted direction {k}: best |cos| {best:.5}");
        assert!(
            best > 0.99,
            "direction {k}: best |cos| {best}; history end {last:?}"
        );
    }
    assert!(last.reconstruction_error < 0.05, "{last:?}");
}

fn small_config(epochs: usize) -> L3dConfig {
    L3dConfig {
        n_subnetworks: 3,
        rank: 2,
        top_k: 0.3,
        epochs,
        batch_size: 8,
        lr_step: 2,
        warm_start_epochs: 1,
        seed: 7,
        ..Default::default()
    }
}

fn train_in_pool(threads: usize) -> Decomposition<f32> {
    let model = TinyMlp::<f32>::new(5);
    let data = inputs::<f32>(64, 6);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut t = Trainer::new(&model, small_config(3), &data).unwrap();
        t.train(|_| true).unwrap();
        t.decomposition().clone()
    })
}

#[test]
fn one_and_two_threads_give_identical_bits() {
    assert_eq!(train_in_pool(1), train_in_pool(2));
}

#[test]
fn resuming_from_a_checkpoint_equals_an_uninterrupted_run() {
    let model = TinyMlp::<f32>::new(5);
    let data = inputs::<f32>(64, 6);
    let mut whole = Trainer::new(&model, small_config(4), &data).unwrap();
    whole.train(|_| true).unwrap();

    let dir = std::env::temp_dir().join(format!("l3d-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("checkpoint.json");
    let mut first = Trainer::new(&model, small_config(4), &data).unwrap();
    let mut epochs = 0;
    first
        .train(|_| {
            epochs += 1;
            epochs < 2
        })
        .unwrap();
    save_checkpoint(&path, &first.state, &model).unwrap();
    let state = load_checkpoint::<f32>(&path).unwrap();
    assert_eq!(state, first.state);
    let mut resumed = Trainer::resume(&model, state, &data).unwrap();
    resumed.train(|_| true).unwrap();
    assert_eq!(resumed.state.decomposition, whole.state.decomposition);
    assert_eq!(resumed.history(), whole.history());

    // Resuming on other data is refused.
    let other = inputs::<f32>(64, 99);
    let state = load_checkpoint::<f32>(&path).unwrap();
    let err = Trainer::resume(&model, state, &other).err().unwrap();
    assert!(err.to_string().contains("data differs"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saved_decompositions_load_back_and_damage_is_reported() {
    let model = TinyMlp::<f32>::new(5);
    let data = inputs::<f32>(32, 6);
    let mut t = Trainer::new(&model, small_config(1), &data).unwrap();
    t.train(|_| true).unwrap();
    let dir = std::env::temp_dir().join(format!("l3d-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("d.json");
    save_decomposition(
        &path,
        t.decomposition(),
        &t.state.config,
        &model,
        t.history(),
    )
    .unwrap();
    let saved = load_decomposition::<f32>(&path).unwrap();
    assert_eq!(&saved.decomposition, t.decomposition());
    assert_eq!(saved.meta.history, t.history());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.ends_with(".tmp").then_some(name)
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A truncated tensor file is noticed, not read.
    let tensors = dir.join("d.safetensors");
    let bytes = std::fs::read(&tensors).unwrap();
    for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&tensors, &bytes[..cut]).unwrap();
        let err = load_decomposition::<f32>(&path).unwrap_err().to_string();
        assert!(err.contains("d.safetensors"), "cut {cut}: {err}");
    }
    std::fs::write(&tensors, &bytes).unwrap();
    // Corrupt metadata.
    std::fs::write(&path, b"{\"format\": 3").unwrap();
    let err = load_decomposition::<f32>(&path).unwrap_err();
    assert!(matches!(err, L3dError::Save { .. }), "{err:?}");
    assert!(err.to_string().contains("d.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_decomposition_that_does_not_fit_the_model_is_refused_with_every_reason() {
    let model = TinyMlp::<f32>::new(5);
    let mut d = Decomposition::new(&model, &small_config(1)).unwrap();
    d.names[0] = "nope".into();
    d.encoder[1].shape = vec![9];
    let err = l3d::persist::check_against_model(&d, &model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'nope' is not a parameter"), "{err}");
    assert!(err.contains("[9]"), "{err}");
}

#[test]
fn bad_inputs_give_clear_errors_of_their_kind() {
    let mut model = TinyMlp::<f32>::new(5);
    let data = inputs::<f32>(32, 6);
    // Unknown tensor to decompose.
    let config = L3dConfig {
        decompose: vec!["9.weight".into()],
        ..small_config(1)
    };
    let err = Trainer::new(&model, config, &data).err().unwrap();
    assert!(matches!(err, L3dError::Decomposition(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("9.weight") && err.contains("0.weight"),
        "{err}"
    );
    // Data of the wrong width, and with a NaN.
    let wide = Tensor::<f32>::zeros(&[8, 4]);
    let err = Trainer::new(&model, small_config(1), &wide).err().unwrap();
    assert!(matches!(err, L3dError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("[8, 4]"), "{err}");
    let mut nan = data.clone();
    nan.data_mut()[7] = f32::NAN;
    let err = Trainer::new(&model, small_config(1), &nan).err().unwrap();
    assert!(matches!(err, L3dError::Data(_)), "{err:?}");
    assert!(err.to_string().contains("row 2, column 1"), "{err}");
    // Given gradients without a common sample axis.
    let ragged = [Tensor::<f32>::zeros(&[4, 3]), Tensor::<f32>::zeros(&[5, 2])];
    let names = ["a".to_string(), "b".to_string()];
    let err = Trainer::on_gradients(&ragged, &names, small_config(1))
        .err()
        .unwrap();
    assert!(matches!(err, L3dError::Gradients(_)), "{err:?}");
    // Impossible config.
    let err = Trainer::new(
        &model,
        L3dConfig {
            top_k: 0.0,
            ..small_config(1)
        },
        &data,
    )
    .err()
    .unwrap();
    assert!(matches!(err, L3dError::Config(_)), "{err}");
    // A NaN weight.
    model.params[2].data_mut()[3] = f32::INFINITY;
    let err = Trainer::new(&model, small_config(1), &data).err().unwrap();
    assert!(matches!(err, L3dError::Model(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("2.weight") && err.contains("index 3"), "{err}");
}

#[test]
fn overflowing_training_stops_with_the_epoch_and_batch() {
    let mut model = TinyMlp::<f32>::new(5);
    // Finite weights so large that the first layer's gradients overflow f32.
    model.params[2] = model.params[2].mul_scalar(1e30);
    let data = inputs::<f32>(32, 6);
    let mut t = Trainer::new(&model, small_config(2), &data).unwrap();
    let err = t.train(|_| true).unwrap_err();
    match err {
        L3dError::NonFinite { epoch, batch, .. } => assert_eq!((epoch, batch), (0, 0)),
        other => panic!("expected a non-finite error, got {other}"),
    }
}

#[test]
fn interventions_move_the_chosen_tensors_along_a_subnetwork() {
    use l3d::intervene::{moved_params, moved_params_where};
    let model = TinyMlp::<f64>::new(3);
    let config = L3dConfig {
        n_subnetworks: 2,
        ..L3dConfig::default()
    };
    let d = Decomposition::new(&model, &config).unwrap();
    let w0 = model.params.clone();
    let v1 = d.subnetwork(1);
    // All tensors: W0 + 0.5 v_1 in each of the four.
    let all = moved_params(&model, &d, &[(1, 0.5)]).unwrap();
    for ((moved, w), v) in all.iter().zip(&w0).zip(&v1) {
        assert!(moved.max_abs_diff(&w.add(&v.mul_scalar(0.5))) < 1e-15);
    }
    // Without the vector (bias) parts: the biases stay at W0 exactly.
    let weights_only = moved_params_where(&model, &d, &[(1, 0.5)], &|t| t % 2 == 0).unwrap();
    assert_eq!(weights_only[1], w0[1]);
    assert_eq!(weights_only[3], w0[3]);
    assert_eq!(weights_only[0], all[0]);
    assert_eq!(weights_only[2], all[2]);
    assert!(moved_params(&model, &d, &[(2, 0.5)]).is_err());
}
