//! The induction report's moves at several sizes: for a decomposition of an induction model,
//! the previous-token subnetwork (toys::induction::effects) and a random direction moved by
//! `delta` 0.1, 0.25, 0.5 and 1 times the norm of the decomposed parameters (the report uses
//! 0.1), with layer 0's attention on the previous token, the accuracy on repeated positions,
//! layer 1's attention on the induction target and the repeated/first KL ratio after each
//! move. Usage:
//!
//! ```sh
//! cargo run --release -p l3d-cli --example induction_deltas -- MODEL_DIR DECOMPOSITION_DIR
//! ```
//!
//! `MODEL_DIR` is an `l3d train --model induction` folder, `DECOMPOSITION_DIR` the output of
//! `l3d decompose --model-dir MODEL_DIR` (its `induction.json` says which subnetworks are live).

use std::path::Path;
use toys::induction::effects::induction_effects;
use toys::induction::InductionEffects;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_dir, dec_dir] =
        [0, 1].map(|i| Path::new(args.get(i).expect("MODEL_DIR DECOMPOSITION_DIR")).to_path_buf());
    let model = nets::io::load_model(
        &model_dir.join("model.toml"),
        &model_dir.join("model.safetensors"),
    )
    .expect("the model folder loads");
    let saved = l3d::persist::load_decomposition::<f32>(&dec_dir.join("decomposition.json"))
        .expect("the decomposition loads");
    let d = &saved.decomposition;
    let tokens = nets::io::load_inputs(&model_dir.join("tokens.npy")).expect("tokens.npy loads");
    let set = l3d_cli::induction::marked_set(&model_dir, &tokens).expect("marks.npy loads");
    let report = std::fs::read(dec_dir.join("induction.json")).expect("induction.json reads");
    let e: InductionEffects = serde_json::from_slice(&report).expect("induction.json parses");
    let Some(k) = e.previous_token_subnetwork else {
        println!("the run has no previous-token subnetwork (induction.json)");
        return;
    };
    let live: Vec<bool> = e.subnetworks.iter().map(|s| s.live).collect();
    let norm = toys::circuits::decomposed_norm(&model, d);
    println!(
        "previous-token subnetwork {k}; the model: layer 0 on t - 1 {:.3}, accuracy on repeated positions {:.3}",
        e.attention.layer0_previous_token, e.accuracy_repeated
    );
    for fraction in [0.1, 0.25, 0.5, 1.0] {
        let x = induction_effects(&model, d, &set, fraction * norm, &live, 0)
            .expect("the moves evaluate");
        for (name, s) in [("subnetwork", &x.subnetworks[k]), ("random", &x.baseline)] {
            println!(
                "delta {fraction:>4} x norm, {name:>10}: layer 0 on t - 1 {:.3}, accuracy {:.3}, layer 1 on the target {:.3}, KL ratio {:.2}",
                s.attention.layer0_previous_token,
                s.accuracy_repeated,
                s.attention.layer1_induction,
                s.ratio
            );
        }
    }
}
