//! The toys of WORKLOADS.md: shapes and parameter counts, the block structure of
//! `tms-parallel`, and short training runs (a few epochs, so the file runs in well under a
//! second; full training is `cargo run --release -p toys --example train_toys`).

use l3d::Model;
use nets::Sequential;
use tensor::{rng, Tensor};
use toys::models::{parallel_tms, training_seeds, ToyKind, ToyModel};
use toys::train::{train, train_toy, EarlyStop, TrainConfig};
use toys::workloads::{mlp_wide, MLP_WIDE_SEED};

fn param_count(model: &impl Model<f32>) -> usize {
    model.params().iter().map(|p| p.numel()).sum()
}

#[test]
fn every_toy_has_the_table_shapes_and_parameter_counts() {
    let expected = [
        (ToyKind::Tms, 5, 25),
        (ToyKind::TmsParallel, 15, 195),
        (ToyKind::Tmcs, 10, 110),
        (ToyKind::HighRank, 25, 525),
        (ToyKind::Squared, 5, 445),
    ];
    for (kind, width, params) in expected {
        let toy = ToyModel::untrained(kind, 0);
        assert_eq!(param_count(&toy.model), params, "{kind}");
        assert_eq!(toy.model.input_dim(), width, "{kind}");
        assert_eq!(toy.model.output_dim(), width, "{kind}");
        assert_eq!(toy.data.n_features(), width, "{kind}");
        let x = toy.sample_inputs(7, &mut rng(1));
        assert_eq!(x.shape(), [7, width]);
        assert_eq!(toy.targets(&x).shape(), [7, width]);
        assert_eq!(toy.model.evaluate_w0(&x).unwrap().shape(), [7, width]);
    }
    let tms = ToyModel::untrained(ToyKind::Tms, 0).model;
    assert_eq!(tms.param_shapes(), [vec![2, 5], vec![5, 2], vec![5]]);
    let squared = ToyModel::untrained(ToyKind::Squared, 0).model;
    assert_eq!(squared.param_shapes().len(), 10);
}

#[test]
fn mlp_wide_has_98880_parameters_and_kaiming_normal_weights() {
    let model = mlp_wide(MLP_WIDE_SEED);
    assert_eq!(param_count(&model), 98_880);
    assert_eq!(model.input_dim(), 64);
    assert_eq!(model.output_dim(), 64);
    // layers.1.weight: 65,536 draws of N(0, 2/256); the sample std is within 1% of
    // sqrt(2/256) = 0.0884 with overwhelming probability (its relative sigma is
    // 1/sqrt(2 n) = 0.28%).
    let w = model.params()[2];
    let std = (w.sum_squares() / w.numel() as f32).sqrt();
    assert!((std / (2.0f32 / 256.0).sqrt() - 1.0).abs() < 0.01, "{std}");
    assert_eq!(model.params()[3].sum_squares(), 0.0);
}

/// Whether every entry of `w` outside the diagonal blocks of `rows x cols` is exactly 0.
fn off_block_zero(w: &Tensor<f32>, rows: usize, cols: usize) -> bool {
    (0..w.shape()[0]).all(|r| {
        w.row(r)
            .iter()
            .enumerate()
            .all(|(c, &v)| r / rows == c / cols || v == 0.0)
    })
}

#[test]
fn tms_parallel_is_block_diagonal_with_exact_zeros() {
    let blocks: Vec<Sequential<f32>> = (0..3)
        .map(|k| ToyModel::untrained(ToyKind::Tms, k).model)
        .collect();
    let model = parallel_tms(&blocks);
    let p = model.params();
    assert!(off_block_zero(p[0], 2, 5));
    assert!(off_block_zero(p[1], 5, 2));
    // Each block's values sit in its block, and every block is non-zero.
    for (k, block) in blocks.iter().enumerate() {
        let b = block.params();
        assert_eq!(&p[0].row(2 * k)[5 * k..5 * k + 5], b[0].row(0));
        assert_eq!(&p[1].row(5 * k + 4)[2 * k..2 * k + 2], b[1].row(4));
        assert_eq!(&p[2].data()[5 * k..5 * k + 5], b[2].data());
    }
    // Block k of the input only reaches block k of the output: a feature of block 0 alone
    // gives the same block-0 outputs as block 0 by itself.
    let mut x = Tensor::zeros(&[1, 15]);
    x.data_mut()[3] = 0.7;
    let y = model.evaluate_w0(&x).unwrap();
    let y0 = blocks[0]
        .evaluate_w0(&Tensor::from_vec(&[1, 5], vec![0.0, 0.0, 0.0, 0.7, 0.0]))
        .unwrap();
    assert_eq!(&y.data()[..5], y0.data());
}

