//! Decoder renormalisation without allocating, for the fast path's training loop: the same
//! scaling as [`Decomposition::renormalise_decoder`] (each decoder subnetwork to unit norm over
//! all its tensors, the factor spread evenly over the modes), computed from the diagonal blocks
//! of the mode Grams only.
//!
//! `|V_out[v]|^2 = sum_t sum_{r, s} prod_m <F_m[:, vR + r], F_m[:, vR + s]>`: `n_v R^2` inner
//! products per mode instead of the full `[n_v R, n_v R]` Gram of `CpTensor::term_gram`.

use super::encode::fit;
use crate::decomposition::Decomposition;
use tensor::Float;

/// Scratch for [`renormalise_decoder`]: reused, it only grows.
#[derive(Debug, Clone, Default)]
pub struct RenormScratch<T> {
    sq: Vec<T>,
    blocks: Vec<T>,
    scale: Vec<T>,
    per_mode: Vec<T>,
}

/// Scales each decoder subnetwork of `d` to unit norm (a subnetwork of norm 0 is left as it is).
pub fn renormalise_decoder<T: Float>(d: &mut Decomposition<T>, scratch: &mut RenormScratch<T>) {
    let n_v = d.n_v;
    fit(&mut scratch.sq, n_v);
    scratch.sq.fill(T::zero());
    for cp in &d.decoder {
        let (rank, cols, modes) = (cp.rank, cp.columns(), cp.factors.len());
        let block = rank * rank;
        fit(&mut scratch.blocks, modes * n_v * block);
        scratch.blocks.fill(T::zero());
        for (f, blocks) in cp
            .factors
            .iter()
            .zip(scratch.blocks.chunks_exact_mut(n_v * block))
        {
            for row in f.data().chunks_exact(cols) {
                for (x, b) in row.chunks_exact(rank).zip(blocks.chunks_exact_mut(block)) {
                    for (&xr, b_row) in x.iter().zip(b.chunks_exact_mut(rank)) {
                        for (bs, &xs) in b_row.iter_mut().zip(x) {
                            *bs += xr * xs;
                        }
                    }
                }
            }
        }
        for v in 0..n_v {
            for k in 0..block {
                let at = v * block + k;
                let product =
                    (0..modes).fold(T::one(), |p, m| p * scratch.blocks[m * n_v * block + at]);
                scratch.sq[v] += product;
            }
        }
    }
    fit(&mut scratch.scale, n_v);
    for (s, &sq) in scratch.scale.iter_mut().zip(&scratch.sq) {
        let norm = sq.max(T::zero()).sqrt();
        *s = if norm > T::zero() {
            T::one() / norm
        } else {
            T::one()
        };
    }
    fit(&mut scratch.per_mode, n_v);
    for cp in &mut d.decoder {
        let (rank, cols, modes) = (cp.rank, cp.columns(), cp.factors.len());
        // As `CpTensor::scale_subnetworks`: scale^(1 / modes) on every mode (the scale is
        // positive here, so no sign goes to the first mode).
        for (p, s) in scratch.per_mode.iter_mut().zip(&scratch.scale) {
            *p = T::from_f64(s.to_f64().powf(1.0 / modes as f64));
        }
        for f in cp.factors.iter_mut() {
            for row in f.data_mut().chunks_exact_mut(cols) {
                for (x, &p) in row.chunks_exact_mut(rank).zip(&scratch.per_mode) {
                    for xi in x.iter_mut() {
                        *xi *= p;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cp::CpTensor;
    use tensor::rng;

    #[test]
    fn equals_the_reference_renormalisation() {
        let mut r = rng(2);
        let shapes = [vec![4, 3], vec![4], vec![2, 3, 2]];
        let decoder: Vec<CpTensor<f64>> = shapes
            .iter()
            .map(|s| CpTensor::random(s, 3, if s.len() > 1 { 2 } else { 1 }, 0.7, &mut r))
            .collect();
        let mut d = Decomposition {
            n_v: 3,
            names: vec!["a".into(), "b".into(), "c".into()],
            param_index: vec![0, 1, 2],
            encoder: decoder.clone(),
            decoder,
        };
        d.decoder[1].factors[0].data_mut()[..3].fill(0.0);
        let mut reference = d.clone();
        reference.renormalise_decoder();
        renormalise_decoder(&mut d, &mut RenormScratch::default());
        for (a, b) in d.decoder.iter().zip(&reference.decoder) {
            for (fa, fb) in a.factors.iter().zip(&b.factors) {
                assert!(fa.max_abs_diff(fb) < 1e-12);
            }
        }
        for n in d.decoder_norms() {
            assert!((n - 1.0).abs() < 1e-12);
        }
    }
}
