//! Seeded random tensors. Every generator is a `ChaCha8Rng` (see `rng`), so a seed gives the
//! same values on every machine and for every thread count: values are drawn serially, in
//! row-major order.

use crate::element::Float;
use crate::tensor::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The project's random generator, seeded.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

impl<T: Float> Tensor<T> {
    /// Independent standard-normal values times `std`.
    pub fn randn(shape: &[usize], std: f64, rng: &mut impl Rng) -> Self {
        Self::from_fn(shape, |_| {
            let z: f64 = StandardNormal.sample(rng);
            T::from_f64(z * std)
        })
    }

    /// Independent values uniform on `[low, high)`.
    pub fn uniform(shape: &[usize], low: f64, high: f64, rng: &mut impl Rng) -> Self {
        Self::from_fn(shape, |_| T::from_f64(rng.gen_range(low..high)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        let a = Tensor::<f32>::randn(&[4, 5], 1.0, &mut rng(7));
        let b = Tensor::<f32>::randn(&[4, 5], 1.0, &mut rng(7));
        let c = Tensor::<f32>::randn(&[4, 5], 1.0, &mut rng(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let u = Tensor::<f64>::uniform(&[1000], 0.0, 3.0, &mut rng(1));
        assert!(u.data().iter().all(|&v| (0.0..3.0).contains(&v)));
        assert!((u.mean_all() - 1.5).abs() < 0.2);
    }
}