fn short(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        early_stop: None,
        ..TrainConfig::default()
    }
}

#[test]
fn training_tms_lowers_the_loss_and_reports_per_feature_errors() {
    let toy = ToyModel::untrained(ToyKind::Tms, 0);
    let mut model = toy.model.clone();
    let mut seen = Vec::new();
    let run = train(
        &mut model,
        ToyKind::Tms.tie(),
        &toy.target,
        &toy.data,
        &short(20),
        0,
        &mut |p| seen.push((p.epoch, p.loss)),
    )
    .unwrap();
    assert_eq!(run.epoch_losses.len(), 20);
    assert_eq!(seen.len(), 20);
    assert_eq!(seen[19].0, 20);
    let last = *run.epoch_losses.last().unwrap();
    // Loss of the untrained weights vs. after 20 epochs, both measured here: training must
    // remove most of it (a model that only learned the output biases would remove little).
    assert!(
        last < run.initial_loss / 3.0,
        "{} -> {last}",
        run.initial_loss
    );

    let trained = train_toy(
        ToyKind::Tms,
        0,
        &TrainConfig {
            max_seeds: 1,
            ..short(20)
        },
        &mut |_| {},
    )
    .unwrap();
    let check = &trained.report.check;
    println!("tms after 20 epochs: {check:?}");
    assert_eq!(check.feature_errors.len(), 5);
    assert_eq!(check.embedding_norms.len(), 5);
    assert!(check.unexplained.iter().all(|u| u.is_finite()));
    assert!(check.mse < toy.report.check.mse / 3.0);
}

#[test]
fn the_seed_search_records_every_attempt_and_its_choice() {
    let config = TrainConfig {
        max_seeds: 3,
        ..short(2)
    };
    let toy = train_toy(ToyKind::Tms, 10, &config, &mut |_| {}).unwrap();
    let r = &toy.report;
    let seeds: Vec<u64> = r.attempts.iter().map(|a| a.seed).collect();
    let expected: Vec<u64> = training_seeds(10).take(seeds.len()).collect();
    assert_eq!(seeds, expected);
    assert_eq!(seeds[0], 10_000);
    let chosen = r.chosen_seed.unwrap();
    let kept = r.attempts.iter().find(|a| a.seed == chosen).unwrap();
    assert_eq!(kept.check, r.check);
    // The search stops at the first model that represents every feature, or tries them all.
    let first_ok = r.attempts.iter().position(|a| a.check.represents_all);
    match first_ok {
        Some(i) => assert_eq!((i + 1, chosen), (seeds.len(), seeds[i])),
        None => {
            assert_eq!(seeds.len(), 3);
            assert!(r.choice.contains("no seed"), "{}", r.choice);
        }
    }
    // Same seed and settings, same model.
    let again = train_toy(ToyKind::Tms, 10, &config, &mut |_| {}).unwrap();
    assert_eq!(again.model.params(), toy.model.params());
    assert_eq!(&again.report, r);
}

