//! Convolutional networks and transformers through the program, as a user's model enters: the
//! tests write files in PyTorch's layout (safetensors under the `state_dict` names, `.npy`
//! inputs as `np.save` writes them: float32 images `[N, 1, 8, 8]`, int64 token ids `[N, 32]`,
//! and the architecture files of `examples/models/`), decompose them with `l3d decompose
//! --arch --weights --inputs` for a few epochs, on the default (fast) step and on the tape
//! step, and check what is written: every subnetwork tensor in the model's own shape, the
//! reports, no panic. Bad inputs are refused with messages naming the layer, file or tensor.
//!
//! The models are the two benchmark cases of WORKLOADS.md: `cnn` (the digits CNN) and
//! `attention` (the two-layer attention-only transformer), the latter in both attention forms.

use crate::program::{self, l3d, scratch};
use rand::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use tensor::{rng, Tensor};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models")
        .join(name)
}

/// Asserts a successful run and returns its stdout.
fn assert_succeeds(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a refused run: exit code 1, stderr naming every `needle`, no panic.
fn assert_refused(out: &Output, needles: &[&str]) {
    program::assert_fails(out, 1, needles);
}

/// `U(-bound, bound)`, PyTorch's default initialisation of linear and conv layers with
/// `bound = 1 / sqrt(fan_in)`, and of `in_proj_weight` (Xavier-uniform) with
/// `bound = sqrt(6 / (fan_in + fan_out))`.
fn uniform(shape: &[usize], bound: f64, r: &mut impl Rng) -> Tensor<f32> {
    Tensor::uniform(shape, -bound, bound, r)
}

fn write_weights(path: &Path, tensors: &[(String, Tensor<f32>)]) {
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    nets::io::write_safetensors(
        path,
        tensors.iter().map(|(n, t)| (n.as_str(), t)),
        &metadata,
    )
    .unwrap();
}

/// An `.npy` of int64, as `np.save(path, ids.astype(np.int64))` writes it.
fn write_int64_npy(path: &Path, ids: &[i64], shape: [usize; 2]) {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape[0], shape[1]
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(ids.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// The digits CNN of `examples/models/cnn.toml` at PyTorch's default initialisation, and 64
/// images in `[0, 1]`.
fn cnn_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut r = rng(21);
    let (conv, fc) = (1.0 / 9f64.sqrt(), 1.0 / 128f64.sqrt());
    let tensors = vec![
        ("0.weight".to_string(), uniform(&[8, 1, 3, 3], conv, &mut r)),
        ("0.bias".to_string(), uniform(&[8], conv, &mut r)),
        ("4.weight".to_string(), uniform(&[10, 128], fc, &mut r)),
        ("4.bias".to_string(), uniform(&[10], fc, &mut r)),
    ];
    let weights = dir.join("cnn.safetensors");
    write_weights(&weights, &tensors);
    let images = dir.join("images.npy");
    nets::io::write_npy(
        &images,
        &Tensor::<f32>::uniform(&[64, 1, 8, 8], 0.0, 1.0, &mut r),
    )
    .unwrap();
    (example("cnn.toml"), weights, images)
}

/// The two attention forms of the transformer.
#[derive(Debug, Clone, Copy)]
enum Form {
    Separate,
    Fused,
}

impl Form {
    fn arch(self) -> PathBuf {
        match self {
            Form::Separate => example("transformer.toml"),
            Form::Fused => example("transformer_mha.toml"),
        }
    }

    /// The attention tensors of layer `i` with their shapes.
    fn attention(self, i: usize) -> Vec<(String, Vec<usize>)> {
        let name = |p: &str| format!("blocks.{i}.attn.{p}");
        match self {
            Form::Separate => ["q", "k", "v", "o"]
                .map(|p| (name(&format!("{p}.weight")), vec![16, 16]))
                .to_vec(),
            Form::Fused => vec![
                (name("in_proj_weight"), vec![48, 16]),
                (name("out_proj.weight"), vec![16, 16]),
            ],
        }
    }

    /// Every tensor of the model with its shape, in forward order.
    fn tensors(self) -> Vec<(String, Vec<usize>)> {
        let mut all = vec![
            ("tok_emb.weight".to_string(), vec![64, 16]),
            ("pos_emb.weight".to_string(), vec![32, 16]),
        ];
        all.extend(self.attention(0));
        all.extend(self.attention(1));
        all.push(("unembed.weight".to_string(), vec![64, 16]));
        all
    }
}

/// The attention transformer in `form` at PyTorch's default initialisation (embeddings
/// `N(0, 1)`), and 48 random sequences of 32 token ids in `0..64`.
fn transformer_files(dir: &Path, form: Form) -> (PathBuf, PathBuf, PathBuf) {
    let mut r = rng(22);
    let tensors: Vec<(String, Tensor<f32>)> = form
        .tensors()
        .into_iter()
        .map(|(name, shape)| {
            let t = match (name.as_str(), &shape[..]) {
                (n, _) if n.contains("emb") => Tensor::randn(&shape, 1.0, &mut r),
                (n, &[rows, cols]) if n.contains("in_proj") => {
                    uniform(&shape, (6.0 / (rows + cols) as f64).sqrt(), &mut r)
                }
                (_, &[_, fan_in]) => uniform(&shape, 1.0 / (fan_in as f64).sqrt(), &mut r),
                _ => unreachable!("every tensor is a matrix"),
            };
            (name, t)
        })
        .collect();
    let weights = dir.join("transformer.safetensors");
    write_weights(&weights, &tensors);
    let ids: Vec<i64> = (0..48 * 32).map(|_| r.gen_range(0..64)).collect();
    let tokens = dir.join("tokens.npy");
    write_int64_npy(&tokens, &ids, [48, 32]);
    (form.arch(), weights, tokens)
}

/// Decomposes through the program at small settings; `extra` flags are added.
fn decompose(files: &(PathBuf, PathBuf, PathBuf), out: &Path, extra: &[&str]) -> Output {
    let (arch, weights, inputs) = files;
    let mut args = vec![
        "--quiet",
        "decompose",
        "--arch",
        arch.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--n-v",
        "4",
        "--rank",
        "2",
        "--epochs",
        "3",
        "--batch",
        "16",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    l3d(&args)
}

/// Runs the config `out/config.json` again on the tape step, into `again`.
fn rerun_on_the_tape(out: &Path, again: &Path) -> Output {
    let config = out.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    json["l3d"]["path"] = serde_json::json!("tape");
    let tape_config = out.join("tape.json");
    std::fs::write(&tape_config, serde_json::to_vec(&json).unwrap()).unwrap();
    l3d(&[
        "--quiet",
        "decompose",
        "--config",
        tape_config.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ])
}

/// The run in `out` wrote its reports, and every subnetwork (decoder and encoder) of each of
/// `tensors` in the model's own shape, and nothing for the frozen ones.
fn assert_outputs(out: &Path, tensors: &[(String, Vec<usize>)], frozen: &[&str]) {
    for file in [
        "config.json",
        "report.json",
        "report.html",
        "decomposition.json",
    ] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(report["reconstruction_error"].as_f64().unwrap().is_finite());
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(report["tensor_names"], serde_json::json!(names));
    let saved = nets::io::read_safetensors::<f32>(&out.join("subnetworks.safetensors")).unwrap();
    for k in 0..4 {
        for (name, shape) in tensors {
            for part in ["subnetwork", "encoder"] {
                let key = format!("{part}.{k}.{name}");
                let t = saved
                    .tensors
                    .get(&key)
                    .unwrap_or_else(|| panic!("no {key}"));
                assert_eq!(t.shape(), &shape[..], "{key}");
            }
        }
        for name in frozen {
            let key = format!("subnetwork.{k}.{name}");
            assert!(!saved.tensors.contains_key(&key), "{key} was decomposed");
        }
    }
}

#[test]
fn the_digits_cnn_decomposes_through_the_program() {
    let dir = scratch("real-cnn");
    let files = cnn_files(&dir);
    // Every tensor, the kernel as a 4-way CP tensor, on the default step.
    let out = dir.join("all");
    let stdout = assert_succeeds(&decompose(&files, &out, &["--decompose", "all"]));
    assert!(stdout.contains("reconstruction error"), "{stdout}");
    let all = [
        ("0.weight", vec![8, 1, 3, 3]),
        ("0.bias", vec![8]),
        ("4.weight", vec![10, 128]),
        ("4.bias", vec![10]),
    ]
    .map(|(n, s)| (n.to_string(), s));
    assert_outputs(&out, &all, &[]);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["l3d"]["divergence"], "kl", "logits default to KL");

    // The same run on the tape step.
    let tape = dir.join("tape");
    assert_succeeds(&rerun_on_the_tape(&out, &tape));
    assert_outputs(&tape, &all, &[]);

    // The default set for users' models: the kernel, not the read-out or the biases.
    let out = dir.join("default");
    assert_succeeds(&decompose(&files, &out, &[]));
    assert_outputs(&out, &all[..1], &["0.bias", "4.weight", "4.bias"]);
}

#[test]
fn the_attention_transformer_decomposes_in_both_forms() {
    for (form, positions) in [(Form::Separate, "all"), (Form::Fused, "last")] {
        let dir = scratch(&format!("real-{form:?}"));
        let files = transformer_files(&dir, form);
        // Every weight, KL summed over the chosen positions, on the default step.
        let out = dir.join("weights");
        let flags = ["--decompose", "weights", "--positions", positions];
        assert_succeeds(&decompose(&files, &out, &flags));
        assert_outputs(&out, &form.tensors(), &[]);
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["l3d"]["positions"], positions, "{form:?}");

        let tape = dir.join("tape");
        assert_succeeds(&rerun_on_the_tape(&out, &tape));
        assert_outputs(&tape, &form.tensors(), &[]);

        // The default set: the attention weights; embeddings and unembedding stay frozen.
        let out = dir.join("default");
        assert_succeeds(&decompose(&files, &out, &[]));
        let mut attention = form.attention(0);
        attention.extend(form.attention(1));
        let frozen = ["tok_emb.weight", "pos_emb.weight", "unembed.weight"];
        assert_outputs(&out, &attention, &frozen);
    }
}

#[test]
fn bad_real_model_inputs_are_refused_naming_the_layer_file_or_tensor() {
    let dir = scratch("real-bad");
    let out = dir.join("out");
    let cnn = cnn_files(&dir);

    // Images laid out as rows.
    let rows = dir.join("rows.npy");
    nets::io::write_npy(&rows, &Tensor::<f32>::zeros(&[64, 64])).unwrap();
    let files = (cnn.0.clone(), cnn.1.clone(), rows);
    assert_refused(
        &decompose(&files, &out, &[]),
        &["rows.npy", "[64, 64]", "[N, 1, 8, 8]"],
    );

    // A kernel of the wrong size in the weights file.
    let weights = dir.join("wrong.safetensors");
    let mut r = rng(1);
    let tensors = vec![
        ("0.weight".to_string(), uniform(&[8, 1, 5, 5], 0.2, &mut r)),
        ("0.bias".to_string(), uniform(&[8], 0.2, &mut r)),
        ("4.weight".to_string(), uniform(&[10, 128], 0.1, &mut r)),
        ("4.bias".to_string(), uniform(&[10], 0.1, &mut r)),
    ];
    write_weights(&weights, &tensors);
    let files = (cnn.0.clone(), weights, cnn.2.clone());
    assert_refused(
        &decompose(&files, &out, &[]),
        &[
            "wrong.safetensors",
            "'0.weight' has shape [8, 1, 5, 5]",
            "[8, 1, 3, 3]",
        ],
    );

    // A kernel larger than the padded input.
    let text = std::fs::read_to_string(&cnn.0).unwrap();
    let arch = dir.join("big_kernel.toml");
    std::fs::write(&arch, text.replace("kernel_size = 3", "kernel_size = 11")).unwrap();
    let files = (arch, cnn.1.clone(), cnn.2.clone());
    assert_refused(
        &decompose(&files, &out, &[]),
        &[
            "big_kernel.toml",
            "conv2d layer '0'",
            "more than the padded input 10x10",
        ],
    );

    // A token id out of range, and a position the sequences do not have.
    let t = transformer_files(&dir, Form::Separate);
    let mut ids: Vec<i64> = vec![3; 48 * 32];
    ids[5 * 32 + 9] = 64;
    let bad_ids = dir.join("bad_ids.npy");
    write_int64_npy(&bad_ids, &ids, [48, 32]);
    let files = (t.0.clone(), t.1.clone(), bad_ids);
    assert_refused(
        &decompose(&files, &out, &[]),
        &[
            "bad_ids.npy",
            "token id 64 at row 5, position 9",
            "'tok_emb'",
        ],
    );
    assert_refused(
        &decompose(&t, &out, &["--positions", "3,40"]),
        &["positions [3, 40]", "0..32"],
    );
    assert_refused(
        &decompose(&cnn, &out, &["--positions", "last"]),
        &["needs a sequence model"],
    );
}
