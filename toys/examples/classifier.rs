//! Worked example: a classifier trained here, saved in the architecture + safetensors form a
//! PyTorch user would export, decomposed through the same path as
//! `l3d decompose --arch --weights --inputs` with the KL divergence, and the circuits found
//! compared with the task's known structure (one circuit per class).
//!
//! Run: `cargo run --release -p toys --example classifier`

use std::path::Path;
use toys::classifier::{class_circuits, train, Task};
use toys::run::{self, DataSource, ModelSource, RunConfig};
use toys::ui::{Mode, Ui};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = Path::new("out/classifier");
    std::fs::create_dir_all(out)?;
    let task = Task::default();
    let (model, accuracy) = train(&task, 0, 60);
    println!(
        "trained the classifier: {:.1}% accuracy on fresh samples",
        100.0 * accuracy
    );
    let (arch, weights, inputs) = (
        out.join("model.toml"),
        out.join("model.safetensors"),
        out.join("inputs.npy"),
    );
    toys::io::save_model(&model, &arch, &weights)?;
    let (x, labels) = task.sample(1000, &mut tensor::rng(7));
    toys::io::write_npy(&inputs, &x)?;
    println!(
        "saved {}, {} and {}",
        arch.display(),
        weights.display(),
        inputs.display()
    );

    // The same as: l3d decompose --arch out/classifier/model.toml --weights
    //   out/classifier/model.safetensors --inputs out/classifier/inputs.npy --n-v 6 --top-k 0.17
    //   --epochs 300 --out out/classifier/decomposition
    let run_config = RunConfig {
        model: ModelSource::Files { arch, weights },
        data: DataSource::File { path: inputs },
        l3d: l3d::L3dConfig {
            n_subnetworks: task.n_classes,
            rank: 1,
            top_k: 0.17,
            epochs: 300,
            lr_step: 30,
            divergence: l3d::Divergence::Kl,
            ..Default::default()
        },
        analysis: Default::default(),
    };
    let outcome = run::decompose(
        &run_config,
        &out.join("decomposition"),
        None,
        &Ui::new(Mode::Human),
    )?;
    println!("{}", toys::report::generic_table(&outcome.generic));
    let circuits = class_circuits(
        &outcome.loaded.model,
        &outcome.trained.decomposition,
        &run_config.l3d,
        &x,
        &labels,
        task.n_classes,
    )?;
    println!(
        "subnetwork | top class | purity | dominance | mean impact on the samples of each class"
    );
    for (v, row) in circuits.class_impact.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(|x| format!("{x:.3}")).collect();
        println!(
            "{v:>10} | {:>9} | {:>6.3} | {:>9.1} | {}",
            circuits.top_class[v],
            circuits.purity[v],
            circuits.dominance(v),
            cells.join(" ")
        );
    }
    let found = circuits.classes_found(3.0);
    println!(
        "classes with their own subnetwork (dominance >= 3): {}/{} {:?}; the task has one circuit per class",
        found.len(),
        task.n_classes,
        found
    );
    Ok(())
}
