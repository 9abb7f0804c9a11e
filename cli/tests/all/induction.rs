//! The induction transformer through the program: trained for a few epochs, saved, decomposed
//! from its folder, and reported, with every file it promises (the induction behaviour itself
//! is tested in toys, on a longer run).

use crate::program::{l3d, quick_reproduce, scratch};
use tensor::Tensor;

#[test]
fn an_induction_folder_trains_decomposes_and_reports() {
    let dir = scratch("induction");
    let model = dir.join("model");
    let run = |args: &[&str]| {
        let out = l3d(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let m = model.to_str().unwrap();
    let text = run(&[
        "--quiet",
        "train",
        "--model",
        "induction",
        "--epochs",
        "2",
        "--out",
        m,
    ]);
    assert!(text.contains("repeated positions"), "{text}");
    for file in [
        "model.toml",
        "model.safetensors",
        "tokens.npy",
        "marks.npy",
        "induction.json",
    ] {
        assert!(model.join(file).is_file(), "{file} missing");
    }
    let tokens: Tensor<f64> = nets::io::read_npy(&model.join("tokens.npy")).unwrap();
    let marks: Tensor<f64> = nets::io::read_npy(&model.join("marks.npy")).unwrap();
    assert_eq!(tokens.shape(), &[512, 32]);
    assert_eq!(marks.shape(), tokens.shape());
    assert!(tokens
        .data()
        .iter()
        .all(|&t| t.fract() == 0.0 && (0.0..64.0).contains(&t)));
    let repeated = marks.data().iter().filter(|&&k| k == 1.0).count();
    let first = marks.data().iter().filter(|&&k| k == 2.0).count();
    assert_eq!(repeated, first, "a sequence has as many of each");
    assert!(repeated >= 512 * 5, "spans of 6 or more: {repeated}");

    let d = dir.join("d");
    let d_str = d.to_str().unwrap();
    let text = run(&[
        "--quiet",
        "decompose",
        "--model-dir",
        m,
        "--epochs",
        "2",
        "--out",
        d_str,
    ]);
    assert!(text.contains("induction subnetwork (layer 1)"), "{text}");
    assert!(text.contains("random"), "{text}");
    assert!(d.join("figures/induction.svg").is_file());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
    let induction = &report["induction"];
    assert_eq!(induction["subnetworks"].as_array().unwrap().len(), 16);
    assert_eq!(induction["sequences"], 512);
    assert_eq!(induction["baseline"]["index"], 16);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["l3d"]["divergence"], "kl");
    assert_eq!(config["l3d"]["n_subnetworks"], 16);

    // The report again, from the folder alone, gives the same induction measures.
    run(&["--quiet", "report", "--dir", d_str]);
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("report.json")).unwrap()).unwrap();
    assert_eq!(again["induction"], report["induction"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reproduce_runs_the_induction_transformer_beyond_the_paper() {
    let (out, result) = quick_reproduce("--induction", "induction-reproduce");
    let induction = &result["induction"];
    let models = induction["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "one model seed");
    let model = &models[0];
    assert_eq!(model["training"]["epochs"], 3, "60 epochs scaled by 0.05");
    // The trained model is saved as an `l3d train --model induction` folder with this record.
    let folder = out.join("induction/model-0");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("induction.json")).unwrap()).unwrap();
    assert_eq!(&saved, model);
    assert!(folder.join("model.safetensors").is_file());
    let repeated = model["accuracy"]["repeated"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&repeated), "{model}");

    let runs = induction["runs"].as_array().unwrap();
    let tensors: Vec<&str> = runs
        .iter()
        .map(|r| r["tensors"].as_str().unwrap())
        .collect();
    assert_eq!(
        tensors,
        ["attention", "layer1", "layer0_qk"],
        "one decomposition of each kind"
    );
    for r in runs {
        let error = r["reconstruction_error"].as_f64().unwrap();
        assert!(error.is_finite() && error > 0.0, "{r}");
        assert!(r["live"].as_u64().unwrap() <= 16, "{r}");
        let baseline = &r["baseline"];
        assert_eq!(baseline["index"], 16);
        assert!(baseline["kl_repeated"].as_f64().unwrap() > 0.0, "{r}");
        if let Some(k) = r["induction"].as_object() {
            let shares = k["shares"]["layer1"].as_array().unwrap();
            let layer1: f64 = shares.iter().map(|s| s.as_f64().unwrap()).sum();
            assert!(layer1 >= 0.5, "{r}");
        }
    }
    // Layer 1 alone has no layer-0 share, so no layer-0 subnetwork; layer 0's q and k alone
    // no layer-1 share, so no induction subnetwork, and any previous-token subnetwork lives
    // in them.
    assert!(runs[1]["layer0"].is_null(), "{}", runs[1]);
    assert!(runs[2]["induction"].is_null(), "{}", runs[2]);
    if let Some(k) = runs[2]["previous_token"].as_object() {
        let shares = k["shares"]["layer0"].as_array().unwrap();
        let qk = shares[0].as_f64().unwrap() + shares[1].as_f64().unwrap();
        assert!((qk - 1.0).abs() < 1e-6, "{}", runs[2]);
    }

    let markdown = std::fs::read_to_string(out.join("reproduce.md")).unwrap();
    let attention_error = runs[0]["reconstruction_error"].as_f64().unwrap();
    for needle in [
        format!("| induction | accuracy on repeated positions (target > 0.9) | {repeated:.3} |"),
        format!("| induction, attention weights | reconstruction error | {attention_error:.3} |"),
        "| induction, layer 1 only | runs with a layer-0 subnetwork | 0/1 |".to_string(),
        "are over the trained models (1), the rest over the decompositions of each set of tensors (1 each)".to_string(),
    ] {
        assert!(
            markdown.contains(&needle),
            "{needle} missing from {markdown}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
