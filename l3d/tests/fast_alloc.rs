//! The fast path allocates nothing in steady state: a counting global allocator sees zero
//! allocations across fast steps after a warm-up, for a model with an MLP view (at a size that
//! runs serially and at one that runs in parallel), for the digits CNN (a conv view: the CNN
//! pass, in parallel), for an attention-only transformer (the attention pass, in parallel) and
//! for given gradients; a whole training
//! epoch then allocates a fixed number of times however many batches it has (its own
//! bookkeeping: the shuffled order, the epoch's statistics), so nothing is allocated per batch.
//!
//! The allocator counts what the worker threads of the test's rayon pool allocate (the fast
//! path runs there); threads outside it (the test harness, workers of a pool shutting down) are
//! not counted. The exact claim is made for a one-thread pool, where the fast path does not
//! call rayon at all. With two threads, rayon's work stealing now and then allocates for its
//! own bookkeeping (crossbeam-epoch garbage bags of its deques, about 2 KB, a few times per
//! hundred steps on a quiet machine, more under load, none of the fast path's doing): that
//! case checks that allocations stay below one per step.

mod random_mlp;

use l3d::fast::{renormalise_decoder, FastStep, RenormScratch};
use l3d::step::MaskRule;
use l3d::{Decomposition, L3dConfig, Model, Trainer};
use nets::{Activation, Architecture, Layer, OutputKind, Pair, Sequential};
use random_mlp::{normal_inputs, RandomMlp, ACTIVATIONS};
use tensor::{rng, Tensor};

#[path = "../../benches/support/alloc.rs"]
mod alloc;

#[global_allocator]
static ALLOC: alloc::TrackingAllocator = alloc::TrackingAllocator;

/// Allocations made on the counted threads while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    let before = alloc::counted_allocations();
    f();
    alloc::counted_allocations() - before
}

/// A model with an MLP view, a config and data: `wide` is past `fast::PARALLEL_WORK` (so the
/// step runs in parallel), with several chunks of a batch.
fn setup(wide: bool) -> (RandomMlp<f32>, L3dConfig, Tensor<f32>) {
    let (widths, n_v, batch): (&[usize], usize, usize) = if wide {
        (&[48, 96, 96, 24], 16, 80)
    } else {
        (&[5, 4, 5], 5, 32)
    };
    let layers = widths.len() - 1;
    // GELU, ReLU, then a linear output (the last `layers` of them).
    let acts = [ACTIVATIONS[2], ACTIVATIONS[1], ACTIVATIONS[0]];
    let model = RandomMlp::new(
        widths,
        &acts[3 - layers..],
        &[true, false, true][..layers],
        1,
    );
    let config = L3dConfig {
        n_subnetworks: n_v,
        rank: 2,
        batch_size: batch,
        top_k: 0.2,
        ..Default::default()
    };
    let x = normal_inputs(5 * batch + 7, widths[0], 2);
    (model, config, x)
}

