//! The digits networks through the program: `l3d train` saves files that read back through
//! `nets` to the same network as training it in the library, and `l3d decompose --model-dir`
//! on them writes the per-class report; bad labels are refused naming the file.

use crate::program::{assert_fails, l3d, quick_reproduce, scratch};
use l3d::Model;
use std::path::Path;
use toys::digits::train::{train_digits, DigitsKind};

fn train(kind: DigitsKind, dir: &Path, epochs: &str) {
    let out = l3d(&[
        "train",
        "--model",
        kind.name(),
        "--seed",
        "3",
        "--epochs",
        epochs,
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("accuracy: held-out"), "{stdout}");
}

#[test]
fn saved_digits_networks_read_back_to_the_trained_network() {
    for kind in DigitsKind::ALL {
        let dir = scratch(&format!("digits-train-{kind}"));
        train(kind, &dir, "2");
        let saved =
            nets::io::load_model(&dir.join("model.toml"), &dir.join("model.safetensors")).unwrap();
        let digits = toys::digits::load();
        let mut config = kind.train_config();
        config.epochs = 2;
        let run = train_digits(kind, &digits, 3, &config, &mut |_| {}).unwrap();
        let x = nets::io::load_inputs(&dir.join("held_out_inputs.npy")).unwrap();
        assert_eq!(x, kind.inputs(&digits, &run.held_out), "{kind}");
        // The same seed gives the same network, bit for bit, and the files keep it.
        assert_eq!(
            saved.evaluate_w0(&x).unwrap(),
            run.model.evaluate_w0(&x).unwrap(),
            "{kind}"
        );
        let labels = nets::io::read_npy::<f64>(&dir.join("labels.npy")).unwrap();
        let want: Vec<f64> = digits
            .labels_of(&run.train)
            .iter()
            .map(|&l| l as f64)
            .collect();
        assert_eq!(labels.data(), want.as_slice(), "{kind}");
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("digits.json")).unwrap()).unwrap();
        assert_eq!(record["held_out_accuracy"], run.held_out_accuracy);
        assert_eq!(record["train_samples"], run.train.len());
    }
}

