//! Optimisers over a list of parameter tensors: AdamW (decoupled weight decay, as PyTorch
//! defines it) and SGD with momentum, and a step learning-rate schedule.

use rayon::prelude::*;
use tensor::{Float, Tensor};

/// Elements per parallel chunk of an optimiser update (steps of fewer than twice this many
/// elements in all run on the calling thread).
const UPDATE_CHUNK: usize = 1 << 13;

/// One chunk of an AdamW update: parameters, gradients, first and second moments.
type Update<'a, T> = (((&'a mut [T], &'a [T]), &'a mut [T]), &'a mut [T]);

/// `lr(epoch) = base * gamma^floor(epoch / step)`: the learning rate multiplied by `gamma`
/// every `step` epochs (`step = 0`: constant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLr {
    pub base: f64,
    pub gamma: f64,
    pub step: usize,
}

impl StepLr {
    pub fn at(&self, epoch: usize) -> f64 {
        if self.step == 0 {
            return self.base;
        }
        self.base * self.gamma.powi((epoch / self.step) as i32)
    }
}

/// AdamW hyperparameters (PyTorch's defaults but for the learning rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW. For each parameter `p` with gradient `g`, at step `t` (counted from 1):
///
/// ```text
/// p <- p (1 - lr wd)                        decoupled weight decay
/// m <- b1 m + (1 - b1) g
/// v <- b2 v + (1 - b2) g^2
/// p <- p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// ```
///
/// Invariant: `m` and `v` hold one tensor per parameter, of its shape. The state (`t`, `m`,
/// `v`) is public so that checkpoints can save and restore it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW<T: Float> {
    pub config: AdamWConfig,
    pub t: u64,
    pub m: Vec<Tensor<T>>,
    pub v: Vec<Tensor<T>>,
}

impl<T: Float> AdamW<T> {
    /// Fresh state (zero moments) for parameters of the given shapes.
    pub fn new(config: AdamWConfig, shapes: &[Vec<usize>]) -> Self {
        Self {
            config,
            t: 0,
            m: shapes.iter().map(|s| Tensor::zeros(s)).collect(),
            v: shapes.iter().map(|s| Tensor::zeros(s)).collect(),
        }
    }

    /// One step at learning rate `lr` (the schedule's value; `config.lr` is the base).
    /// Panics if the parameters and gradients do not match the state's shapes.
    pub fn step(&mut self, lr: f64, params: &mut [Tensor<T>], grads: &[Tensor<T>]) {
        self.step_refs(lr, params.iter_mut().collect(), grads);
    }

    /// [`AdamW::step`] for parameters held in different places.
    pub fn step_refs(&mut self, lr: f64, params: Vec<&mut Tensor<T>>, grads: &[Tensor<T>]) {
        assert_eq!(params.len(), self.m.len(), "AdamW: parameter count changed");
        self.step_iter(lr, params, grads);
    }

