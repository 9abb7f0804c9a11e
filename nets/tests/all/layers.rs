//! The architecture-file layers of convolutional networks and transformers: files in
//! PyTorch's layout (`state_dict` names and shapes, `[N, C, H, W]` images and integer token
//! ids in `.npy`) load, run as the plain math says, give per-sample gradients equal to
//! single-sample ones, and bad files or inputs are refused with errors naming the layer,
//! the file and the tensor.
//!
//! The models are the two of WORKLOADS.md (`cnn`: the digits CNN; `attention`: the two-layer
//! attention-only transformer, in both attention forms) and a pre-norm transformer block.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autodiff::{per_sample_grads, per_sample_grads_loop, Tape, Var};
use nets::io::{
    check_model_inputs, load_inputs, load_model, read_architecture, write_architecture, write_npy,
    write_safetensors, IoError,
};
use nets::{Architecture, Model, Sequential};
use rand::Rng;
use tensor::{conv2d_naive, rng, Tensor, Window2d};

/// The digits CNN as PyTorch builds it: `nn.Sequential(nn.Conv2d(1, 8, 3, padding=1),
/// nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10))`.
const CNN_TOML: &str = r#"
input_shape = [1, 8, 8]
output = "logits"

[[layers]]
type = "conv2d"
name = "0"
in_channels = 1
out_channels = 8
kernel_size = 3
padding = 1

[[layers]]
type = "activation"
function = "relu"

[[layers]]
type = "max_pool2d"
kernel_size = 2

[[layers]]
type = "flatten"

[[layers]]
type = "linear"
name = "4"
in_features = 128
out_features = 10
"#;

/// The two attention forms a user's transformer is saved in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `q`, `k`, `v`, `o` linear layers.
    Separate,
    /// `nn.MultiheadAttention`'s `in_proj_weight` and `out_proj`.
    Fused,
}

/// The attention-only transformer of WORKLOADS.md at vocabulary `vocab`, context `context`,
/// width `d`: token and positional embeddings, two residual causal one-head attention layers
/// without biases, an unembedding without bias.
fn transformer_toml(form: Form, vocab: usize, context: usize, d: usize) -> String {
    let attention = |i: usize| match form {
        Form::Separate => format!(
            "type = \"attention\"\nname = \"blocks.{i}.attn\"\nembed_dim = {d}\nnum_heads = 1\n\
             causal = true\nbias = false\n"
        ),
        Form::Fused => format!(
            "type = \"multihead_attention\"\nname = \"blocks.{i}.attn\"\nembed_dim = {d}\n\
             num_heads = 1\ncausal = true\nbias = false\n"
        ),
    };
    format!(
        "input_shape = [{context}]\noutput = \"logits\"\n\n\
         [[layers]]\ntype = \"embedding\"\nname = \"tok_emb\"\nnum_embeddings = {vocab}\n\
         embedding_dim = {d}\n\n\
         [[layers]]\ntype = \"positional_embedding\"\nname = \"pos_emb\"\n\
         num_embeddings = {context}\nembedding_dim = {d}\n\n\
         [[layers]]\ntype = \"residual\"\n[[layers.block]]\n{}\n\
         [[layers]]\ntype = \"residual\"\n[[layers.block]]\n{}\n\
         [[layers]]\ntype = \"linear\"\nname = \"unembed\"\nin_features = {d}\n\
         out_features = {vocab}\nbias = false\n",
        attention(0),
        attention(1)
    )
}

/// A pre-norm transformer block with a tied read-out: `h = x + attn(ln1(x))`, `h + mlp(ln2(h))`,
/// `nn.MultiheadAttention` with biases and two heads, logits through the token table.
const PRE_NORM_TOML: &str = r#"
input_shape = [5]
output = "logits"

[[layers]]
type = "embedding"
name = "wte"
num_embeddings = 7
embedding_dim = 4

[[layers]]
type = "positional_embedding"
name = "wpe"
num_embeddings = 6
embedding_dim = 4

[[layers]]
type = "residual"

[[layers.block]]
type = "layer_norm"
name = "h.0.ln_1"
dim = 4

[[layers.block]]
type = "multihead_attention"
name = "h.0.attn"
embed_dim = 4
num_heads = 2
causal = true

[[layers]]
type = "residual"

[[layers.block]]
type = "layer_norm"
name = "h.0.ln_2"
dim = 4