#[test]
fn trained_tms_parallel_keeps_its_blocks_apart() {
    let config = TrainConfig {
        max_seeds: 2,
        ..short(2)
    };
    let toy = train_toy(ToyKind::TmsParallel, 0, &config, &mut |_| {}).unwrap();
    let p = toy.model.params();
    assert!(off_block_zero(p[0], 2, 5));
    assert!(off_block_zero(p[1], 5, 2));
    // Three copies of one trained block (the authors' construction).
    for k in 1..3 {
        assert_eq!(&p[0].row(2 * k)[5 * k..5 * k + 5], &p[0].row(0)[..5]);
        assert_eq!(&p[1].row(5 * k + 3)[2 * k..2 * k + 2], &p[1].row(3)[..2]);
    }
    let r = &toy.report;
    assert_eq!(r.blocks.len(), 1);
    assert_eq!((r.blocks[0].seed, r.blocks[0].kind), (0, ToyKind::Tms));
    assert_eq!(r.check.unexplained.len(), 15);
}

#[test]
fn a_kept_model_that_stopped_early_is_trained_for_the_full_budget() {
    // A window of 1 epoch and a 50% bar stop every run after its second epoch.
    let config = TrainConfig {
        epochs: 6,
        early_stop: Some(EarlyStop {
            window: 1,
            rel: 0.5,
        }),
        max_seeds: 1,
        ..TrainConfig::default()
    };
    let toy = train_toy(ToyKind::Tmcs, 3, &config, &mut |_| {}).unwrap();
    let r = &toy.report;
    assert_eq!(r.attempts.len(), 2, "{r:?}");
    let (early, full) = (&r.attempts[0], &r.attempts[1]);
    assert!(early.stopped_early && early.epochs_run < 6);
    assert_eq!(
        (full.seed, full.epochs_run, full.stopped_early),
        (early.seed, 6, false)
    );
    // The same run, continued: it starts from the same weights on the same data.
    assert_eq!(full.initial_loss, early.initial_loss);
    assert!(r.choice.contains("full 6 epochs"), "{}", r.choice);
    assert_eq!(r.check, full.check);

    let without = TrainConfig {
        finish_kept: false,
        ..config
    };
    let toy = train_toy(ToyKind::Tmcs, 3, &without, &mut |_| {}).unwrap();
    assert_eq!(toy.report.attempts.len(), 1);
}

#[test]
fn the_induction_model_learns_to_copy_repeated_spans() {
    // A short run (1,024 AdamW steps on 4,096 sequences): enough for the induction head to
    // form at lr 0.01. Next-token accuracy on repeated positions must be far above chance,
    // and on first occurrences near chance (1/64 = 0.016), since only copying can predict.
    use toys::induction::{train_induction, InductionTraining};
    let training = InductionTraining {
        train_sequences: 4096,
        test_sequences: 256,
        epochs: 16,
        ..InductionTraining::default()
    };
    let trained = train_induction(&training, 0, &mut |_| {}).unwrap();
    let (acc, att) = (trained.accuracy, trained.attention);
    assert!(acc.repeated > 0.6, "{acc:?}");
    assert!(acc.first < 0.05, "{acc:?}");
    assert!(att.layer1_induction > 0.5, "{att:?}");
    // The echo fillers make layer 0 a previous-token head.
    assert!(att.layer0_previous_token > 0.5, "{att:?}");
    let last = trained.epoch_losses.last().unwrap();
    assert!(
        last < &(0.9 * trained.epoch_losses[0]),
        "{:?}",
        trained.epoch_losses
    );
}

#[test]
fn induction_training_is_the_same_for_any_number_of_threads() {
    use toys::induction::{train_induction, InductionTraining};
    let training = InductionTraining {
        train_sequences: 128,
        test_sequences: 16,
        epochs: 2,
        ..InductionTraining::default()
    };
    let train_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| train_induction(&training, 3, &mut |_| {}).unwrap())
    };
    let (one, two) = (train_with(1), train_with(2));
    assert_eq!(one.model.params(), two.model.params());
    assert_eq!(one.epoch_losses, two.epoch_losses);
    assert_eq!(one.test, two.test);
    let other_seed = train_induction(&training, 4, &mut |_| {}).unwrap();
    assert_ne!(one.model.params(), other_seed.model.params());
}
