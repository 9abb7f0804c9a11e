//! Loading and saving users' models and data: round trips, files in PyTorch's layout, and bad
//! input of every kind, each error naming the file and (where there is one) the tensor.
//!
//! Weights files "as PyTorch writes them" are made with `safetensors::serialize`, the writer
//! behind `safetensors.torch.save_file`, so they come from a writer independent of ours.
//!
//! One file of about a thousand lines: every reader's cases share the helpers at the top
//! (scratch folders, files written as PyTorch and NumPy write them, the check that an error
//! names its file), and a case is a few lines; `io_fuzz.rs` holds the generated ones.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use nets::io::{
    check_inputs, load_inputs, load_model, npy_from_bytes, read_architecture, read_bytes, read_npy,
    read_safetensors, safetensors_from_bytes, save_model, write_atomic, write_npy, write_npy_i64,
    write_safetensors, IoError, Mismatch,
};
use nets::Model;
use nets::{ParamSlot, Sequential};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use tensor::Tensor;

const MLP_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/models/mlp.toml");

/// A fresh, empty directory for one test.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("io").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The error of `result`, whose message must contain every one of `needles`.
#[track_caller]
fn err_naming<T: Debug>(result: Result<T, IoError>, needles: &[&str]) -> IoError {
    let err = result.expect_err("expected an error");
    let msg = err.to_string();
    for needle in needles {
        assert!(
            msg.contains(needle),
            "{needle:?} is not in the message: {msg}"
        );
    }
    err
}

fn le_bytes_f32(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Distinct small values, exact in f16, bf16, f32 and f64: `(i mod 17 - 8) / 8`.
fn exact_values(n: usize, offset: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i + offset) % 17) as f32 / 8.0 - 1.0)
        .collect()
}

/// One tensor of a safetensors file built with the reference writer.
struct Raw {
    name: &'static str,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Raw {
    fn f32(name: &'static str, shape: &[usize], values: &[f32]) -> Self {
        Self::new(name, Dtype::F32, shape, le_bytes_f32(values))
    }

    fn new(name: &'static str, dtype: Dtype, shape: &[usize], bytes: Vec<u8>) -> Self {
        let shape = shape.to_vec();
        Self {
            name,
            dtype,
            shape,
            bytes,
        }
    }
}

/// A safetensors file as `safetensors.torch.save_file` writes it (metadata `format: pt`).
fn reference_file(tensors: &[Raw]) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .map(|t| {
            let view = TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap();
            (t.name, view)
        })
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, &Some(metadata)).unwrap()
}

/// The weights of `examples/models/mlp.toml` in PyTorch's `nn.Sequential` layout.
fn mlp_tensors() -> Vec<Raw> {
    vec![
        Raw::f32("0.weight", &[16, 8], &exact_values(128, 0)),
        Raw::f32("0.bias", &[16], &exact_values(16, 1)),
        Raw::f32("2.weight", &[4, 16], &exact_values(64, 2)),
        Raw::f32("2.bias", &[4], &exact_values(4, 3)),
    ]
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// A header-only safetensors file: `header` verbatim after its length, then `data_len` bytes.
fn with_header(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; data_len]);
    bytes
}

/// A version 1 `.npy` file with the given header dict, padded as NumPy pads it, and `data`.
fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    npy_version(1, dict, data)
}

