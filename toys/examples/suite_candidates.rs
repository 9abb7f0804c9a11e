//! Candidate default settings for users' models, measured on the ground-truth suite
//! (`toys::suite`): for each candidate, each suite model, trained from several seeds and
//! decomposed from several seeds, the represented features recovered by structure and by
//! intervention (medians and ranges). Used for notes/suite.md.
//!
//!     cargo run --release -p toys --example suite_candidates -- [CANDIDATE ..]

use l3d::{Divergence, L3dConfig, Model, OutputKind};
use rayon::prelude::*;
use toys::circuits::{median, AnalysisConfig};
use toys::suite::{decompose_member, train_member, Member, SuiteModel};

/// The parameter names a candidate decomposes.
fn tensors(candidate: &str, member: &Member) -> Vec<String> {
    let names = member.model.param_names();
    let shapes = member.model.param_shapes();
    let last_layer = names
        .last()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0
        .to_string();
    let first_layer = names[0].rsplit_once('.').unwrap().0.to_string();
    names
        .iter()
        .zip(&shapes)
        .filter(|(n, s)| match candidate {
            "all" => true,
            "weights" => s.len() >= 2,
            "first" => n.starts_with(&format!("{first_layer}.")) && s.len() >= 2,
            "first-layer" => n.starts_with(&format!("{first_layer}.")),
            "no-readout" => !n.starts_with(&format!("{last_layer}.")),
            "no-readout-weights" => !n.starts_with(&format!("{last_layer}.")) && s.len() >= 2,
            other => panic!("unknown candidate {other}"),
        })
        .map(|(n, _)| n.clone())
        .collect()
}

fn main() {
    let candidates: Vec<String> = std::env::args().skip(1).collect();
    let members: Vec<Member> = SuiteModel::ALL
        .iter()
        .flat_map(|&k| (0..3).map(move |s| (k, s)))
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&(k, s)| train_member(k, s).expect("suite training"))
        .collect();
    for m in &members {
        println!(
            "{} seed {}: represents {:?} (u max {:.3})",
            m.kind,
            m.seed,
            m.represented(),
            m.check.worst_unexplained()
        );
    }
    let settings = AnalysisConfig {
        eval_samples: 2000,
        ..AnalysisConfig::default()
    };
    for candidate in &candidates {
        let jobs: Vec<(&Member, u64)> = members
            .iter()
            .flat_map(|m| (0..3).map(move |s| (m, s)))
            .collect();
        let results: Vec<_> = jobs
            .par_iter()
            .map(|&(m, seed)| {
                let config = L3dConfig {
                    n_subnetworks: m.kind.n_features(),
                    divergence: match m.kind.architecture().output {
                        OutputKind::Logits => Divergence::Kl,
                        OutputKind::Regression => Divergence::Mse,
                    },
                    decompose: tensors(candidate, m),
                    seed,
                    ..L3dConfig::default()
                };
                let (_, r) = decompose_member(m, &config, &settings).expect("decomposition");
                (m.kind, r)
            })
            .collect();
        for kind in SuiteModel::ALL {
            let mine: Vec<_> = results
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, r)| r)
                .collect();
            let frac = |f: &dyn Fn(&toys::suite::Recovery) -> usize| -> Vec<f64> {
                mine.iter()
                    .map(|r| f(r) as f64 / r.represented.max(1) as f64)
                    .collect()
            };
            let s = frac(&|r| r.by_structure);
            let i = frac(&|r| r.by_intervention);
            let e: Vec<f64> = mine.iter().map(|r| r.error).collect();
            let range = |v: &[f64]| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                format!("{:.2} [{lo:.2}, {hi:.2}]", median(v).unwrap())
            };
            println!(
                "{candidate:>20} | {kind:>12} | structure {} | intervention {} | error {}",
                range(&s),
                range(&i),
                range(&e)
            );
        }
    }
}
