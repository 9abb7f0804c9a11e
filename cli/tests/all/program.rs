//! The `l3d` program as a user meets it: bad input gives a clear message and a non-zero exit
//! (never a panic trace); a model in PyTorch's layout decomposes through it; and the toy
//! runs at reduced settings recover what they should, writing files that parse back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tensor::{rng, Tensor};

pub(crate) fn l3d(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_l3d"))
        .args(args)
        .output()
        .expect("the l3d binary runs")
}

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("l3d-program-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `l3d reproduce` of `tms` at the smallest settings (one toy seed, one decomposition seed,
/// scale 0.05) with the extra section `flag` (`--digits`, `--induction`), into a scratch
/// folder `name`: the folder and its `reproduce.json`, after asserting the run succeeded.
pub(crate) fn quick_reproduce(flag: &str, name: &str) -> (PathBuf, serde_json::Value) {
    let out = scratch(name);
    let run = l3d(&[
        "reproduce",
        "--toys",
        "tms",
        "--toy-seeds",
        "1",
        "--seeds",
        "1",
        "--scale",
        "0.05",
        flag,
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(run.status.success(), "{run:?}");
    let result =
        serde_json::from_slice(&std::fs::read(out.join("reproduce.json")).unwrap()).unwrap();
    (out, result)
}

/// Asserts a failed run: exit code `code`, stderr naming every `needle`, no panic.
pub(crate) fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "a panic: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "'{n}' missing from: {stderr}");
    }
}

#[test]
fn unknown_names_and_impossible_settings_are_refused() {
    let out = scratch("bad-settings");
    let o = out.to_str().unwrap();
    assert_fails(
        &l3d(&["decompose", "--toy", "nope"]),
        2,
        &["invalid value 'nope'"],
    );
    assert_fails(
        &l3d(&["train", "--model", "tmx"]),
        2,
        &["invalid value 'tmx'"],
    );
    let cases: [(&[&str], &str); 6] = [
        (&["--top-k", "0"], "top_k"),
        (&["--top-k", "1.5"], "top_k"),
        (&["--n-v", "0"], "n_subnetworks"),
        (&["--rank", "0"], "rank"),
        (
            &["--batch", "5000"],
            "batch_size = 5000 is larger than the data (1000 rows)",
        ),
        (&["--lr=-1"], "lr"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["decompose", "--toy", "tms", "--out", o];
        args.extend_from_slice(extra);
        assert_fails(&l3d(&args), 1, &["invalid config", needle]);
    }
    assert_fails(&l3d(&["decompose"]), 1, &["say what to decompose"]);
}

#[test]
fn missing_and_corrupt_files_are_named() {
    let dir = scratch("bad-files");
    let arch = dir.join("model.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/mlp.toml"),
        &arch,
    )
    .unwrap();
    let weights = dir.join("model.safetensors");
    let a = arch.to_str().unwrap();
    let w = weights.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    assert_fails(
        &l3d(&["decompose", "--arch", a, "--weights", w, "--out", o]),
        1,
        &["model.safetensors"],
    );
    std::fs::write(
        &weights,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    assert_fails(
        &l3d(&["decompose", "--arch", a, "--weights", w, "--out", o]),
        1,
        &["model.safetensors"],
    );
    assert!(!out.exists(), "a failed run wrote its output folder");
    let missing = dir.join("nowhere/config.json");
    assert_fails(
        &l3d(&["decompose", "--config", missing.to_str().unwrap()]),
        1,
        &["nowhere/config.json"],
    );
    assert_fails(
        &l3d(&["report", "--dir", dir.to_str().unwrap()]),
        1,
        &["config.json"],
    );
}

/// Writes an `nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))` state dict as
/// PyTorch's `save_file` would (`0.weight`, `0.bias`, `2.weight`, `2.bias`) and inputs as
/// `np.save` would.
pub(crate) fn pytorch_layout_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let mut r = rng(4);
    let tensors = [
        ("0.weight", Tensor::<f32>::randn(&[16, 8], 0.4, &mut r)),
        ("0.bias", Tensor::randn(&[16], 0.1, &mut r)),
        ("2.weight", Tensor::randn(&[4, 16], 0.3, &mut r)),
        ("2.bias", Tensor::randn(&[4], 0.1, &mut r)),
    ];
    let weights = dir.join("mlp.safetensors");
    nets::io::write_safetensors(
        &weights,
        tensors.iter().map(|(n, t)| (*n, t)),
        &Default::default(),
    )
    .unwrap();
    let arch = dir.join("mlp.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/mlp.toml"),
        &arch,
    )
    .unwrap();
    let inputs = dir.join("x.npy");
    nets::io::write_npy(&inputs, &Tensor::<f32>::randn(&[64, 8], 1.0, &mut r)).unwrap();
    (arch, weights, inputs)
}