/// An `.npy` file of format `version` (1, or 2 with a u32 header length).
fn npy_version(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let padded = (prefix + dict.len() + 1).next_multiple_of(64) - prefix;
    let mut header = dict.to_string();
    header.push_str(&" ".repeat(padded - dict.len() - 1));
    header.push('\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version, 0]);
    match version {
        1 => bytes.extend((header.len() as u16).to_le_bytes()),
        _ => bytes.extend((header.len() as u32).to_le_bytes()),
    }
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

// ---------------------------------------------------------------------------------------------
// Architecture files

#[test]
fn mlp_example_has_the_slots_of_a_pytorch_sequential() {
    let arch = read_architecture(Path::new(MLP_TOML)).unwrap();
    let (slots, width) = arch.slots().unwrap();
    let expected = [
        ("0.weight", vec![16, 8]),
        ("0.bias", vec![16]),
        ("2.weight", vec![4, 16]),
        ("2.bias", vec![4]),
    ];
    let expected: Vec<ParamSlot> = expected
        .into_iter()
        .map(|(name, shape)| ParamSlot {
            name: name.to_string(),
            shape,
        })
        .collect();
    assert_eq!(slots, expected);
    assert_eq!((arch.input_dim, width), (8, vec![4]));
}

/// The ```toml blocks of the module docs are valid architecture files.
#[test]
fn toml_examples_in_the_module_docs_parse() {
    let docs = include_str!("../../src/io/mod.rs");
    let dir = scratch("docs");
    let mut blocks = 0;
    for (i, block) in docs.split("//! ```toml\n").skip(1).enumerate() {
        let end = block.find("//! ```").unwrap();
        let text: String = block[..end]
            .lines()
            .map(|line| line.trim_start_matches("//!").trim_start_matches(' '))
            .map(|line| format!("{line}\n"))
            .collect();
        let path = dir.join(format!("block{i}.toml"));
        write_file(&path, text.as_bytes());
        let arch = read_architecture(&path).unwrap();
        let names: Vec<String> = arch
            .slots()
            .unwrap()
            .0
            .into_iter()
            .map(|s| s.name)
            .collect();
        let expected = ["blocks.1.fc.weight", "0.weight", "h.1.attn.in_proj_weight"][i];
        assert!(names.contains(&expected.to_string()), "{names:?}");
        blocks += 1;
    }
    assert_eq!(blocks, 3);
}

#[test]
fn unknown_activation_is_an_error_naming_file_and_line() {
    let dir = scratch("unknown_activation");
    let text = std::fs::read_to_string(MLP_TOML)
        .unwrap()
        .replace("\"relu\"", "\"relu6\"");
    let toml = dir.join("bad.toml");
    write_file(&toml, text.as_bytes());
    let line = 1 + text.lines().position(|l| l.contains("relu6")).unwrap();
    let on_line = format!("`relu6` is on line {line}");
    err_naming(read_architecture(&toml), &["bad.toml", "relu6", &on_line]);

    let json = dir.join("bad.json");
    let layers = r#"[{"type": "activation", "function": "swish"}]"#;
    let text = format!("{{\"input_dim\": 2, \"output\": \"logits\",\n\"layers\": {layers}}}");
    write_file(&json, text.as_bytes());
    err_naming(read_architecture(&json), &["bad.json", "swish", "line 2"]);
}

#[test]
fn misspelt_key_is_an_error() {
    let dir = scratch("misspelt_key");
    let text = std::fs::read_to_string(MLP_TOML)
        .unwrap()
        .replace("out_features = 4", "out_feature = 4");
    let path = dir.join("typo.toml");
    write_file(&path, text.as_bytes());
    let line = 1 + text
        .lines()
        .position(|l| l.contains("out_feature ="))
        .unwrap();
    let on_line = format!("`out_feature` is on line {line}");
    err_naming(read_architecture(&path), &["typo.toml", &on_line]);
}

#[test]
fn architectures_that_cannot_exist_are_errors() {
    let dir = scratch("bad_architectures");
    let linear = |name: &str, i: usize, o: usize| {
        format!("[[layers]]\ntype = \"linear\"\nname = \"{name}\"\nin_features = {i}\nout_features = {o}\n")
    };
    let head = "input_dim = 8\noutput = \"regression\"\n";
    let cases = [
        (
            format!("{head}{}{}", linear("0", 8, 16), linear("2", 15, 4)),
            "'2' takes 15 inputs but receives 16",
        ),
        (format!("{head}{}", linear("0", 8, 0)), "out_features = 0"),
        (
            format!(
                "input_dim = 0\noutput = \"regression\"\n{}",
                linear("0", 0, 3)
            ),
            "input_dim is 0",
        ),
        (
            format!("{head}{}{}", linear("0", 8, 8), linear("0", 8, 8)),
            "two parameters are named '0.weight'",
        ),
        (
            format!("{head}[[layers]]\ntype = \"layer_norm\"\nname = \"n\"\ndim = 8\neps = -1.0\n"),
            "eps = -1",
        ),
        (
            format!(
                "{head}[[layers]]\ntype = \"residual\"\n[[layers.block]]\n{}",
                &linear("r", 8, 4)[11..]
            ),
            "residual block maps shape [8] to [4]",
        ),
        ("input_dim = 8\n".to_string(), "missing field"),
        (format!("{head}[[layers]]\ntype = \"conv3d\"\n"), "conv3d"),
        (format!("{head}{}", linear("0", 8, usize::MAX)), "too large"),
    ];
    for (i, (text, reason)) in cases.iter().enumerate() {
        let path = dir.join(format!("case{i}.toml"));
        write_file(&path, text.as_bytes());
        err_naming(
            read_architecture(&path),
            &[&format!("case{i}.toml"), reason],
        );
    }
    let path = dir.join("model.yaml");
    write_file(&path, b"input_dim: 8");
    err_naming(read_architecture(&path), &["model.yaml", ".toml or .json"]);
}

// ---------------------------------------------------------------------------------------------
// Models

#[test]
fn loads_a_pytorch_sequential_state_dict() {
    let dir = scratch("pytorch_sequential");
    let weights = dir.join("mlp.safetensors");
    write_file(&weights, &reference_file(&mlp_tensors()));
    let model = load_model(Path::new(MLP_TOML), &weights).unwrap();
    assert_eq!(
        model.param_names(),
        ["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    for (param, raw) in model.params().into_iter().zip(mlp_tensors()) {
        assert_eq!(param.shape(), raw.shape.as_slice());
        assert_eq!(le_bytes_f32(param.data()), raw.bytes, "{}", raw.name);
    }
    // f(x) = W2 relu(W0 x + b0) + b2 on one row, against a plain loop.
    let x: Vec<f32> = exact_values(8, 5);
    let p: Vec<&[f32]> = model.params().into_iter().map(|t| t.data()).collect();
    let hidden: Vec<f32> = (0..16)
        .map(|j| (0..8).map(|k| p[0][j * 8 + k] * x[k]).sum::<f32>() + p[1][j])
        .map(|h| h.max(0.0))
        .collect();
    let expected: Vec<f32> = (0..4)
        .map(|j| (0..16).map(|k| p[2][j * 16 + k] * hidden[k]).sum::<f32>() + p[3][j])
        .collect();
    let y = model.evaluate_w0(&Tensor::from_vec(&[1, 8], x)).unwrap();
    for (a, b) in y.data().iter().zip(&expected) {
        assert!((a - b).abs() < 1e-5, "{:?} vs {expected:?}", y.data());
    }
}

/// A module with named submodules: `embed`, `blocks.1.fc` inside a residual block, `norm`
/// and a bias-free `head`; its tensors in four dtypes, converted on load.
#[test]
fn loads_named_submodules_with_a_residual_block_in_mixed_dtypes() {
    let dir = scratch("submodules");
    let arch = dir.join("net.toml");
    let text = r#"
input_dim = 4
output = "logits"
[[layers]]
type = "linear"
name = "embed"
in_features = 4
out_features = 6
[[layers]]
type = "residual"
[[layers.block]]
type = "linear"
name = "blocks.1.fc"
in_features = 6
out_features = 6
[[layers.block]]
type = "activation"
function = "gelu"
[[layers]]
type = "layer_norm"
name = "norm"
dim = 6
[[layers]]
type = "linear"
name = "head"
in_features = 6
out_features = 3
bias = false
"#;
    write_file(&arch, text.as_bytes());
    let f16 = |v: f32| f16_bits(v);
    let bf16 = |v: f32| (v.to_bits() >> 16) as u16; // exact for these values
    let halves = |values: Vec<f32>, to: &dyn Fn(f32) -> u16| -> Vec<u8> {
        values
            .into_iter()
            .flat_map(|v| to(v).to_le_bytes())
            .collect()
    };
    let f64s = |values: Vec<f32>| -> Vec<u8> {
        values
            .into_iter()
            .flat_map(|v| f64::from(v).to_le_bytes())
            .collect()
    };
    let tensors = vec![
        Raw::new(
            "embed.weight",
            Dtype::F16,
            &[6, 4],
            halves(exact_values(24, 0), &f16),
        ),
        Raw::new(
            "embed.bias",
            Dtype::BF16,
            &[6],
            halves(exact_values(6, 1), &bf16),
        ),
        Raw::new(
            "blocks.1.fc.weight",
            Dtype::F64,
            &[6, 6],
            f64s(exact_values(36, 2)),
        ),
        Raw::f32("blocks.1.fc.bias", &[6], &exact_values(6, 3)),
        Raw::new(
            "norm.weight",
            Dtype::BF16,
            &[6],
            halves(exact_values(6, 4), &bf16),
        ),
        Raw::new(
            "norm.bias",
            Dtype::F16,
            &[6],
            halves(exact_values(6, 5), &f16),
        ),
        Raw::f32("head.weight", &[3, 6], &exact_values(18, 6)),
    ];
    let weights = dir.join("net.safetensors");
    write_file(&weights, &reference_file(&tensors));
    let model = load_model(&arch, &weights).unwrap();
    let expected = [
        ("embed.weight", exact_values(24, 0)),
        ("embed.bias", exact_values(6, 1)),
        ("blocks.1.fc.weight", exact_values(36, 2)),
        ("blocks.1.fc.bias", exact_values(6, 3)),
        ("norm.weight", exact_values(6, 4)),
        ("norm.bias", exact_values(6, 5)),
        ("head.weight", exact_values(18, 6)),
    ];
    let names = model.param_names();
    for ((name, values), (got_name, got)) in expected.iter().zip(names.iter().zip(model.params())) {
        assert_eq!(name, got_name);
        assert_eq!(got.data(), values.as_slice(), "{name}");
    }
    assert_eq!((model.input_dim(), model.output_dim()), (4, 3));
}

/// The binary16 bits of `v`, for values that are normal binary16 numbers with at most 10
/// significant bits after the leading one (the test values `k / 8`), or zero: the sign, the
/// exponent rebiased from 127 to 15, the top 10 bits of the mantissa.
fn f16_bits(v: f32) -> u16 {
    if v == 0.0 {
        return 0;
    }
    let bits = v.to_bits();
    let sign = ((bits >> 31) as u16) << 15;
    let exponent = (((bits >> 23) & 0xff) + 15 - 127) as u16;
    let mantissa = ((bits & 0x7f_ffff) >> 13) as u16;
    sign | (exponent << 10) | mantissa
}

#[test]
fn f16_and_bf16_tensors_convert_exactly() {
    // f16: 1, -2, 65504 (max), 2^-24 (min subnormal); bf16: 1, -2, 2^-126, 3.3895314e38.
    let f16 = [0x3c00u16, 0xc000, 0x7bff, 0x0001];
    let bf16 = [0x3f80u16, 0xc000, 0x0080, 0x7f7f];
    let bytes = |bits: &[u16]| bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let file = reference_file(&[
        Raw::new("h", Dtype::F16, &[2, 2], bytes(&f16)),
        Raw::new("b", Dtype::BF16, &[4], bytes(&bf16)),
    ]);
    let read = safetensors_from_bytes::<f32>(Path::new("halves.safetensors"), &file).unwrap();
    let two_pow = |e: i32| 2f32.powi(e);
    assert_eq!(read.tensors["h"].data(), [1.0, -2.0, 65504.0, two_pow(-24)]);
    assert_eq!(read.tensors["h"].shape(), [2, 2]);
    let max_bf16 = f32::from_bits(0x7f7f_0000);
    assert_eq!(
        read.tensors["b"].data(),
        [1.0, -2.0, two_pow(-126), max_bf16]
    );
    assert_eq!(read.metadata["format"], "pt");
}

#[test]
fn save_then_load_gives_the_same_model_in_toml_and_json() {
    let dir = scratch("model_round_trip");
    let weights = dir.join("mlp.safetensors");
    write_file(&weights, &reference_file(&mlp_tensors()));
    let model = load_model(Path::new(MLP_TOML), &weights).unwrap();
    for ext in ["toml", "json"] {
        let (arch_out, weights_out) = (
            dir.join(format!("out.{ext}")),
            dir.join(format!("out_{ext}.safetensors")),
        );
        save_model(&model, &arch_out, &weights_out).unwrap();
        let again = load_model(&arch_out, &weights_out).unwrap();
        assert_eq!(again.architecture(), model.architecture(), "{ext}");
        assert_eq!(again.params(), model.params(), "{ext}");
        assert_eq!(again.param_names(), model.param_names(), "{ext}");
    }
    // The f64 form of the same model round-trips too, through F64 tensors.
    let wide: Sequential<f64> = model.cast();
    let (arch_out, weights_out) = (dir.join("wide.toml"), dir.join("wide.safetensors"));
    save_model(&wide, &arch_out, &weights_out).unwrap();
    let file = read_safetensors::<f64>(&weights_out).unwrap();
    assert_eq!(&file.tensors["2.bias"], wide.params()[3]);
}

#[test]
fn mismatches_are_all_reported_at_once() {
    let dir = scratch("mismatches");
    let mut tensors = mlp_tensors();
    tensors.retain(|t| t.name != "2.bias"); // missing
    tensors[0] = Raw::f32("0.weight", &[8, 16], &exact_values(128, 0)); // transposed
    tensors[2] = Raw::new("2.weight", Dtype::I64, &[4, 16], vec![0; 512]); // integer
    tensors.push(Raw::f32("3.weight", &[2, 4], &exact_values(8, 0))); // extra
    let weights = dir.join("wrong.safetensors");
    write_file(&weights, &reference_file(&tensors));
    let err = err_naming(
        load_model(Path::new(MLP_TOML), &weights),
        &["wrong.safetensors", "mlp.toml", "4 problems"],
    );
    let IoError::Mismatch { problems, .. } = &err else {
        panic!("not a mismatch: {err}")
    };
    let expected = [
        Mismatch::Shape {
            tensor: "0.weight".into(),
            expected: vec![16, 8],
            found: vec![8, 16],
        },
        Mismatch::Dtype {
            tensor: "2.weight".into(),
            found: "I64".into(),
            expected: "F32, F64, F16, BF16",
        },
        Mismatch::Missing {
            tensor: "2.bias".into(),
            expected: vec![4],
        },
        Mismatch::Unexpected {
            tensor: "3.weight".into(),
            found: vec![2, 4],
        },
    ];
    assert_eq!(problems.as_slice(), expected);
    // Each problem is on its own line, naming the weights file and the tensor.
    let msg = err.to_string();
    for name in ["0.weight", "2.weight", "2.bias", "3.weight"] {
        let line = msg
            .lines()
            .find(|l| l.contains(&format!("'{name}'")))
            .unwrap();
        assert!(line.contains("wrong.safetensors"), "{line}");
    }
}

#[test]
fn non_finite_weights_name_the_tensor_and_index() {
    let dir = scratch("nan_weight");
    for (bad, shown) in [(f32::NAN, "NaN"), (f32::NEG_INFINITY, "-inf")] {
        let mut tensors = mlp_tensors();
        let mut values = exact_values(64, 2);
        values[16 + 3] = bad; // row 1, column 3 of [4, 16]
        tensors[2] = Raw::f32("2.weight", &[4, 16], &values);
        let weights = dir.join("nan.safetensors");
        write_file(&weights, &reference_file(&tensors));
        let err = err_naming(
            load_model(Path::new(MLP_TOML), &weights),
            &["nan.safetensors", "'2.weight'", "[1, 3]", shown],
        );
        assert!(matches!(err, IoError::NonFiniteWeight { .. }), "{err}");
    }
}

#[test]
fn f64_weights_beyond_the_f32_range_are_rejected_as_infinite() {
    let dir = scratch("f64_overflow");
    let mut tensors = mlp_tensors();
    let bytes = [1e300f64, 0.0, 0.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    tensors[3] = Raw::new("2.bias", Dtype::F64, &[4], bytes);
    let weights = dir.join("big.safetensors");
    write_file(&weights, &reference_file(&tensors));
    err_naming(
        load_model(Path::new(MLP_TOML), &weights),
        &["big.safetensors", "'2.bias'", "[0]", "inf"],
    );
}

// ---------------------------------------------------------------------------------------------
// Safetensors files

#[test]
fn safetensors_round_trip_is_exact_and_deterministic() {
    let dir = scratch("safetensors_round_trip");
    let a = Tensor::<f32>::from_vec(
        &[2, 3],
        vec![1.5, -0.0, f32::MIN_POSITIVE, 3e38, -7.25, 0.1],
    );
    let b = Tensor::<f32>::scalar(42.0);
    let c = Tensor::<f32>::zeros(&[0, 5]);
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("seed".to_string(), "7".to_string()),
        ("note".to_string(), "ünïcode \"quoted\"".to_string()),
    ]);
    let tensors = [("layer.a", &a), ("b", &b), ("c", &c)];
    let path = dir.join("t.safetensors");
    write_safetensors(&path, tensors, &metadata).unwrap();
    let first = std::fs::read(&path).unwrap();
    write_safetensors(&path, tensors, &metadata).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        first,
        "the same tensors give the same bytes"
    );
    // The reference reader accepts it.
    let reference = safetensors::SafeTensors::deserialize(&first).unwrap();
    assert_eq!(reference.tensor("layer.a").unwrap().dtype(), Dtype::F32);
    let read = read_safetensors::<f32>(&path).unwrap();
    assert_eq!(read.metadata, metadata);
    assert_eq!(read.tensors.len(), 3);
    assert_eq!(read.tensors["layer.a"], a);
    assert_eq!(read.tensors["b"], b);
    assert_eq!(read.tensors["c"], c);

    let d = Tensor::<f64>::from_vec(&[3], vec![1e-300, std::f64::consts::PI, -1e300]);
    let path = dir.join("f64.safetensors");
    write_safetensors(&path, [("d", &d)], &BTreeMap::new()).unwrap();
    let read = read_safetensors::<f64>(&path).unwrap();
    assert_eq!(read.tensors["d"], d);
    assert!(read.metadata.is_empty());
}

#[test]
fn writing_a_repeated_or_reserved_name_is_an_error() {
    let dir = scratch("unwritable");
    let t = Tensor::<f32>::ones(&[2]);
    let path = dir.join("w.safetensors");
    let none = BTreeMap::new();
    err_naming(
        write_safetensors(&path, [("x", &t), ("x", &t)], &none),
        &["w.safetensors", "'x'", "twice"],
    );
    err_naming(
        write_safetensors(&path, [("__metadata__", &t)], &none),
        &["w.safetensors", "'__metadata__'"],
    );
    assert!(!path.exists());
}

#[test]
fn other_dtypes_are_an_error_naming_tensor_and_dtype() {
    let file = reference_file(&[
        Raw::f32("ok", &[1], &[1.0]),
        Raw::new("ids", Dtype::I32, &[2], vec![0; 8]),
    ]);
    let path = Path::new("ints.safetensors");
    err_naming(
        safetensors_from_bytes::<f32>(path, &file),
        &["ints.safetensors", "'ids'", "I32", "F32"],
    );
}

#[test]
fn truncation_at_every_cut_point_is_an_error() {
    let file = reference_file(&mlp_tensors());
    let header_end = 8 + u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let path = Path::new("cut.safetensors");
    for cut in 0..file.len() {
        let err = err_naming(
            safetensors_from_bytes::<f32>(path, &file[..cut]),
            &["cut.safetensors"],
        );
        if cut >= header_end {
            // The data section is short: the error names the tensor that runs past its end.
            let msg = err.to_string();
            let named = ["0.weight", "0.bias", "2.weight", "2.bias"]
                .iter()
                .any(|n| msg.contains(&format!("'{n}'")));
            assert!(named && msg.contains("truncated"), "cut {cut}: {msg}");
        }
    }
    // The same through a file and the model loader.
    let dir = scratch("truncated");
    let weights = dir.join("short.safetensors");
    write_file(&weights, &file[..file.len() - 1]);
    err_naming(
        load_model(Path::new(MLP_TOML), &weights),
        &["short.safetensors", "'2.weight'", "truncated"],
    );
}

#[test]
fn header_length_prefix_beyond_the_file_is_an_error() {
    let file = reference_file(&mlp_tensors());
    let path = Path::new("prefix.safetensors");
    for claimed in [file.len() as u64 - 7, u64::MAX, 1 << 40, 100_000_001] {
        let mut bytes = file.clone();
        bytes[..8].copy_from_slice(&claimed.to_le_bytes());
        let err = err_naming(
            safetensors_from_bytes::<f32>(path, &bytes),
            &["prefix.safetensors", &claimed.to_string()],
        );
        assert!(matches!(err, IoError::Truncated { .. }), "{err}");
    }
}

#[test]
fn headers_that_lie_about_offsets_are_errors_naming_the_tensor() {
    let entry = |name: &str, dtype: &str, shape: &str, start: u64, end: u64| {
        format!("\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{start},{end}]}}")
    };
    let max = u64::MAX;
    let cases = [
        // Out of range: the data section has 16 bytes.
        (
            format!(
                "{{{},{}}}",
                entry("a", "F32", "[2]", 0, 8),
                entry("b", "F32", "[4]", 8, 24)
            ),
            16,
            "b",
            "run past the end",
        ),
        // Overlapping.
        (
            format!(
                "{{{},{}}}",
                entry("a", "F32", "[2]", 0, 8),
                entry("b", "F32", "[2]", 4, 12)
            ),
            12,
            "b",
            "overlap the data of tensor 'a'",
        ),
        // A gap.
        (
            format!(
                "{{{},{}}}",
                entry("a", "F32", "[2]", 0, 8),
                entry("b", "F32", "[2]", 12, 20)
            ),
            20,
            "b",
            "unused",
        ),
        // Sizes not matching shape * dtype.
        (
            format!("{{{}}}", entry("w", "F32", "[2, 3]", 0, 20)),
            20,
            "w",
            "needs 24",
        ),
        (
            format!("{{{}}}", entry("w", "F64", "[3]", 0, 12)),
            12,
            "w",
            "needs 24",
        ),
        // Ends before it starts.
        (
            format!("{{{}}}", entry("w", "F32", "[0]", 8, 0)),
            8,
            "w",
            "end before",
        ),
        // Claims the whole address space (the reference parser overflows on this one).
        (
            format!("{{{}}}", entry("huge", "U8", &format!("[{max}]"), 0, max)),
            8,
            "huge",
            "run past the end",
        ),
        // A shape whose element count overflows.
        (
            format!(
                "{{{}}}",
                entry("w", "F32", &format!("[{max}, {max}]"), 0, 8)
            ),
            8,
            "w",
            "too many elements",
        ),
        (
            format!("{{{}}}", entry("w", "F32", &format!("[0, {max}, 4]"), 0, 0)),
            0,
            "w",
            "too many elements",
        ),
        // Dtypes the format does not have, or missing fields.
        (
            format!("{{{}}}", entry("q", "Q4", "[2]", 0, 1)),
            1,
            "q",
            "Q4",
        ),
        (
            "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}".to_string(),
            4,
            "w",
            "data_offsets",
        ),
    ];
    for (header, data_len, tensor, reason) in &cases {
        let bytes = with_header(header, *data_len);
        let result = safetensors_from_bytes::<f32>(Path::new("lies.safetensors"), &bytes);
        err_naming(
            result,
            &["lies.safetensors", &format!("tensor '{tensor}'"), reason],
        );
    }
}

#[test]
fn broken_headers_are_errors_naming_the_file() {
    let cases: [(&[u8], usize, &str); 6] = [
        (b"{\"a\": {\"dtype\": \"F32\",", 0, "line 1 column"),
        (b"[1, 2, 3]", 0, "not a JSON object"),
        (b"\xff\xfe{}", 0, "not UTF-8"),
        (b"{\"__metadata__\": {\"a\": 1}}", 0, "__metadata__"),
        (b"{}", 4, "4 bytes follow"),
        (b"", 0, "not a JSON object"),
    ];
    for (header, data_len, reason) in cases {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend(vec![0; data_len]);
        err_naming(
            safetensors_from_bytes::<f32>(Path::new("h.safetensors"), &bytes),
            &["h.safetensors", reason],
        );
    }
    err_naming(
        safetensors_from_bytes::<f32>(Path::new("tiny.safetensors"), b"{}"),
        &["tiny.safetensors", "truncated"],
    );
}

// ---------------------------------------------------------------------------------------------
// NPY files and inputs

#[test]
fn npy_round_trip_for_every_rank() {
    let dir = scratch("npy_round_trip");
    let path = dir.join("a.npy");
    for shape in [vec![], vec![5], vec![3, 4], vec![2, 0], vec![2, 1, 3]] {
        let n: usize = shape.iter().product();
        let t = Tensor::<f32>::from_vec(&shape, exact_values(n, 1));
        write_npy(&path, &t).unwrap();
        assert_eq!(read_npy::<f32>(&path).unwrap(), t, "{shape:?}");
        let wide: Tensor<f64> = t.cast();
        write_npy(&path, &wide).unwrap();
        assert_eq!(read_npy::<f64>(&path).unwrap(), wide, "{shape:?}");
    }
}

/// Labels written as int64 read back exactly, and the file is what `np.save` writes for
/// `np.array([3, 0, -2, 2**40], dtype=np.int64)`: the 128-byte padded header, then the values.
#[test]
fn int64_labels_round_trip_in_numpys_layout() {
    let path = scratch("npy_i64").join("labels.npy");
    let values = [3i64, 0, -2, 1 << 40];
    write_npy_i64(&path, &[values.len()], &values).unwrap();
    let dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }";
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(std::fs::read(&path).unwrap(), npy_with_header(dict, &data));
    let back = read_npy::<f64>(&path).unwrap();
    assert_eq!(back.shape(), [4]);
    assert_eq!(back.data(), [3.0, 0.0, -2.0, (1u64 << 40) as f64]);
}

