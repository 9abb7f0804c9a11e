//! The induction transformer through the program: trained for a few epochs, saved, decomposed
//! from its folder, and reported, with every file it promises (the induction behaviour itself
//! is tested in toys, on a longer run).

use crate::program::{l3d, scratch};
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
