//! Induction heads in a small transformer, trained here and decomposed: the data
//! ([`data`]: sequences that repeat a random span), the model and its training and measures
//! ([`model`]: the `attention` workload's two-layer attention-only transformer).

pub mod data;
pub mod effects;
pub mod model;

pub use data::{Fillers, PositionKind, RepeatedSpans, Sequence, TokenSet};
pub use effects::{induction_effects, InductionEffects, LayerShares, SubnetworkEffect};
pub use model::{
    architecture, initialised, train_induction, Accuracy, AttentionScores, InductionTraining,
    TrainedInduction,
};
