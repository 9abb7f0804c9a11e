//! One fast step on convolutional and attention models against the plain tape step (dense
//! per-sample gradients), in f64 to 1e-9: the coefficients (the encode), `|g_i|^2`, the loss
//! and every factor gradient. A convolution's kernel `[out, in, kh, kw]` arrives factored as
//! `sum_p delta_ip patch_ip^T` over its `M` output positions and is encoded through the
//! Khatri-Rao product of its factors after the first; an attention layer's projections arrive
//! factored with `M = T` rows per sample. A convolution followed by dense layers has a
//! hand-written pass (`fast/cnn.rs`), checked the same way over strides, padding, dilation, a
//! max pool with overlapping windows, no pool, no conv bias. Each check runs twice: with the
//! cheaper form per tensor (these small kernels and projections are formed dense,
//! `fast/forms.rs`) and with every tensor that arrives factored kept factored. Then one thread
//! and two give the same bits.

use crate::fast_path::{assert_agree, in_pool, tape_batch};
use l3d::fast::{FastStep, FormRule};
use l3d::step::{MaskRule, StepResult};
use l3d::{Decomposition, Divergence, L3dConfig, Reference};
use nets::{Activation, Architecture, Layer, OutputKind, Pair, Sequential};
use rand::Rng;
use tensor::{rng, Tensor};

/// A model of `arch` with weights `N(0, std)`.
fn model(arch: Architecture, std: f64, seed: u64) -> Sequential<f64> {
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(seed);
    let params = slots
        .iter()
        .map(|s| Tensor::randn(&s.shape, std, &mut r))
        .collect();
    Sequential::new(arch, params).unwrap()
}

fn conv(name: &str, io: (usize, usize), kernel: Pair, stride: Pair, padding: Pair) -> Layer {
    Layer::Conv2d {
        name: name.into(),
        in_channels: io.0,
        out_channels: io.1,
        kernel_size: kernel,
        stride,
        padding,
        dilation: Pair(1, 1),
        bias: true,
    }
}

fn act(function: Activation) -> Layer {
    Layer::Activation { function }
}

fn linear(name: &str, io: (usize, usize)) -> Layer {
    Layer::Linear {
        name: name.into(),
        in_features: io.0,
        out_features: io.1,
        bias: true,
    }
}

fn images(layers: Vec<Layer>, shape: [usize; 3], seed: u64) -> Sequential<f64> {
    let arch = Architecture {
        input_dim: 0,
        input_shape: shape.to_vec(),
        layers,
        output: OutputKind::Logits,
    };
    model(arch, 0.5, seed)
}

/// Two convolutions, one of a non-square kernel: `[2, 6, 6]` images, conv 3x2 to 4 channels
/// (padding (1, 0): `[4, 6, 5]`, `M = 30`), ReLU, conv 2x2 stride 2 to 3 channels
/// (`[3, 3, 2]`, `M = 6`), GELU, flatten (18), linear to 5 logits.
fn two_convs() -> Sequential<f64> {
    let layers = vec![
        conv("c1", (2, 4), Pair(3, 2), Pair(1, 1), Pair(1, 0)),
        Layer::Activation {
            function: Activation::Relu,
        },
        conv("c2", (4, 3), Pair(2, 2), Pair(2, 2), Pair(0, 0)),
        Layer::Activation {
            function: Activation::Gelu,
        },
        Layer::Flatten,
        Layer::Linear {
            name: "fc".into(),
            in_features: 18,
            out_features: 5,
            bias: true,
        },
    ];
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![2, 6, 6],
        layers,
        output: OutputKind::Logits,
    };
    model(arch, 0.5, 1)
}