    /// [`AdamW::step`] for parameters given by an iterator (no list of them is built, so a
    /// training loop can step without allocating). Panics if the count or a shape differs.
    pub fn step_iter<'p>(
        &mut self,
        lr: f64,
        params: impl IntoIterator<Item = &'p mut Tensor<T>>,
        grads: &[Tensor<T>],
    ) where
        T: 'p,
    {
        assert_eq!(grads.len(), self.m.len(), "AdamW: gradient count");
        self.t += 1;
        let c = self.config;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
        let (one_b1, one_b2) = (T::from_f64(1.0 - c.beta1), T::from_f64(1.0 - c.beta2));
        let decay = T::from_f64(1.0 - lr * c.weight_decay);
        let step = T::from_f64(lr / bc1);
        let inv_sqrt_bc2 = T::from_f64(1.0 / bc2.sqrt());
        let eps = T::from_f64(c.eps);
        let k = AdamWStep {
            decay,
            b1,
            one_b1,
            b2,
            one_b2,
            step,
            inv_sqrt_bc2,
            eps,
        };
        // The tensors are cut into chunks of at most UPDATE_CHUNK elements, gathered (on the
        // stack) into batches of UNITS, and each batch is updated as one parallel loop: one
        // fork and join for many small tensors. Every element is updated on its own, so how
        // the work is cut changes no result.
        const UNITS: usize = 64;
        let parallel = rayon::current_num_threads() > 1;
        let mut units: [Option<Update<T>>; UNITS] = [const { None }; UNITS];
        let mut queued = 0;
        let mut elements = 0;
        let flush = |units: &mut [Option<Update<T>>], elements: usize| {
            let run = |u: &mut Option<Update<T>>| k.apply(u.take().expect("a queued chunk"));
            if parallel && elements >= 2 * UPDATE_CHUNK {
                units.par_iter_mut().with_max_len(1).for_each(run);
            } else {
                units.iter_mut().for_each(run);
            }
        };
        let state = self.m.iter_mut().zip(self.v.iter_mut());
        let mut params = params.into_iter();
        for (i, (g, (m, v))) in grads.iter().zip(state).enumerate() {
            let p = params.next().expect("AdamW: parameter count changed");
            assert_eq!(p.shape(), g.shape(), "AdamW: gradient {i} shape");
            let chunks = p
                .data_mut()
                .chunks_mut(UPDATE_CHUNK)
                .zip(g.data().chunks(UPDATE_CHUNK))
                .zip(m.data_mut().chunks_mut(UPDATE_CHUNK))
                .zip(v.data_mut().chunks_mut(UPDATE_CHUNK));
            for unit in chunks {
                if !parallel {
                    // One thread: nothing to gather for.
                    k.apply(unit);
                    continue;
                }
                elements += unit.0 .0 .0.len();
                units[queued] = Some(unit);
                queued += 1;
                if queued == UNITS {
                    flush(&mut units[..queued], elements);
                    (queued, elements) = (0, 0);
                }
            }
        }
        flush(&mut units[..queued], elements);
        assert!(params.next().is_none(), "AdamW: parameter count changed");
    }
}

/// The coefficients of one AdamW step (see [`AdamW`]).
#[derive(Clone, Copy)]
struct AdamWStep<T> {
    decay: T,
    b1: T,
    one_b1: T,
    b2: T,
    one_b2: T,
    step: T,
    inv_sqrt_bc2: T,
    eps: T,
}

impl<T: Float> AdamWStep<T> {
    /// Updates one chunk, compiled for the active instruction set. Each element is computed by
    /// the same IEEE operations (no fused multiply-add) whatever the instruction set, so the
    /// result has the same bits on every path.
    fn apply(&self, chunk: Update<T>) {
        tensor::multiversion!(self.apply_portable(chunk));
    }

    #[inline(always)]
    fn apply_portable(&self, (((p, g), m), v): Update<T>) {
        let k = *self;
        for (((pj, &gj), mj), vj) in p.iter_mut().zip(g).zip(m).zip(v) {
            *pj *= k.decay;
            *mj = k.b1 * *mj + k.one_b1 * gj;
            *vj = k.b2 * *vj + k.one_b2 * gj * gj;
            *pj -= k.step * *mj / (vj.sqrt() * k.inv_sqrt_bc2 + k.eps);
        }
    }
}

/// SGD with optional momentum (PyTorch's form: `b <- mu b + g; p <- p - lr b`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd<T: Float> {
    pub momentum: f64,
    pub buffers: Vec<Tensor<T>>,
}

impl<T: Float> Sgd<T> {
    pub fn new(momentum: f64, shapes: &[Vec<usize>]) -> Self {
        Self {
            momentum,
            buffers: shapes.iter().map(|s| Tensor::zeros(s)).collect(),
        }
    }