#[test]
fn a_model_in_pytorch_layout_decomposes_through_the_program() {
    let dir = scratch("pytorch");
    let (arch, weights, inputs) = pytorch_layout_files(&dir);
    let out = dir.join("run");
    let result = l3d(&[
        "--quiet",
        "decompose",
        "--arch",
        arch.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
        "--n-v",
        "3",
        "--epochs",
        "3",
        "--batch",
        "16",
        "--decompose",
        "2.weight,2.bias",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(stdout.contains("reconstruction error"), "{stdout}");
    let subnetworks =
        nets::io::read_safetensors::<f32>(&out.join("subnetworks.safetensors")).unwrap();
    for k in 0..3 {
        assert_eq!(
            subnetworks.tensors[&format!("subnetwork.{k}.2.weight")].shape(),
            &[4, 16]
        );
        assert_eq!(
            subnetworks.tensors[&format!("subnetwork.{k}.2.bias")].shape(),
            &[4]
        );
    }
    assert!(
        !subnetworks.tensors.contains_key("subnetwork.0.0.weight"),
        "a frozen tensor was decomposed"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("subnetworks.json")).unwrap()).unwrap();
    assert_eq!(meta["params"], serde_json::json!(["2.weight", "2.bias"]));
    // The written config repeats the run exactly.
    let again = dir.join("again");
    let config = out.join("config.json");
    let result = l3d(&[
        "--quiet",
        "decompose",
        "--config",
        config.to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let a = std::fs::read(out.join("decomposition.safetensors")).unwrap();
    let b = std::fs::read(again.join("decomposition.safetensors")).unwrap();
    assert_eq!(a, b, "the same config gave different factors");
}

#[test]
fn reproduce_reports_medians_and_ranges_over_toys_and_seeds() {
    let out = scratch("reproduce");
    let result = l3d(&[
        "--quiet",
        "reproduce",
        "--scale",
        "0.02",
        "--toys",
        "tms,tmcs",
        "--toy-seeds",
        "2",
        "--seeds",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("reproduce.json")).unwrap()).unwrap();
    // Per toy: 2 toy seeds x 2 seeds main runs, and 2 runs under the other divergence.
    let runs = json["runs"].as_array().unwrap();
    let main = |toy: &str| {
        runs.iter()
            .filter(|r| r["toy"] == toy && r["purpose"] == "main")
            .count()
    };
    assert_eq!((main("tms"), main("tmcs")), (4, 4));
    assert_eq!(runs.len(), 12);
    let md = std::fs::read_to_string(out.join("reproduce.md")).unwrap();
    // A median with its range, for the error row of each toy.
    for toy in ["tms", "tmcs"] {
        let line = md
            .lines()
            .find(|l| l.starts_with(&format!("| {toy} | reconstruction error (n_v")))
            .unwrap_or_else(|| panic!("no error row for {toy}: {md}"));
        assert!(line.contains(" [") && line.contains("] |"), "{line}");
    }
    assert!(md.contains("Pearson r, as the authors compute it"), "{md}");
    // The first toy seed and seed wrote a full decomposition folder, every toy its model.
    assert!(out.join("tms/config.json").exists());
    assert!(out.join("tms/report.html").exists());
    assert!(out.join("tmcs/toy-1/model.safetensors").exists());
    // --seeds 0 is refused.
    let refused = l3d(&["reproduce", "--seeds", "0", "--out", out.to_str().unwrap()]);
    assert_fails(&refused, 1, &["--seeds"]);
}

#[test]
fn the_authors_options_reach_the_config() {
    let out = scratch("authors-options");
    let result = l3d(&[
        "--quiet",
        "decompose",
        "--toy",
        "tms",
        "--train-epochs",
        "50",
        "--epochs",
        "4",
        "--warm-start",
        "2",
        "--warm-start-schedule",
        "hold",
        "--top-k-count",
        "floor-plus-one",
        "--reference",
        "random-with-self",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let l3d_config = &config["l3d"];
    assert_eq!(l3d_config["warm_start"], "hold");
    assert_eq!(l3d_config["top_k_count"], "floor-plus-one");
    assert_eq!(l3d_config["reference"], "random-with-self");
    assert_eq!(l3d_config["divergence"], "mse-authors");
    let decomposition: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("decomposition.json")).unwrap()).unwrap();
    let history = decomposition["history"].as_array().unwrap();
    assert_eq!(history[0]["top_k"], 0.999);
    assert_eq!(history[2]["top_k"], 0.1);
    assert_fails(
        &l3d(&["decompose", "--toy", "tms", "--top-k-count", "round"]),
        2,
        &["unknown top-k count 'round'"],
    );
}
