//! PyTorch's default initialisation of a model given as an architecture, for the networks
//! this crate trains or benchmarks as a PyTorch user would have them (the digits networks,
//! the induction transformer, the `cnn` and `attention` benchmark cases).

use nets::Architecture;
use rand::Rng;
use tensor::Tensor;

/// PyTorch's default initialisation of every slot of `arch`, in slot order: embedding tables
/// `N(0, 1)` (`nn.Embedding`); a weight `[out, ..]` (linear, convolution, attention
/// projection) `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in` the product of its other
/// axes; a bias the same bound as the weight before it.
///
/// Panics if `arch` does not list its slots (the benchmark architectures do).
pub fn pytorch_default_init(arch: &Architecture, rng: &mut impl Rng) -> Vec<Tensor<f32>> {
    let (slots, _) = arch.slots().expect("the architecture lists its slots");
    let tables = arch.embedding_tables();
    let mut bound = 1.0;
    slots
        .iter()
        .map(|slot| {
            if tables.contains(&slot.name) {
                return Tensor::randn(&slot.shape, 1.0, rng);
            }
            if slot.shape.len() >= 2 {
                let fan_in: usize = slot.shape[1..].iter().product();
                bound = 1.0 / (fan_in as f64).sqrt();
            }
            Tensor::uniform(&slot.shape, -bound, bound, rng)
        })
        .collect()
}
