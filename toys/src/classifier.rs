//! A small classifier with a known sparse structure, for the worked example of decomposing a
//! logit model with the KL divergence.
//!
//! Task: inputs `x: [N, n_classes + n_noise]`; in every row exactly one of the first
//! `n_classes` features is active (value `U(0.5, 1)`), the rest of those are 0, and the last
//! `n_noise` features are small `N(0, 0.1^2)` noise. The class is the index of the active
//! feature. A model that solves it has one circuit per class (its feature's input weights,
//! the hidden units they drive, that class's logit row), so a decomposition with one
//! subnetwork per class should give each class its own subnetwork.

use crate::arch::{Activation, Architecture, Layer, Sequential};
use autodiff::optim::{AdamW, AdamWConfig};
use autodiff::{Tape, Var};
use l3d::measure::impacts;
use l3d::{Decomposition, L3dConfig, Model, OutputKind};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::{rng, Tensor};

/// The shape of the task.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub n_classes: usize,
    pub n_noise: usize,
    pub hidden: usize,
}

impl Default for Task {
    fn default() -> Self {
        Self {
            n_classes: 6,
            n_noise: 2,
            hidden: 16,
        }
    }
}

impl Task {
    pub fn input_dim(&self) -> usize {
        self.n_classes + self.n_noise
    }

    /// `nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))` with
    /// logit outputs.
    pub fn architecture(&self) -> Architecture {
        Architecture {
            input_dim: self.input_dim(),
            output: OutputKind::Logits,
            layers: vec![
                Layer::Linear {
                    name: "0".into(),
                    in_features: self.input_dim(),
                    out_features: self.hidden,
                    bias: true,
                },
                Layer::Activation {
                    function: Activation::Relu,
                },
                Layer::Linear {
                    name: "2".into(),
                    in_features: self.hidden,
                    out_features: self.n_classes,
                    bias: true,
                },
            ],
        }
    }

    /// `n` rows and their classes.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> (Tensor<f32>, Vec<usize>) {
        let d = self.input_dim();
        let mut x = Tensor::zeros(&[n, d]);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = rng.gen_range(0..self.n_classes);
            let row = x.row_mut(i);
            row[class] = rng.gen_range(0.5..1.0);
            for v in &mut row[self.n_classes..] {
                let z: f32 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                *v = 0.1 * z;
            }
            labels.push(class);
        }
        (x, labels)
    }
}

/// Trains the classifier with cross-entropy (`-log softmax(z)[class]`, the batch mean), AdamW
/// at lr 0.01, batch 64. Returns the model and its accuracy on fresh samples.
pub fn train(task: &Task, seed: u64, epochs: usize) -> (Sequential<f32>, f64) {
    let arch = task.architecture();
    let mut r = rng(seed);
    let mut params = crate::models::kaiming_uniform(&arch, &mut r);
    let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.shape().to_vec()).collect();
    let mut opt = AdamW::new(
        AdamWConfig {
            lr: 0.01,
            ..Default::default()
        },
        &shapes,
    );
    let model =
        Sequential::new(arch.clone(), params.clone()).expect("shapes follow the architecture");
    let (x, labels) = task.sample(2000, &mut r);
    for _ in 0..epochs {
        for rows in (0..2000).collect::<Vec<_>>().chunks(64) {
            let xb = x.gather_rows(rows);
            let onehot = one_hot(
                &rows.iter().map(|&i| labels[i]).collect::<Vec<_>>(),
                task.n_classes,
            );
            let mut tape = Tape::new();
            let p: Vec<Var> = params.iter().map(|t| tape.param(t.clone())).collect();
            let xv = tape.input(xb);
            let z = model
                .forward(&mut tape, &p, xv)
                .expect("shapes follow the architecture");
            let logq = tape.log_softmax(z);
            let target = tape.constant(onehot);
            let picked = tape.mul(logq, target);
            let total = tape.sum_all(picked);
            let loss = tape.scale(total, -1.0 / rows.len() as f32);
            let grads = tape.grad(loss, &p).expect("the loss is a scalar");
            opt.step(0.01, &mut params, &grads);
        }
    }
    let model = Sequential::new(arch, params).expect("shapes follow the architecture");
    let (xt, lt) = task.sample(1000, &mut r);
    let z = model
        .evaluate_w0(&xt)
        .expect("shapes follow the architecture");
    let predicted = z.argmax_axis(1);
    let correct = predicted.iter().zip(&lt).filter(|(p, l)| p == l).count();
    (model, correct as f64 / lt.len() as f64)
}

fn one_hot(labels: &[usize], n: usize) -> Tensor<f32> {
    let mut t = Tensor::zeros(&[labels.len(), n]);
    for (i, &l) in labels.iter().enumerate() {
        t.row_mut(i)[l] = 1.0;
    }
    t
}

/// Which class each subnetwork serves: the mean impact of every subnetwork on the samples of
/// every class (`[n_v][n_classes]`), each subnetwork's top class and its purity (share of
/// its mean impact on that class's samples).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCircuits {
    pub class_impact: Vec<Vec<f64>>,
    pub top_class: Vec<usize>,
    pub purity: Vec<f64>,
}

impl ClassCircuits {
    /// How much more subnetwork `v` acts on its top class's samples than on the samples of
    /// any other class: `M[v, top] / max_{c != top} M[v, c]`.
    ///
    /// Purity cannot reach 1 for a softmax model even when each subnetwork is one class's
    /// circuit: every logit is live, so the pair gradient `J_i^T (p_i - p_r)` of a sample
    /// `x_i` also moves the logit row of its reference's class. Dominance measures the
    /// diagonal against the strongest off-diagonal entry instead.
    pub fn dominance(&self, v: usize) -> f64 {
        let row = &self.class_impact[v];
        let top = self.top_class[v];
        let other = (0..row.len())
            .filter(|&c| c != top)
            .map(|c| row[c])
            .fold(0.0, f64::max);
        row[top] / other.max(f64::MIN_POSITIVE)
    }

    /// Classes served by some subnetwork whose dominance is at least `min_dominance`.
    pub fn classes_found(&self, min_dominance: f64) -> Vec<usize> {
        let mut found: Vec<usize> = (0..self.top_class.len())
            .filter(|&v| self.dominance(v) >= min_dominance)
            .map(|v| self.top_class[v])
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

pub fn class_circuits(
    model: &dyn Model<f32>,
    d: &Decomposition<f32>,
    config: &L3dConfig,
    x: &Tensor<f32>,
    labels: &[usize],
    n_classes: usize,
) -> l3d::Result<ClassCircuits> {
    let impact = impacts(model, d, config, x, 8, config.seed)?;
    let mut sums = vec![vec![0.0; n_classes]; d.n_v];
    let mut counts = vec![0usize; n_classes];
    for (row, &l) in impact.rows().zip(labels) {
        counts[l] += 1;
        for (v, s) in sums.iter_mut().enumerate() {
            s[l] += row[v] as f64;
        }
    }
    for s in &mut sums {
        for (x, &c) in s.iter_mut().zip(&counts) {
            *x /= c.max(1) as f64;
        }
    }
    let top_class: Vec<usize> = sums
        .iter()
        .map(|s| {
            (0..n_classes)
                .reduce(|b, c| if s[c] > s[b] { c } else { b })
                .unwrap_or(0)
        })
        .collect();
    let purity = sums
        .iter()
        .zip(&top_class)
        .map(|(s, &c)| s[c] / s.iter().sum::<f64>().max(f64::MIN_POSITIVE))
        .collect();
    Ok(ClassCircuits {
        class_impact: sums,
        top_class,
        purity,
    })
}