#[test]
fn a_digits_folder_decomposes_with_a_per_class_report() {
    let dir = scratch("digits-decompose");
    let model = dir.join("cnn");
    train(DigitsKind::DigitsCnn, &model, "3");
    let out = dir.join("run");
    let run = l3d(&[
        "decompose",
        "--model-dir",
        model.to_str().unwrap(),
        "--epochs",
        "2",
        "--warm-start",
        "1",
        "--n-v",
        "4",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(run.status.success(), "{run:?}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("classes with a subnetwork of their own"),
        "{stdout}"
    );
    // No pixel dominates an image, so no input has an impact to rank: the generic table
    // shows no top input rather than input 0 at purity 0.
    let generic_rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|cells| cells.len() == 9 && cells[0].parse::<usize>().is_ok())
        .collect();
    assert_eq!(generic_rows.len(), 4, "{stdout}");
    assert!(generic_rows.iter().all(|c| c[3] == "-"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let classes = &report["classes"];
    assert_eq!(classes["n_classes"], 10);
    let counts: Vec<u64> = classes["class_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    // round(0.8 n_c) of each class trains: 1,797 - 359 held out.
    assert_eq!(counts.iter().sum::<u64>(), 1438);
    for s in classes["subnetworks"].as_array().unwrap() {
        let shares = s["change_shares"].as_array().unwrap();
        let total: f64 = shares.iter().map(|x| x.as_f64().unwrap()).sum();
        assert!(total == 0.0 || (total - 1.0).abs() < 1e-9, "{s}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["l3d"]["divergence"], "kl");
    assert!(config["labels"].as_str().unwrap().ends_with("labels.npy"));
    for figure in [
        "classes_impact.svg",
        "classes_intervention.svg",
        "kernels_0_weight.svg",
    ] {
        assert!(out.join("figures").join(figure).is_file(), "{figure}");
    }
    // The CNN's first layer is a convolution: no pixel patterns of a linear input layer.
    assert!(!out.join("figures/input_patterns.svg").exists());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Subnetworks by class"));
}

#[test]
fn the_mlps_subnetworks_are_drawn_as_8x8_input_patterns() {
    let dir = scratch("digits-patterns");
    let model = dir.join("mlp");
    train(DigitsKind::DigitsMlp, &model, "2");
    let out = dir.join("run");
    let run = l3d(&[
        "decompose",
        "--model-dir",
        model.to_str().unwrap(),
        "--epochs",
        "2",
        "--warm-start",
        "1",
        "--n-v",
        "3",
        "--rank",
        "2",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(run.status.success(), "{run:?}");
    let svg = std::fs::read_to_string(out.join("figures/input_patterns.svg")).unwrap();
    // The background, 3 subnetworks x 2 rank-one terms x 64 pixels, the colour bar's 32 steps.
    assert_eq!(svg.matches("<rect").count(), 1 + 3 * 2 * 64 + 32);
    assert!(svg.contains("subnetwork 2"));
}

#[test]
fn labels_that_do_not_fit_the_inputs_are_refused_naming_the_file() {
    let dir = scratch("digits-bad-labels");
    let model = dir.join("mlp");
    train(DigitsKind::DigitsMlp, &model, "1");
    let short = dir.join("short.npy");
    nets::io::write_npy_i64(&short, &[3], &[1, 2, 3]).unwrap();
    let fractional = dir.join("fractional.npy");
    let mut values = vec![0.0f32; 1438];
    values[5] = 2.5;
    nets::io::write_npy(&fractional, &tensor::Tensor::from_vec(&[1438], values)).unwrap();
    for (labels, needle) in [
        (
            &short,
            "expected one label per input row, shape [1438]; found shape [3]",
        ),
        (&fractional, "label 5 is 2.5"),
    ] {
        let out = dir.join("run");
        let run = l3d(&[
            "decompose",
            "--model-dir",
            model.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--epochs",
            "1",
            "--warm-start",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--overwrite",
        ]);
        assert_fails(
            &run,
            1,
            &[labels.file_name().unwrap().to_str().unwrap(), needle],
        );
    }
}

#[test]
fn reproduce_runs_the_digits_beyond_the_paper() {
    let (out, result) = quick_reproduce("--digits", "digits-reproduce");
    let digits = result["digits"].as_array().unwrap();
    assert_eq!(
        digits.len(),
        2,
        "one network of each kind, one decomposition each"
    );
    for r in digits {
        assert!(r["held_out_accuracy"].as_f64().unwrap() > 0.95, "{r}");
        let own = r["classes_with_own"].as_array().unwrap();
        assert!(own.iter().all(|c| c.as_u64().unwrap() < 10), "{r}");
    }
    let markdown = std::fs::read_to_string(out.join("reproduce.md")).unwrap();
    for needle in [
        "| digits-mlp | classes with a subnetwork of their own |",
        "| digits-cnn |",
    ] {
        assert!(
            markdown.contains(needle),
            "{needle} missing from {markdown}"
        );
    }
}

#[test]
fn labels_beside_the_inputs_are_used_only_when_they_are_class_indices() {
    let dir = scratch("labels-beside");
    let (arch, weights, inputs) = crate::program::pytorch_layout_files(&dir);
    let run = |out: &str| {
        let out = dir.join(out);
        let run = l3d(&[
            "decompose",
            "--arch",
            arch.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--epochs",
            "2",
            "--n-v",
            "3",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(run.status.success(), "{run:?}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        report.get("classes").cloned()
    };
    // Regression targets that happen to be called labels.npy are left alone.
    let targets = tensor::Tensor::<f32>::from_fn(&[64], |i| i as f32 * 0.37);
    nets::io::write_npy(&dir.join("labels.npy"), &targets).unwrap();
    assert_eq!(run("targets"), None);
    // Class indices are taken: the model has 4 logits, the labels 4 classes.
    let labels: Vec<i64> = (0..64).map(|i| i % 4).collect();
    nets::io::write_npy_i64(&dir.join("labels.npy"), &[labels.len()], &labels).unwrap();
    let classes = run("classes").expect("a per-class report");
    assert_eq!(classes["n_classes"], 4);
    assert_eq!(classes["class_counts"], serde_json::json!([16, 16, 16, 16]));

    // The labels are fingerprinted: other labels in the same file are refused by report.
    let relabelled: Vec<i64> = (0..64).map(|i| (i + 1) % 4).collect();
    nets::io::write_npy_i64(&dir.join("labels.npy"), &[64], &relabelled).unwrap();
    let out = dir.join("classes");
    let report = l3d(&["report", "--dir", out.to_str().unwrap()]);
    assert_fails(
        &report,
        1,
        &["the labels", "labels.npy", "changed since the run"],
    );
}
