//! `l3d`: Local Loss Landscape Decomposition.
//!
//! L3D finds directions in a model's parameter space ("subnetworks") such that the per-sample
//! gradients of an output divergence are reconstructed from a few of them at a time.
//!
//! # Legend
//!
//! | code | paper | meaning |
//! |---|---|---|
//! | `B` | | batch size |
//! | `n_v` | `n_v` | number of subnetworks |
//! | `R`, `rank` | | CP rank of a subnetwork's tensor |
//! | `g_i` | `g_i` | per-sample gradient `d/dW D(f(x_i, W), f(x_r, W0))` at `W0` |
//! | `encoder` | `V_in` | the subnetworks' encoder parts (CP factors) |
//! | `decoder` | `V_out` | the subnetworks' decoder parts (CP factors, unit norm) |
//! | `c[i, v]` | | `<V_in[v], g_i>`, the coefficients |
//! | `k`, `top_k` | `k` | fraction of the `B x n_v` coefficients kept |
//!
//! # One step (Algorithm 1)
//!
//! [`pairs`]: a batch's pairs and their per-sample gradients; [`step`]: encode, [`topk`],
//! decode, the relative loss and its gradient, recorded on the tape (the reference); [`fast`]:
//! the same step with dense layers' gradients kept factored, in reused buffers, from [`mlp`],
//! the hand-written MLP forward and backward (also toy training's); [`engine`]: the
//! one interface both steps sit behind (the tape engine and the fast engine, chosen by
//! `L3dConfig::path`, fast by default); [`train`]: epochs, AdamW, renormalisation, statistics,
//! on one engine; [`measure`] and [`intervene`]: held-out error (on one engine), impacts,
//! interventions; [`decomposition`] and [`cp`]: the subnetworks as CP tensors; [`persist`]:
//! files; [`config`]: the settings and their checks; [`memory`]: the memory a decomposition
//! will need, from the shapes alone.

pub mod config;
pub mod cp;
pub mod decomposition;
pub mod engine;
pub mod error;
pub mod fast;
pub mod intervene;
pub mod measure;
pub mod memory;
pub mod mlp;
pub mod pairs;
mod par;
pub mod persist;
pub mod step;
pub mod topk;
pub mod train;

pub use config::{
    Divergence, L3dConfig, Positions, Reference, SettingName, StepPath, TopKCount, WarmStart,
};
pub use decomposition::Decomposition;
pub use error::{L3dError, Result};
pub use nets::{Model, OutputKind};
pub use train::{EpochStats, Trainer};