    pub fn step(&mut self, lr: f64, params: &mut [Tensor<T>], grads: &[Tensor<T>]) {
        assert_eq!(
            params.len(),
            self.buffers.len(),
            "SGD: parameter count changed"
        );
        let (mu, lr) = (T::from_f64(self.momentum), T::from_f64(lr));
        for ((p, g), b) in params.iter_mut().zip(grads).zip(&mut self.buffers) {
            for ((pj, &gj), bj) in p.data_mut().iter_mut().zip(g.data()).zip(b.data_mut()) {
                *bj = mu * *bj + gj;
                *pj -= lr * *bj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adamw_first_two_steps_by_hand() {
        // One parameter p = 1, gradient g = 0.5, lr 0.1, wd 0.1, b1 .9, b2 .999, eps 1e-8.
        // Step 1: p <- 1 (1 - 0.01) = 0.99; m = 0.05; v = 0.00025;
        //   m^ = 0.05 / 0.1 = 0.5; v^ = 0.00025 / 0.001 = 0.25; p <- 0.99 - 0.1 * 0.5 / 0.5 = 0.89.
        // Step 2 (g = 0.5 again): p <- 0.89 * 0.99 = 0.8811; m = 0.095; v = 0.00049975;
        //   m^ = 0.095 / 0.19 = 0.5; v^ = 0.00049975 / 0.001999 = 0.25; p <- 0.8811 - 0.1 = 0.7811.
        let config = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::<f64>::new(config, &[vec![1]]);
        let mut p = vec![Tensor::from_vec(&[1], vec![1.0])];
        let g = vec![Tensor::from_vec(&[1], vec![0.5])];
        // eps enters as 0.1 * 0.5 / (0.5 + 1e-8) instead of 0.1.
        let adam_step = 0.1 * 0.5 / (0.5 + 1e-8);
        opt.step(0.1, &mut p, &g);
        let p1 = 0.99 - adam_step;
        assert!((p[0].data()[0] - p1).abs() < 1e-12, "{:?}", p[0]);
        opt.step(0.1, &mut p, &g);
        assert!(
            (p[0].data()[0] - (p1 * 0.99 - adam_step)).abs() < 1e-12,
            "{:?}",
            p[0]
        );
    }

    #[test]
    fn the_vector_update_gives_the_bits_of_the_scalar_one() {
        let k = AdamWStep {
            decay: 0.999f32,
            b1: 0.9,
            one_b1: 0.1,
            b2: 0.999,
            one_b2: 0.001,
            step: 0.01,
            inv_sqrt_bc2: 3.0,
            eps: 1e-8,
        };
        let init = |seed: usize| -> Vec<f32> {
            (0..1000)
                .map(|i| ((i * 37 + seed) % 101) as f32 / 50.0 - 1.0)
                .collect()
        };
        let g = init(3);
        let (mut p1, mut m1, mut v1) = (
            init(1),
            init(2),
            init(4).iter().map(|x| x * x).collect::<Vec<_>>(),
        );
        let (p0, m0, v0) = (p1.clone(), m1.clone(), v1.clone());
        k.apply_portable((((&mut p1, &g), &mut m1), &mut v1));
        for isa in tensor::Isa::available() {
            let (mut p2, mut m2, mut v2) = (p0.clone(), m0.clone(), v0.clone());
            tensor::multiversion!(isa => k.apply_portable((((&mut p2, &g), &mut m2), &mut v2)));
            assert_eq!((&p1, &m1, &v1), (&p2, &m2, &v2), "{isa:?}");
        }
    }

    #[test]
    fn sgd_with_momentum_by_hand() {
        // b = 1, p = 2 - 0.5 = 1.5; then b = 0.5 + 1 = 1.5, p = 1.5 - 0.75 = 0.75.
        let mut opt = Sgd::<f64>::new(0.5, &[vec![1]]);
        let mut p = vec![Tensor::from_vec(&[1], vec![2.0])];
        let g = vec![Tensor::from_vec(&[1], vec![1.0])];
        opt.step(0.5, &mut p, &g);
        assert_eq!(p[0].data()[0], 1.5);
        opt.step(0.5, &mut p, &g);
        assert_eq!(p[0].data()[0], 0.75);
    }

    #[test]
    fn step_lr_decays_every_step_epochs() {
        let s = StepLr {
            base: 0.01,
            gamma: 0.8,
            step: 100,
        };
        assert_eq!(s.at(99), 0.01);
        assert!((s.at(100) - 0.008).abs() < 1e-15);
        assert!((s.at(250) - 0.0064).abs() < 1e-15);
    }
}