/// Bytes as `np.save` writes them, in versions 1 and 2, and in the three float widths.
#[test]
fn reads_npy_as_numpy_writes_it() {
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    let bytes = npy_with_header(dict, &le_bytes_f32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!(bytes.len(), 128 + 24); // NumPy pads the header to 128 bytes here.
                                       // `np.save(f, np.arange(6, dtype='<f4').reshape(2, 3))` writes exactly these bytes (checked
                                       // with NumPy 2.4), and so does `write_npy`.
    let path = scratch("numpy_layout").join("a.npy");
    write_npy(
        &path,
        &Tensor::<f32>::from_vec(&[2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]),
    )
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let x = npy_from_bytes::<f32>(Path::new("a.npy"), &bytes).unwrap();
    assert_eq!(x.shape(), [2, 3]);
    assert_eq!(x.data(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);

    let v2 = npy_version(2, dict, &le_bytes_f32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    assert_eq!(npy_from_bytes::<f32>(Path::new("v2.npy"), &v2).unwrap(), x);

    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }";
    let data: Vec<u8> = [0.5f64, -1.0, 1e-300]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let x = npy_from_bytes::<f64>(Path::new("b.npy"), &npy_with_header(dict, &data)).unwrap();
    assert_eq!(x.data(), [0.5, -1.0, 1e-300]);

    let dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }";
    let x = npy_from_bytes::<f32>(
        Path::new("c.npy"),
        &npy_with_header(dict, &[0, 0x3c, 0, 0xc0]),
    )
    .unwrap();
    assert_eq!(x.data(), [1.0, -2.0]);
}

#[test]
fn bad_npy_files_are_errors_naming_the_file() {
    let f4 = |shape: &str, order: &str| {
        format!("{{'descr': '<f4', 'fortran_order': {order}, 'shape': {shape}, }}")
    };
    let twelve = le_bytes_f32(&[1.0; 3]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            npy_with_header(&f4("(3, 1)", "True"), &twelve),
            "Fortran order",
        ),
        (
            npy_with_header(&f4("(3, 2)", "False"), &twelve),
            "truncated",
        ),
        (
            npy_with_header(&f4("(2,)", "False"), &twelve),
            "4 bytes follow",
        ),
        (
            npy_with_header(
                "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }",
                &twelve,
            ),
            "'<u2'",
        ),
        (
            npy_with_header(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (3,), }",
                &twelve,
            ),
            "'>f4'",
        ),
        (npy_with_header(&f4("(3,", "False"), &twelve), "header"),
        (
            npy_with_header(
                &f4("(4294967296, 4294967296, 4294967296)", "False"),
                &twelve,
            ),
            "too many elements",
        ),
        (b"\x93NUMPY\x01\x00\xff\xff{}".to_vec(), "truncated"),
        (b"\x93NUMPY\x09\x00\x10\x00".to_vec(), "version 9"),
        (b"PK\x03\x04 not an npy file".to_vec(), "magic"),
        (b"\x93NUM".to_vec(), "truncated"),
    ];
    for (i, (bytes, reason)) in cases.iter().enumerate() {
        let name = format!("bad{i}.npy");
        err_naming(
            npy_from_bytes::<f32>(Path::new(&name), bytes),
            &[&name, reason],
        );
    }
}