[[layers.block]]
type = "linear"
name = "h.0.mlp.fc"
in_features = 4
out_features = 8

[[layers.block]]
type = "activation"
function = "gelu"

[[layers.block]]
type = "linear"
name = "h.0.mlp.proj"
in_features = 8
out_features = 4

[[layers]]
type = "tied_readout"
embedding = "wte"
"#;

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("layers")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The error of `result`, whose message must contain every one of `needles`.
#[track_caller]
fn err_naming<T: std::fmt::Debug>(result: Result<T, IoError>, needles: &[&str]) {
    let msg = result.expect_err("expected an error").to_string();
    for needle in needles {
        assert!(
            msg.contains(needle),
            "{needle:?} is not in the message: {msg}"
        );
    }
}

/// Writes `toml` and random weights for its slots (`N(0, 0.5)`, in f32 as PyTorch saves
/// them, under the slot names) into `dir`; returns the two paths.
fn write_model(dir: &Path, toml: &str, seed: u64) -> (PathBuf, PathBuf) {
    let arch_path = dir.join("model.toml");
    std::fs::write(&arch_path, toml).unwrap();
    let arch = read_architecture(&arch_path).unwrap();
    let (slots, _) = arch.slots().unwrap();
    let mut r = rng(seed);
    let tensors: Vec<(String, Tensor<f32>)> = slots
        .iter()
        .map(|s| (s.name.clone(), Tensor::randn(&s.shape, 0.5, &mut r)))
        .collect();
    let weights = dir.join("model.safetensors");
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    write_safetensors(
        &weights,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &metadata,
    )
    .unwrap();
    (arch_path, weights)
}

/// Token ids `[n, t]` in `0..vocab`.
fn token_ids(n: usize, t: usize, vocab: usize, seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    Tensor::from_fn(&[n, t], |_| r.gen_range(0..vocab) as f64)
}

/// An `.npy` of int64 token ids, as `np.save(path, ids.astype(np.int64))` writes it.
fn write_int64_npy(path: &Path, ids: &[i64], shape: [usize; 2]) {
    let header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape[0], shape[1]
    );
    let mut padded = header.clone();
    while (10 + padded.len() + 1) % 64 != 0 {
        padded.push(' ');
    }
    padded.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((padded.len() as u16).to_le_bytes());
    bytes.extend(padded.as_bytes());
    bytes.extend(ids.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// The names and shapes of the slots of `arch`.
fn slot_list(arch: &Architecture) -> Vec<(String, Vec<usize>)> {
    let (slots, _) = arch.slots().unwrap();
    slots.into_iter().map(|s| (s.name, s.shape)).collect()
}

fn owned(list: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    list.iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

#[test]
fn architecture_files_name_tensors_as_pytorch_state_dicts_do() {
    let dir = scratch("names");
    let path = dir.join("cnn.toml");
    std::fs::write(&path, CNN_TOML).unwrap();
    let cnn = read_architecture(&path).unwrap();
    let expected = owned(&[
        ("0.weight", &[8, 1, 3, 3]),
        ("0.bias", &[8]),
        ("4.weight", &[10, 128]),
        ("4.bias", &[10]),
    ]);
    assert_eq!(slot_list(&cnn), expected);
    assert_eq!(cnn.slots().unwrap().1, [10]);

    for (form, attn) in [
        (
            Form::Separate,
            vec![
                "attn.q.weight",
                "attn.k.weight",
                "attn.v.weight",
                "attn.o.weight",
            ],
        ),
        (
            Form::Fused,
            vec!["attn.in_proj_weight", "attn.out_proj.weight"],
        ),
    ] {
        let path = dir.join(format!("{form:?}.toml"));
        std::fs::write(&path, transformer_toml(form, 64, 32, 16)).unwrap();
        let arch = read_architecture(&path).unwrap();
        let mut expected = owned(&[("tok_emb.weight", &[64, 16]), ("pos_emb.weight", &[32, 16])]);
        for layer in 0..2 {
            for name in &attn {
                let rows = if name.contains("in_proj") { 48 } else { 16 };
                expected.push((format!("blocks.{layer}.{name}"), vec![rows, 16]));
            }
        }
        expected.push(("unembed.weight".into(), vec![64, 16]));
        assert_eq!(slot_list(&arch), expected, "{form:?}");
        assert_eq!(arch.slots().unwrap().1, [32, 64], "logits per position");
    }

    let path = dir.join("pre_norm.toml");
    std::fs::write(&path, PRE_NORM_TOML).unwrap();
    let arch = read_architecture(&path).unwrap();
    let names: Vec<String> = slot_list(&arch).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "wte.weight",
            "wpe.weight",
            "h.0.ln_1.weight",
            "h.0.ln_1.bias",
            "h.0.attn.in_proj_weight",
            "h.0.attn.in_proj_bias",
            "h.0.attn.out_proj.weight",
            "h.0.attn.out_proj.bias",
            "h.0.ln_2.weight",
            "h.0.ln_2.bias",
            "h.0.mlp.fc.weight",
            "h.0.mlp.fc.bias",
            "h.0.mlp.proj.weight",
            "h.0.mlp.proj.bias",
        ],
        "the tied read-out owns no tensor"
    );
    assert_eq!(arch.slots().unwrap().1, [5, 7]);
}