/// The digits CNN of the `cnn` benchmark case (`[1, 8, 8]`, conv 3x3 to 8 channels with
/// padding 1, ReLU, 2x2 max pool, flatten, linear to 10), its config (batch 64, `n_v` 16,
/// rank 2, KL: parallel steps) and images.
fn cnn_setup() -> (Sequential<f32>, L3dConfig, Tensor<f32>) {
    let layers = vec![
        Layer::Conv2d {
            name: "0".into(),
            in_channels: 1,
            out_channels: 8,
            kernel_size: Pair(3, 3),
            stride: Pair(1, 1),
            padding: Pair(1, 1),
            dilation: Pair(1, 1),
            bias: true,
        },
        Layer::Activation {
            function: Activation::Relu,
        },
        Layer::MaxPool2d {
            kernel_size: Pair(2, 2),
            stride: None,
        },
        Layer::Flatten,
        Layer::Linear {
            name: "4".into(),
            in_features: 128,
            out_features: 10,
            bias: true,
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![1, 8, 8],
        layers,
        output: OutputKind::Logits,
    };
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(8);
    let params = slots
        .iter()
        .map(|s| Tensor::randn(&s.shape, 0.3, &mut r))
        .collect();
    let model = Sequential::new(arch, params).unwrap();
    let config = L3dConfig {
        n_subnetworks: 16,
        rank: 2,
        batch_size: 64,
        top_k: 0.2,
        divergence: l3d::Divergence::Kl,
        ..Default::default()
    };
    let x = Tensor::uniform(&[5 * 64 + 7, 1, 8, 8], 0.0, 1.0, &mut rng(9));
    (model, config, x)
}

/// A two-layer attention-only transformer as the `attention` benchmark case's (`[T = 32]`
/// token ids of a vocabulary of 64, width 16, one causal head per layer), its config (batch
/// 32, `n_v` 16, rank 2, KL) and token sequences.
fn attention_setup() -> (Sequential<f32>, L3dConfig, Tensor<f32>) {
    let block = |i: usize| Layer::Residual {
        block: vec![Layer::Attention {
            name: format!("blocks.{i}.attn"),
            embed_dim: 16,
            num_heads: 1,
            causal: true,
            bias: false,
            projections: ["q", "k", "v", "o"].map(String::from),
        }],
    };
    let layers = vec![
        Layer::Embedding {
            name: "tok".into(),
            num_embeddings: 64,
            embedding_dim: 16,
        },
        Layer::PositionalEmbedding {
            name: "pos".into(),
            num_embeddings: 32,
            embedding_dim: 16,
        },
        block(0),
        block(1),
        Layer::Linear {
            name: "unembed".into(),
            in_features: 16,
            out_features: 64,
            bias: false,
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![32],
        layers,
        output: OutputKind::Logits,
    };
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(10);
    let params = slots
        .iter()
        .map(|s| Tensor::randn(&s.shape, 0.25, &mut r))
        .collect();
    let model = Sequential::new(arch, params).unwrap();
    let config = L3dConfig {
        n_subnetworks: 16,
        rank: 2,
        batch_size: 32,
        top_k: 0.2,
        divergence: l3d::Divergence::Kl,
        ..Default::default()
    };
    let ids = Tensor::<f32>::uniform(&[3 * 32 + 5, 32], 0.0, 64.0, &mut rng(11));
    let x = Tensor::from_fn(&[3 * 32 + 5, 32], |i| ids.data()[i].floor().min(63.0));
    (model, config, x)
}

fn attention_steps(passes: usize) -> usize {
    let (model, config, x) = attention_setup();
    let d = Decomposition::new(&model, &config).unwrap();
    let fast = FastStep::new(&model, &x, &d, &config).unwrap();
    assert!(fast.uses_hand_written_pass());
    assert_eq!(fast.runs_parallel(32), rayon::current_num_threads() > 1);
    steps(&model, &config, &x, passes)
}

/// Fast steps over batches of every size the data gives (a last, shorter batch too), and the
/// decoder renormalisation, `passes` times over the data after a warm-up pass.
fn steady_state_steps(wide: bool, passes: usize) -> usize {
    let (model, config, x) = setup(wide);
    steps(&model, &config, &x, passes)
}

fn cnn_steps(passes: usize) -> usize {
    let (model, config, x) = cnn_setup();
    let fast = FastStep::new(
        &model,
        &x,
        &Decomposition::new(&model, &config).unwrap(),
        &config,
    );
    assert!(fast.unwrap().uses_hand_written_pass());
    steps(&model, &config, &x, passes)
}

fn steps(model: &dyn Model<f32>, config: &L3dConfig, x: &Tensor<f32>, passes: usize) -> usize {
    let mut d = Decomposition::new(model, config).unwrap();
    let mut fast = FastStep::new(model, x, &d, config).unwrap();
    let mut renorm = RenormScratch::default();
    let n = x.shape()[0];
    let rows: Vec<usize> = (0..n).map(|i| (i * 13) % n).collect();
    let mut r = rng(3);
    let mut pass = |d: &mut Decomposition<f32>| {
        for batch in rows.chunks(config.batch_size) {
            let out = fast
                .run(d, batch, &mut r, MaskRule::top_k(0.2), true)
                .unwrap();
            assert!(out.unwrap().sq_norm > 0.0);
            renormalise_decoder(d, &mut renorm);
        }
    };
    pass(&mut d);
    allocations(|| {
        for _ in 0..passes {
            pass(&mut d);
        }
    })
}

/// Allocations of one training epoch on the fast path, after a warm-up epoch, for data of
/// `batches` full batches plus a short one.
fn epoch_allocations(batches: usize) -> usize {
    let (model, config, _) = setup(true);
    let x = normal_inputs(batches * config.batch_size + 5, 48, 4);
    let config = L3dConfig {
        epochs: 2,
        ..config
    };
    let mut trainer = Trainer::new(&model, config, &x).unwrap();
    trainer.run_epoch().unwrap();
    allocations(|| {
        trainer.run_epoch().unwrap();
    })
}

fn given_gradient_steps() -> usize {
    let shapes = [vec![6, 5], vec![6]];
    let names: Vec<String> = ["w", "b"].map(String::from).to_vec();
    let grads: Vec<Tensor<f32>> = shapes
        .iter()
        .map(|s| Tensor::randn(&[&[100], &s[..]].concat(), 1.0, &mut rng(5)))
        .collect();
    let config = L3dConfig {
        n_subnetworks: 4,
        rank: 2,
        ..Default::default()
    };
    let d = Decomposition::for_shapes(&names, &shapes, vec![0, 1], &config).unwrap();
    let mut fast = FastStep::on_gradients(&grads, &d, &config).unwrap();
    let rows: Vec<usize> = (0..100).collect();
    let mut pass = || {
        for batch in rows.chunks(32) {
            let rule = MaskRule::top_k(0.1);
            fast.run(&d, batch, &mut rng(6), rule, true).unwrap();
        }
    };
    pass();
    allocations(pass)
}

/// A pool of `threads` counted threads, once every worker has started (a starting thread
/// allocates its own bookkeeping). The test keeps its pools alive throughout: a dropped pool's
/// workers, still counted, would allocate as they shut down while the next count runs.
fn counted_pool(threads: usize) -> rayon::ThreadPool {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .start_handler(|_| alloc::count_this_thread(true))
        .build()
        .unwrap();
    pool.broadcast(|_| ());
    pool
}

#[test]
fn the_fast_path_allocates_nothing_in_steady_state() {
    let (one, two) = (counted_pool(1), counted_pool(2));
    let in_pool = |threads: usize, f: &(dyn Fn() -> usize + Sync)| match threads {
        1 => one.install(f),
        _ => two.install(f),
    };
    // The counter sees the pool's allocations, and no others.
    let seen = in_pool(1, &|| {
        allocations(|| drop(std::hint::black_box(vec![0u8; 10])))
    });
    assert_eq!(seen, 1);
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![0u8; 10]))), 0);
    for wide in [false, true] {
        let count = in_pool(1, &|| steady_state_steps(wide, 1));
        assert_eq!(count, 0, "wide {wide}: {count} allocations");
    }
    assert_eq!(in_pool(1, &given_gradient_steps), 0, "given gradients");
    assert_eq!(in_pool(1, &|| cnn_steps(1)), 0, "the digits CNN");
    assert_eq!(in_pool(1, &|| attention_steps(1)), 0, "the transformer");
    // An epoch allocates the same, whatever its number of batches.
    let (short, long) = one.install(|| (epoch_allocations(2), epoch_allocations(6)));
    assert_eq!(
        short, long,
        "an epoch of 3 batches allocates {short} times, of 7 {long}"
    );
    // Two threads, 60 parallel steps: rayon's occasional bookkeeping only, fewer than one
    // allocation per step (an allocation of the fast path's own would make 60). How often
    // rayon steals, and so allocates, depends on how the threads are scheduled: a handful on
    // a quiet machine, more while other builds keep the cores busy, so the bound is the claim
    // itself and not a count seen on a quiet machine.
    let count = in_pool(2, &|| steady_state_steps(true, 10));
    assert!(count < 60, "two threads: {count} allocations in 60 steps");
    let count = in_pool(2, &|| cnn_steps(10));
    assert!(
        count < 60,
        "the CNN, two threads: {count} allocations in 60 steps"
    );
}