#[test]
fn loads_inputs_from_npy_and_safetensors() {
    let dir = scratch("inputs");
    let x = Tensor::<f32>::from_vec(&[3, 2], exact_values(6, 0));
    let npy = dir.join("x.npy");
    write_npy(&npy, &x).unwrap();
    assert_eq!(load_inputs(&npy).unwrap(), x);
    check_inputs(&x, 2, &npy).unwrap();

    let column = dir.join("column.npy");
    write_npy(&column, &Tensor::<f32>::from_vec(&[3], vec![1.0, 2.0, 3.0])).unwrap();
    assert_eq!(load_inputs(&column).unwrap().shape(), [3, 1]);

    let one = dir.join("one.safetensors");
    write_safetensors(&one, [("whatever", &x)], &BTreeMap::new()).unwrap();
    assert_eq!(load_inputs(&one).unwrap(), x);

    let other = Tensor::<f32>::zeros(&[1, 1]);
    let named = dir.join("named.safetensors");
    write_safetensors(
        &named,
        [("inputs", &x), ("targets", &other)],
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(load_inputs(&named).unwrap(), x);

    let unnamed = dir.join("unnamed.safetensors");
    write_safetensors(&unnamed, [("a", &x), ("b", &other)], &BTreeMap::new()).unwrap();
    err_naming(
        load_inputs(&unnamed),
        &["unnamed.safetensors", "\"a\"", "\"b\"", "'inputs'"],
    );

    let csv = dir.join("x.csv");
    write_file(&csv, b"1,2\n");
    err_naming(load_inputs(&csv), &["x.csv", ".npy or .safetensors"]);
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let dir = scratch("bad_inputs");
    let cases = [
        (Tensor::<f32>::zeros(&[0, 8]), "[0, 8]"),
        (Tensor::<f32>::zeros(&[4, 0]), "[4, 0]"),
        (Tensor::<f32>::zeros(&[0]), "[0, 1]"),
        (Tensor::<f32>::zeros(&[2, 0, 2]), "[2, 0, 2]"),
    ];
    for (i, (x, shape)) in cases.iter().enumerate() {
        let path = dir.join(format!("x{i}.npy"));
        write_npy(&path, x).unwrap();
        err_naming(load_inputs(&path), &[&format!("x{i}.npy"), shape]);
    }
    let mut values = exact_values(12, 0);
    values[7] = f32::INFINITY; // row 2, column 1 of [4, 3]
    let path = dir.join("inf.npy");
    write_npy(&path, &Tensor::from_vec(&[4, 3], values)).unwrap();
    err_naming(load_inputs(&path), &["inf.npy", "row 2, column 1", "inf"]);

    let x = Tensor::<f32>::zeros(&[5, 3]);
    err_naming(
        check_inputs(&x, 8, Path::new("wide.npy")),
        &["wide.npy", "[5, 3]", "[N, 8]"],
    );
    let mut x = Tensor::<f32>::zeros(&[5, 3]);
    x.data_mut()[14] = f32::NAN;
    err_naming(
        check_inputs(&x, 3, Path::new("nan.npy")),
        &["nan.npy", "row 4, column 2", "NaN"],
    );
}

// ---------------------------------------------------------------------------------------------
// Reading and writing files

#[test]
fn write_atomic_replaces_the_file_and_leaves_nothing_else() {
    let dir = scratch("atomic");
    let path = dir.join("result.json");
    write_atomic(&path, b"{\"first\": 1}").unwrap();
    write_atomic(&path, b"{}").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["result.json"]);

    // Into a missing directory, and over a directory: errors naming the path, no temp file.
    err_naming(
        write_atomic(&dir.join("missing/x.json"), b"1"),
        &["missing/x.json"],
    );
    std::fs::create_dir(dir.join("taken")).unwrap();
    err_naming(write_atomic(&dir.join("taken"), b"1"), &["taken"]);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["result.json", "taken"]);
}

#[test]
fn reading_refuses_what_is_not_a_regular_file() {
    let dir = scratch("not_a_file");
    err_naming(read_bytes(&dir), &["not_a_file", "not a regular file"]);
    err_naming(read_bytes(&dir.join("absent.npy")), &["absent.npy"]);
    // A device that never ends is refused before it is read.
    #[cfg(unix)]
    err_naming(
        read_npy::<f32>(Path::new("/dev/zero")),
        &["/dev/zero", "not a regular file"],
    );
}