#[test]
fn new_layers_survive_a_round_trip_through_toml_and_json() {
    let dir = scratch("round_trip");
    for (i, text) in [
        CNN_TOML.to_string(),
        transformer_toml(Form::Separate, 9, 4, 6),
        transformer_toml(Form::Fused, 9, 4, 6),
        PRE_NORM_TOML.to_string(),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.join(format!("a{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let arch = read_architecture(&path).unwrap();
        for ext in ["toml", "json"] {
            let again = dir.join(format!("b{i}.{ext}"));
            write_architecture(&again, &arch).unwrap();
            assert_eq!(read_architecture(&again).unwrap(), arch, "{i} as {ext}");
        }
    }
}

#[test]
fn sizes_are_one_number_or_a_pair() {
    let dir = scratch("pairs");
    let text = CNN_TOML
        .replace("kernel_size = 3", "kernel_size = [3, 1]\nstride = [1, 2]")
        .replace("padding = 1", "padding = [1, 0]")
        .replace("in_features = 128", "in_features = 64");
    let path = dir.join("pairs.toml");
    std::fs::write(&path, text).unwrap();
    let arch = read_architecture(&path).unwrap();
    // conv: 8x8 -> 8x4 (kernel 3x1, stride 1x2, padding 1x0); pool 2x2 -> 4x2; 8 * 8 = 64.
    assert_eq!(slot_list(&arch)[0].1, [8, 1, 3, 1]);
    let bad = CNN_TOML.replace("kernel_size = 3", "kernel_size = \"3\"");
    std::fs::write(&path, bad).unwrap();
    err_naming(read_architecture(&path), &["pairs.toml", "a pair [h, w]"]);
}

/// An embedding layer appended after a model's last layer.
const LATE_EMBEDDING: &str =
    "[[layers]]\ntype = \"embedding\"\nname = \"late\"\nnum_embeddings = 3\nembedding_dim = 2\n";

#[test]
fn bad_architectures_are_refused_naming_the_layer() {
    let dir = scratch("bad_architectures");
    let transformer = transformer_toml(Form::Separate, 64, 32, 16);
    let cases = [
        (
            CNN_TOML.replace("in_channels = 1", "in_channels = 3"),
            "conv2d layer '0' takes 3 input channels but receives 1",
        ),
        (
            CNN_TOML.replace("kernel_size = 3", "kernel_size = 11"),
            "conv2d layer '0': the window",
        ),
        (
            CNN_TOML.replace("in_features = 128", "in_features = 100"),
            "linear layer '4' takes 100 inputs but receives 128",
        ),
        (
            CNN_TOML.replace("input_shape = [1, 8, 8]", "input_shape = [64]"),
            "conv2d layer '0' receives shape [64]; it needs images [C, H, W]",
        ),
        (
            CNN_TOML.replace("out_channels = 8", "out_channels = 0"),
            "layer '0' has out_channels = 0",
        ),
        (
            CNN_TOML.replace("kernel_size = 2", "kernel_size = 9"),
            "max_pool2d layer: the window",
        ),
        (
            transformer.replace("input_shape = [32]", "input_shape = [40]"),
            "positional embedding 'pos_emb' holds 32 positions of width 16, but receives 40",
        ),
        (
            transformer.replace("num_heads = 1", "num_heads = 3"),
            "attention 'blocks.0.attn' has embed_dim 16 and num_heads 3",
        ),
        (
            format!("{transformer}{LATE_EMBEDDING}"),
            "embedding 'late' reads token ids [T], but receives shape [32, 64]",
        ),
        (
            transformer.replacen(
                "[[layers]]",
                "[[layers]]\ntype = \"flatten\"\n\n[[layers]]",
                1,
            ),
            "embedding 'tok_emb' must be the first layer",
        ),
        (
            PRE_NORM_TOML.replace("embedding = \"wte\"", "embedding = \"wpe2\""),
            "tied read-out names the embedding 'wpe2'",
        ),
        (
            transformer.replace("in_features = 16", "in_features = 12"),
            "linear layer 'unembed' takes 12 inputs but receives 16",
        ),
        (
            CNN_TOML.replace(
                "input_shape = [1, 8, 8]",
                "input_shape = [1, 8, 8]\ninput_dim = 64",
            ),
            "both input_dim and input_shape",
        ),
    ];
    for (i, (text, reason)) in cases.iter().enumerate() {
        let path = dir.join(format!("case{i}.toml"));
        std::fs::write(&path, text).unwrap();
        err_naming(
            read_architecture(&path),
            &[&format!("case{i}.toml"), reason],
        );
    }
}

#[test]
fn weights_that_do_not_fit_are_refused_naming_the_tensor() {
    let dir = scratch("bad_weights");
    let (arch, _) = write_model(&dir, CNN_TOML, 1);
    let weights = dir.join("wrong.safetensors");
    let kernel = Tensor::<f32>::zeros(&[8, 1, 5, 5]);
    let bias = Tensor::<f32>::zeros(&[8]);
    write_safetensors(
        &weights,
        [("0.weight", &kernel), ("0.bias", &bias)],
        &BTreeMap::new(),
    )
    .unwrap();
    err_naming(
        load_model(&arch, &weights),
        &[
            "wrong.safetensors",
            "'0.weight' has shape [8, 1, 5, 5], the architecture needs [8, 1, 3, 3]",
            "'4.weight' is missing",
        ],
    );
}

#[test]
fn inputs_are_checked_against_the_model_naming_the_file() {
    let dir = scratch("inputs");
    let cnn_path = dir.join("cnn.toml");
    std::fs::write(&cnn_path, CNN_TOML).unwrap();
    let cnn = read_architecture(&cnn_path).unwrap();
    let images = dir.join("images.npy");
    write_npy(&images, &Tensor::<f32>::zeros(&[5, 1, 8, 8])).unwrap();
    let x = load_inputs(&images).unwrap();
    assert_eq!(x.shape(), [5, 1, 8, 8]);
    check_model_inputs(&x, &cnn, &images).unwrap();
    let flat = Tensor::<f32>::zeros(&[5, 64]);
    err_naming(
        check_model_inputs(&flat, &cnn, Path::new("flat.npy")),
        &["flat.npy", "[5, 64]", "[N, 1, 8, 8]"],
    );

    let t_path = dir.join("t.toml");
    std::fs::write(&t_path, transformer_toml(Form::Fused, 64, 32, 16)).unwrap();
    let t = read_architecture(&t_path).unwrap();
    let mut ids: Vec<i64> = (0..3 * 32).map(|i| i % 64).collect();
    let ok = dir.join("ids.npy");
    write_int64_npy(&ok, &ids, [3, 32]);
    let x = load_inputs(&ok).unwrap();
    assert_eq!(x.shape(), [3, 32]);
    assert_eq!(x.data()[63], 63.0);
    check_model_inputs(&x, &t, &ok).unwrap();

    ids[2 * 32 + 7] = 64; // row 2, position 7
    let bad = dir.join("bad_ids.npy");
    write_int64_npy(&bad, &ids, [3, 32]);
    let x = load_inputs(&bad).unwrap();
    err_naming(
        check_model_inputs(&x, &t, &bad),
        &[
            "bad_ids.npy",
            "token id 64 at row 2, position 7",
            "embedding 'tok_emb'",
            "0..64",
        ],
    );
    ids[2 * 32 + 7] = -1;
    write_int64_npy(&bad, &ids, [3, 32]);
    let x = load_inputs(&bad).unwrap();
    err_naming(check_model_inputs(&x, &t, &bad), &["token id -1"]);
    let short = Tensor::<f32>::zeros(&[3, 31]);
    err_naming(
        check_model_inputs(&short, &t, Path::new("short.npy")),
        &["short.npy", "[3, 31]", "[N, 32]"],
    );
}

#[test]
fn existing_architecture_files_stay_valid() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/models"));
    let mut seen = 0;
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let arch = read_architecture(&path).unwrap();
            assert!(!arch.layers.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 3, "examples/models holds {seen} files");
}

// ---------------------------------------------------------------------------------------------
// Forward passes against the plain math

/// The loaded CNN's logits equal conv (the naive loop of `tensor`), relu, 2x2 max, flatten and
/// a linear layer written out.
#[test]
fn cnn_forward_is_conv_relu_pool_flatten_linear() {
    let dir = scratch("cnn_forward");
    let (arch, weights) = write_model(&dir, CNN_TOML, 2);
    let model = load_model(&arch, &weights).unwrap().cast::<f64>();
    assert_eq!(
        (model.input_shape(), model.output_shape()),
        (vec![1, 8, 8], vec![10])
    );
    let p = model.params();
    let x = Tensor::<f64>::uniform(&[3, 1, 8, 8], 0.0, 1.0, &mut rng(3));
    let y = model.evaluate_w0(&x).unwrap();
    let window = Window2d::new((3, 3)).with_padding((1, 1));
    let conv = conv2d_naive(&x, p[0], &window);
    for n in 0..3 {
        for class in 0..10 {
            let mut z = p[3].data()[class];
            for c in 0..8 {
                for (i, j) in (0..4).flat_map(|i| (0..4).map(move |j| (i, j))) {
                    let pooled = (0..4)
                        .map(|t| {
                            let (a, b) = (2 * i + t / 2, 2 * j + t % 2);
                            let v = conv.data()[((n * 8 + c) * 8 + a) * 8 + b] + p[1].data()[c];
                            v.max(0.0)
                        })
                        .fold(f64::NEG_INFINITY, f64::max);
                    z += p[2].data()[class * 128 + c * 16 + i * 4 + j] * pooled;
                }
            }
            let got = y.data()[n * 10 + class];
            assert!(
                (got - z).abs() < 1e-12,
                "sample {n} class {class}: {got} vs {z}"
            );
        }
    }
}

/// `x W^T` for `x: [T, d_in]` and `w: [d_out, d_in]`, by loops.
fn project(x: &[Vec<f64>], w: &Tensor<f64>) -> Vec<Vec<f64>> {
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    x.iter()
        .map(|row| {
            (0..out)
                .map(|o| (0..inp).map(|i| w.data()[o * inp + i] * row[i]).sum())
                .collect()
        })
        .collect()
}

/// One head of causal attention by loops: `softmax_j<=i(q_i . k_j / sqrt(dh)) v_j`.
fn causal_head(q: &[Vec<f64>], k: &[Vec<f64>], v: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let scale = 1.0 / (q[0].len() as f64).sqrt();
    (0..q.len())
        .map(|i| {
            let scores: Vec<f64> = (0..=i)
                .map(|j| scale * q[i].iter().zip(&k[j]).map(|(a, b)| a * b).sum::<f64>())
                .collect();
            let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let total: f64 = e.iter().sum();
            (0..v[0].len())
                .map(|f| (0..=i).map(|j| e[j] / total * v[j][f]).sum())
                .collect()
        })
        .collect()
}

/// The loaded transformer's logits, in both forms, equal embeddings, two residual causal
/// attention layers and the unembedding written out with loops; the fused form holds the
/// separate form's q, k, v as the rows of `in_proj_weight`.
#[test]
fn transformer_forward_is_the_plain_math_in_both_forms() {
    let (vocab, context, d) = (11, 6, 4);
    let dir = scratch("transformer_forward");
    let (arch, weights) = write_model(
        &dir,
        &transformer_toml(Form::Separate, vocab, context, d),
        4,
    );
    let separate = load_model(&arch, &weights).unwrap().cast::<f64>();
    let p: Vec<Tensor<f64>> = separate.params().into_iter().cloned().collect();
    let ids = token_ids(2, context, vocab, 5);
    let y = separate.evaluate_w0(&ids).unwrap();
    assert_eq!(y.shape(), [2, context, vocab]);
    for n in 0..2 {
        let mut h: Vec<Vec<f64>> = (0..context)
            .map(|t| {
                let id = ids.data()[n * context + t] as usize;
                (0..d)
                    .map(|f| p[0].data()[id * d + f] + p[1].data()[t * d + f])
                    .collect()
            })
            .collect();
        for layer in 0..2 {
            let w = &p[2 + 4 * layer..6 + 4 * layer];
            let (q, k, v) = (project(&h, &w[0]), project(&h, &w[1]), project(&h, &w[2]));
            let mixed = project(&causal_head(&q, &k, &v), &w[3]);
            for (row, m) in h.iter_mut().zip(&mixed) {
                row.iter_mut().zip(m).for_each(|(a, b)| *a += b);
            }
        }
        let logits = project(&h, &p[10]);
        for (t, row) in logits.iter().enumerate() {
            for (c, z) in row.iter().enumerate() {
                let got = y.data()[(n * context + t) * vocab + c];
                assert!((got - z).abs() < 1e-12, "sample {n} position {t} class {c}");
            }
        }
    }

    // The same weights in nn.MultiheadAttention's layout.
    let path = dir.join("fused.toml");
    std::fs::write(&path, transformer_toml(Form::Fused, vocab, context, d)).unwrap();
    let fused_arch = read_architecture(&path).unwrap();
    let mut fused_params = vec![p[0].clone(), p[1].clone()];
    for layer in 0..2 {
        let w = &p[2 + 4 * layer..6 + 4 * layer];
        fused_params.push(Tensor::concat(&[&w[0], &w[1], &w[2]], 0));
        fused_params.push(w[3].clone());
    }
    fused_params.push(p[10].clone());
    let fused = Sequential::new(fused_arch, fused_params).unwrap();
    let yf = fused.evaluate_w0(&ids).unwrap();
    assert!(yf.max_abs_diff(&y) < 1e-12);
}

// ---------------------------------------------------------------------------------------------
// Per-sample gradients of loaded models

/// `max |a - b| <= 1e-12 max(max |b|, 0.1)`: the batched and the looped paths do the same
/// arithmetic on differently shaped products, so they differ by rounding only.
fn assert_batched_equals_loop(model: &Sequential<f64>, x: &Tensor<f64>, seed: u64) {
    let y0 = model.evaluate_w0(x).unwrap();
    let reference = Tensor::<f64>::randn(y0.shape(), 1.0, &mut rng(seed));
    let params: Vec<Tensor<f64>> = model.params().into_iter().cloned().collect();
    let f = |tape: &mut Tape<f64>, p: &[Var], inputs: &[Var]| {
        let y = model.forward(tape, p, inputs[0])?;
        tape.try_kl_div(y, inputs[1])
    };
    let batched = per_sample_grads(&params, &[x, &reference], f).unwrap();
    let looped = per_sample_grads_loop(&params, &[x, &reference], f).unwrap();
    for ((g, l), name) in batched.into_iter().zip(&looped).zip(model.param_names()) {
        let g = g.into_dense();
        assert_eq!(g.shape(), l.shape(), "{name}");
        let scale = l.data().iter().fold(0.1f64, |m, v| m.max(v.abs()));
        let err = g.max_abs_diff(l) / scale;
        assert!(
            err < 1e-12,
            "{name}: batched vs loop, relative error {err:e}"
        );
    }
}

#[test]
fn per_sample_gradients_of_loaded_models_equal_single_sample_ones() {
    let dir = scratch("per_sample");
    let (arch, weights) = write_model(&dir, CNN_TOML, 6);
    let cnn = load_model(&arch, &weights).unwrap().cast::<f64>();
    let images = Tensor::<f64>::uniform(&[4, 1, 8, 8], 0.0, 1.0, &mut rng(7));
    assert_batched_equals_loop(&cnn, &images, 8);

    for (i, form) in [Form::Separate, Form::Fused].into_iter().enumerate() {
        let sub = dir.join(format!("{form:?}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (arch, weights) = write_model(&sub, &transformer_toml(form, 64, 32, 16), 9 + i as u64);
        let model = load_model(&arch, &weights).unwrap().cast::<f64>();
        assert_batched_equals_loop(&model, &token_ids(3, 32, 64, 10), 11);
    }

    let sub = dir.join("pre_norm");
    std::fs::create_dir_all(&sub).unwrap();
    let (arch, weights) = write_model(&sub, PRE_NORM_TOML, 12);
    let model = load_model(&arch, &weights).unwrap().cast::<f64>();
    assert_batched_equals_loop(&model, &token_ids(3, 5, 7, 13), 14);
}