/// The digits CNN's layout (`[1, 8, 8]`, conv 3x3 to 8 channels with padding 1, ReLU, 2x2 max
/// pool, flatten, linear to 10): large enough that a step of 96 samples runs in parallel.
fn digits_cnn() -> Sequential<f64> {
    let layers = vec![
        conv("0", (1, 8), Pair(3, 3), Pair(1, 1), Pair(1, 1)),
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
    model(arch, 0.3, 2)
}

/// Token ids `[T = 6]` of a vocabulary of 7, width 4, two residual causal one-head attention
/// layers with separate q, k, v, o projections without bias, an unembedding without bias.
fn attention_only() -> Sequential<f64> {
    transformer(Shape {
        t: 6,
        width: 4,
        heads: 1,
        causal: true,
        positional: true,
    })
}

#[derive(Debug, Clone, Copy)]
struct Shape {
    t: usize,
    width: usize,
    heads: usize,
    causal: bool,
    positional: bool,
}

/// An attention-only transformer of two layers on a vocabulary of 7; the positional table has
/// `T + 2` rows (longer than the sequences).
fn transformer(s: Shape) -> Sequential<f64> {
    let block = |i: usize| Layer::Residual {
        block: vec![Layer::Attention {
            name: format!("blocks.{i}.attn"),
            embed_dim: s.width,
            num_heads: s.heads,
            causal: s.causal,
            bias: false,
            projections: ["q", "k", "v", "o"].map(String::from),
        }],
    };
    let mut layers = vec![Layer::Embedding {
        name: "tok".into(),
        num_embeddings: 7,
        embedding_dim: s.width,
    }];
    if s.positional {
        layers.push(Layer::PositionalEmbedding {
            name: "pos".into(),
            num_embeddings: s.t + 2,
            embedding_dim: s.width,
        });
    }
    layers.extend([
        block(0),
        block(1),
        Layer::Linear {
            name: "unembed".into(),
            in_features: s.width,
            out_features: 7,
            bias: false,
        },
    ]);
    let arch = Architecture {
        input_dim: 0,
        input_shape: vec![s.t],
        layers,
        output: OutputKind::Logits,
    };
    model(arch, 0.7, 3)
}

fn tokens(n: usize, t: usize, seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    Tensor::<f64>::from_fn(&[n, t], |_| r.gen_range(0..7) as f64)
}

fn config(n_v: usize, batch: usize) -> L3dConfig {
    L3dConfig {
        n_subnetworks: n_v,
        rank: 2,
        top_k: 0.3,
        batch_size: batch,
        divergence: Divergence::Kl,
        ..Default::default()
    }
}

const FORMS: [FormRule; 2] = [FormRule::Cheapest, FormRule::Factored];

/// The tensors a first fast step on `x` took factored with the forms of `form`, `(index, M)`.
fn factored(
    model: &Sequential<f64>,
    x: &Tensor<f64>,
    d: &Decomposition<f64>,
    c: &L3dConfig,
    form: FormRule,
) -> Vec<(usize, usize)> {
    let mut fast = FastStep::new(model, x, d, c).unwrap();
    fast.set_form_rule(form);
    let rows: Vec<usize> = (0..x.shape()[0]).collect();
    fast.run(d, &rows, &mut rng(0), MaskRule::top_k(c.top_k), false)
        .unwrap();
    fast.factored_tensors()
}

/// One fast step on every row of `x` with the forms of `form`.
fn fast_batch(
    model: &Sequential<f64>,
    d: &Decomposition<f64>,
    c: &L3dConfig,
    x: &Tensor<f64>,
    seed: u64,
    form: FormRule,
) -> StepResult<f64> {
    let mut fast = FastStep::new(model, x, d, c).unwrap();
    fast.set_form_rule(form);
    let rows: Vec<usize> = (0..x.shape()[0]).collect();
    let out = fast.run(d, &rows, &mut rng(seed), MaskRule::top_k(c.top_k), true);
    out.unwrap().unwrap().to_step_result()
}

#[test]
fn conv_kernels_stay_factored_over_positions_and_agree_with_the_tape() {
    let model = two_convs();
    // 70 samples: three chunks, so the factors shared by the chunks are packed.
    let x = Tensor::<f64>::uniform(&[70, 2, 6, 6], 0.0, 1.0, &mut rng(4));
    let c = config(4, 70);
    let d = Decomposition::new(&model, &c).unwrap();
    assert_eq!(
        d.names,
        [
            "c1.weight",
            "c1.bias",
            "c2.weight",
            "c2.bias",
            "fc.weight",
            "fc.bias"
        ]
    );
    // Both kernels (4-way CP tensors) and the linear weight arrive factored; biases dense.
    let kept = factored(&model, &x, &d, &c, FormRule::Factored);
    assert_eq!(kept, [(0, 30), (2, 6), (4, 1)]);
    // The kernels are formed dense where that is cheaper: both, here.
    let cheapest = factored(&model, &x, &d, &c, FormRule::Cheapest);
    assert_eq!(cheapest, [(4, 1)]);
    // Two convolutions: no hand-written pass, the tape's gradients.
    assert!(!FastStep::new(&model, &x, &d, &c)
        .unwrap()
        .uses_hand_written_pass());
    let rule = MaskRule::top_k(c.top_k);
    for seed in [5, 6] {
        let tape = tape_batch(&model, &d, &c, &x, seed, rule);
        for form in FORMS {
            let fast = fast_batch(&model, &d, &c, &x, seed, form);
            assert_agree(&fast, &tape, 1e-9, 1e-6).unwrap();
        }
    }
}

#[test]
fn the_cnn_pass_agrees_with_the_tape_over_strides_padding_dilation_and_pools() {
    // [2, 7, 6] images. (a) conv 3x3 to 3 channels without bias, stride 2, padding (1, 2),
    // dilation (1, 2): [3, 4, 3], GELU, no pool, flatten (36), linear, tanh, linear.
    let strided = Layer::Conv2d {
        name: "c".into(),
        in_channels: 2,
        out_channels: 3,
        kernel_size: Pair(3, 3),
        stride: Pair(2, 2),
        padding: Pair(1, 2),
        dilation: Pair(1, 2),
        bias: false,
    };
    let a = images(
        vec![
            strided,
            act(Activation::Gelu),
            Layer::Flatten,
            linear("f1", (36, 6)),
            act(Activation::Tanh),
            linear("f2", (6, 4)),
        ],
        [2, 7, 6],
        11,
    );
    // (b) conv 2x3 to 4 channels: [4, 6, 4], ReLU, 2x2 max pool of stride 1 (overlapping
    // windows: a value can be taken twice): [4, 5, 3], flatten (60), linear.
    let pool = Layer::MaxPool2d {
        kernel_size: Pair(2, 2),
        stride: Some(Pair(1, 1)),
    };
    let b = images(
        vec![
            conv("c", (2, 4), Pair(2, 3), Pair(1, 1), Pair(0, 0)),
            act(Activation::Relu),
            pool,
            Layer::Flatten,
            linear("f", (60, 5)),
        ],
        [2, 7, 6],
        12,
    );
    let x = Tensor::<f64>::uniform(&[45, 2, 7, 6], -1.0, 1.0, &mut rng(13));
    for (model, kernel_rows) in [(a, 12), (b, 24)] {
        for divergence in [Divergence::Kl, Divergence::Mse] {
            let c = L3dConfig {
                divergence,
                ..config(4, 45)
            };
            let d = Decomposition::new(&model, &c).unwrap();
            let fast = FastStep::new(&model, &x, &d, &c).unwrap();
            assert!(fast.uses_hand_written_pass());
            let kept = factored(&model, &x, &d, &c, FormRule::Factored);
            assert_eq!(kept[0], (0, kernel_rows));
            let cheapest = factored(&model, &x, &d, &c, FormRule::Cheapest);
            assert!(cheapest.iter().all(|&(t, _)| t != 0), "{cheapest:?}");
            let rule = MaskRule::top_k(c.top_k);
            let tape = tape_batch(&model, &d, &c, &x, 14, rule);
            for form in FORMS {
                let fast = fast_batch(&model, &d, &c, &x, 14, form);
                assert_agree(&fast, &tape, 1e-9, 1e-6).unwrap();
            }
        }
    }
}

#[test]
fn the_digits_cnn_agrees_with_the_tape_and_one_thread_equals_two() {
    let model = digits_cnn();
    let x = Tensor::<f64>::uniform(&[96, 1, 8, 8], 0.0, 1.0, &mut rng(7));
    let c = config(16, 96);
    let d = Decomposition::new(&model, &c).unwrap();
    let kept = factored(&model, &x, &d, &c, FormRule::Factored);
    assert_eq!(kept, [(0, 64), (2, 1)]);
    let cheapest = factored(&model, &x, &d, &c, FormRule::Cheapest);
    assert_eq!(cheapest, [(2, 1)]);
    let rule = MaskRule::top_k(c.top_k);
    assert!(FastStep::new(&model, &x, &d, &c)
        .unwrap()
        .uses_hand_written_pass());
    let tape = tape_batch(&model, &d, &c, &x, 8, rule);
    for form in FORMS {
        let two = in_pool(2, || {
            let mut fast = FastStep::new(&model, &x, &d, &c).unwrap();
            fast.set_form_rule(form);
            assert!(fast.runs_parallel(96));
            let rows: Vec<usize> = (0..96).collect();
            let out = fast.run(&d, &rows, &mut rng(8), rule, true).unwrap();
            out.unwrap().to_step_result()
        });
        assert_agree(&two, &tape, 1e-9, 1e-6).unwrap();
        let one = in_pool(1, || fast_batch(&model, &d, &c, &x, 8, form));
        assert_eq!(one.coefficients, two.coefficients);
        assert_eq!(one.sq_error.to_bits(), two.sq_error.to_bits());
        assert_eq!(one.factor_grads, two.factor_grads);
    }
}

#[test]
fn attention_projections_arrive_factored_with_a_row_per_position_and_agree() {
    let model = attention_only();
    let mut r = rng(9);
    let x = Tensor::<f64>::from_fn(&[40, 6], |_| r.gen_range(0..7) as f64);
    let c = config(5, 40);
    let d = Decomposition::new(&model, &c).unwrap();
    // tok, pos (embedding tables: scattered rows, dense), then q k v o of two layers and the
    // unembedding, each with T = 6 rows per sample.
    assert!(FastStep::new(&model, &x, &d, &c)
        .unwrap()
        .uses_hand_written_pass());
    let projections: Vec<(usize, usize)> = (2..11).map(|t| (t, 6)).collect();
    assert_eq!(
        factored(&model, &x, &d, &c, FormRule::Factored),
        projections
    );
    // At T = 6 and width 4, forming each g_i is cheaper: every tensor dense.
    assert!(factored(&model, &x, &d, &c, FormRule::Cheapest).is_empty());
    let rule = MaskRule::top_k(c.top_k);
    let tape = tape_batch(&model, &d, &c, &x, 10, rule);
    for form in FORMS {
        let fast = fast_batch(&model, &d, &c, &x, 10, form);
        assert_agree(&fast, &tape, 1e-9, 1e-6).unwrap();
    }
}

#[test]
fn the_attention_pass_agrees_over_heads_masks_divergences_and_references() {
    let shapes = [(1, true, true), (2, false, true), (2, true, false)];
    // KL hands out probabilities from the forward (against another sample's, or the
    // uniform distribution for the zero reference); MSE logits.
    let settings = [
        (Divergence::Kl, Reference::RandomSample),
        (Divergence::Kl, Reference::RandomWithSelf),
        (Divergence::Kl, Reference::Zero),
        (Divergence::Mse, Reference::RandomWithSelf),
        (Divergence::MseAuthors, Reference::Zero),
    ];
    let x = tokens(37, 5, 15);
    for (heads, causal, positional) in shapes {
        let model = transformer(Shape {
            t: 5,
            width: 6,
            heads,
            causal,
            positional,
        });
        for (divergence, reference) in settings {
            let c = L3dConfig {
                divergence,
                reference,
                ..config(4, 37)
            };
            let d = Decomposition::new(&model, &c).unwrap();
            let fast = FastStep::new(&model, &x, &d, &c).unwrap();
            assert!(fast.uses_hand_written_pass());
            let rule = MaskRule::top_k(c.top_k);
            let tape = tape_batch(&model, &d, &c, &x, 16, rule);
            for form in FORMS {
                let fast = fast_batch(&model, &d, &c, &x, 16, form);
                assert_agree(&fast, &tape, 1e-9, 1e-6).unwrap();
            }
        }
    }
}

#[test]
fn the_attention_pass_refuses_bad_token_ids_and_leaves_batch_means_to_the_tape() {
    let model = attention_only();
    let c = config(3, 8);
    let d = Decomposition::new(&model, &c).unwrap();
    for bad in [7.0, -1.0, 2.5] {
        let mut x = tokens(8, 6, 17);
        x.data_mut()[2 * 6 + 4] = bad;
        let err = FastStep::new(&model, &x, &d, &c).err().expect("a bad id");
        let text = err.to_string();
        assert!(
            text.contains(&format!("token id {bad} at row 2, position 4")),
            "{text}"
        );
    }
    let mean = L3dConfig {
        reference: Reference::BatchMean,
        ..c
    };
    let x = tokens(8, 6, 18);
    let fast = FastStep::new(&model, &x, &d, &mean).unwrap();
    assert!(!fast.uses_hand_written_pass());
}

#[test]
fn the_attention_pass_gives_the_same_bits_on_one_thread_and_two() {
    let model = transformer(Shape {
        t: 16,
        width: 8,
        heads: 2,
        causal: true,
        positional: true,
    });
    // Chunks of 16 sequences of 16 positions (`CHUNK_POSITIONS` = 256 positions each): 60
    // sequences are four chunks, the last one partial.
    let x = tokens(60, 16, 19);
    let c = config(8, 60);
    let d = Decomposition::new(&model, &c).unwrap();
    let rule = MaskRule::top_k(c.top_k);
    let tape = tape_batch(&model, &d, &c, &x, 20, rule);
    let run = || {
        let mut fast = FastStep::new(&model, &x, &d, &c).unwrap();
        fast.set_form_rule(FormRule::Factored);
        let parallel = fast.runs_parallel(60);
        let rows: Vec<usize> = (0..60).collect();
        let out = fast.run(&d, &rows, &mut rng(20), rule, true).unwrap();
        (parallel, out.unwrap().to_step_result())
    };
    let ((serial, one), (parallel, two)) = (in_pool(1, run), in_pool(2, run));
    assert!(!serial && parallel);
    assert_agree(&two, &tape, 1e-9, 1e-6).unwrap();
    assert_eq!(one.coefficients, two.coefficients);
    assert_eq!(one.sq_error.to_bits(), two.sq_error.to_bits());
    assert_eq!(one.factor_grads, two.factor_grads);
}
