//! GELU and its derivative over `f32` rows in one vectorised pass ([`Float::gelu_rows`] for
//! `f32`, used by `l3d`'s hand-written MLP pass): `a = x Phi(x)` and `a' = Phi(x) + x phi(x)`
//! with `Phi(x) = (1 + erf(x / sqrt 2)) / 2` and `phi(x) = e^(-x^2 / 2) / sqrt(2 pi)`.
//!
//! `libm`'s `erff` and `expf` (what the tape and `f64` use) are scalar calls of 10 to 20 ns, and
//! `l3d`'s `mlp-wide` benchmark case evaluates 32,768 GELUs a step, a tenth of its fast path's
//! time. Here both come from approximations the compiler vectorises:
//!
//! - `erf(x) = x p(x^2) / q(x^2)` on `x` clamped to `[-4, 4]` (beyond, `erf = +-1` in `f32`):
//!   the rational minimax approximation of degree 13/8 that Eigen and XLA use for `f32`
//!   (coefficients below). Absolute error below 4e-7, three units in the last place of 1
//!   (`tests`).
//! - `e^x = 2^k e^r`, `k = round(x log2 e)`, `r = x - k ln 2` (ln 2 in two parts, so `r` is
//!   exact), `e^r` by the Cephes `expf` polynomial of degree 7, `2^k` from the exponent bits.
//!   Relative error below 3e-7 on `[-87, 88]` (`tests`).
//!
//! So this `f32` GELU differs from [`crate::elementwise::gelu`] (the tape's) by rounding-level
//! amounts; `f64` keeps `libm`.
//!
//! [`Float::gelu_rows`]: crate::Float::gelu_rows

/// `1 / sqrt(2)`.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Numerator coefficients of `erf`, highest power of `x^2` first.
const ERF_P: [f32; 7] = [
    -2.726_142_3e-10,
    2.770_681_4e-8,
    -2.101_024e-6,
    -5.692_506_4e-5,
    -7.349_906_3e-4,
    -2.954_6e-3,
    -1.609_603_3e-2,
];
/// Denominator coefficients of `erf`, highest power of `x^2` first.
const ERF_Q: [f32; 5] = [
    -1.456_607_2e-5,
    -2.133_740_6e-4,
    -1.682_827e-3,
    -7.373_329e-3,
    -1.426_473_9e-2,
];
/// Cephes `expf`: `e^r = 1 + r + r^2 (c_0 + r (c_1 + ...))`, highest power first.
const EXP_C: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    5e-1,
];

/// `erf(x)`, vectorisable (see the module docs).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ERF_P.iter().fold(0.0, |acc, &c| acc * x2 + c);
    let q = ERF_Q.iter().fold(0.0, |acc, &c| acc * x2 + c);
    x * p / q
}

/// `e^x`, vectorisable, for `x` in `[-87, 88]` (clamped to it; `e^-87` is `f32`'s smallest
/// normal scale).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E).round();
    let r = x - k * LN2_HI - k * LN2_LO;
    let p = EXP_C.iter().fold(0.0, |acc, &c| acc * r + c);
    let e_r = 1.0 + r + r * r * p;
    // 2^k from the exponent field: k is in [-126, 127] for x in [-87, 88].
    e_r * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// `a[i] = gelu(z[i])`, `da[i] = gelu'(z[i])` over equal-length slices.
#[inline(always)]
fn gelu_loop(z: &[f32], a: &mut [f32], da: &mut [f32]) {
    for ((ai, di), &x) in a.iter_mut().zip(da.iter_mut()).zip(z) {
        let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
        let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * x * x);
        *ai = x * cdf;
        *di = cdf + x * pdf;
    }
}

/// GELU and its derivative of `z` into `a` and `da`, compiled for the active instruction set
/// (the same IEEE operations on each, so the same bits). Panics unless the three lengths agree.
pub(crate) fn gelu_f32(z: &[f32], a: &mut [f32], da: &mut [f32]) {
    assert!(
        z.len() == a.len() && z.len() == da.len(),
        "gelu_f32: lengths"
    );
    crate::multiversion!(gelu_loop(z, a, da));
}

/// `x[i] <- e^x[i]` in place, compiled for the active instruction set.
#[inline(always)]
fn exp_loop(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = exp(*v);
    }
}

/// `x[i] <- e^x[i]` by the approximation above ([`crate::Float::exp_rows`] for `f32`).
pub(crate) fn exp_f32(x: &mut [f32]) {
    crate::multiversion!(exp_loop(x));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_4e_7_of_libm() {
        let worst = (-8000..=8000)
            .map(|i| i as f32 * 1e-3)
            .map(|x| (erf(x) - <f32 as crate::Float>::erf(x)).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 4e-7, "largest error {worst}");
    }

    #[test]
    fn exp_is_within_3e_7_relative_of_std() {
        let worst = (-8700..=8800)
            .map(|i| i as f32 * 1e-2)
            .map(|x| ((exp(x) - x.exp()) / x.exp()).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 3e-7, "largest relative error {worst}");
    }

    #[test]
    fn exp_rows_is_the_approximation_on_every_instruction_set() {
        let x: Vec<f32> = (-9000..9000).map(|i| i as f32 * 1e-2 + 3e-4).collect();
        let mut rows = x.clone();
        <f32 as crate::Float>::exp_rows(&mut rows);
        for (&r, &v) in rows.iter().zip(&x) {
            assert_eq!(r.to_bits(), exp(v).to_bits(), "e^{v}");
        }
        for isa in crate::Isa::available() {
            let mut y = x.clone();
            crate::multiversion!(isa => exp_loop(&mut y));
            assert!(
                y.iter().zip(&rows).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{isa:?}"
            );
        }
        // f64 keeps libm's.
        let mut z = [0.5f64, -3.0];
        <f64 as crate::Float>::exp_rows(&mut z);
        assert_eq!(z, [0.5f64.exp(), (-3.0f64).exp()]);
    }

    #[test]
    fn every_instruction_set_gives_the_portable_loops_bits() {
        let z: Vec<f32> = (-3000..3000).map(|i| i as f32 * 3e-3 + 1e-4).collect();
        let (mut a, mut da) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        gelu_loop(&z, &mut a, &mut da);
        for isa in crate::Isa::available() {
            let (mut a_isa, mut da_isa) = (vec![f32::NAN; z.len()], vec![f32::NAN; z.len()]);
            crate::multiversion!(isa => gelu_loop(&z, &mut a_isa, &mut da_isa));
            let same =
                |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same(&a, &a_isa) && same(&da, &da_isa), "{isa:?}");
        }
    }

    #[test]
    fn gelu_and_its_derivative_match_the_tapes_formulas() {
        let z: Vec<f32> = (-2000..2000).map(|i| i as f32 * 4e-3 + 1e-4).collect();
        let (mut a, mut da) = (vec![0.0; z.len()], vec![0.0; z.len()]);
        gelu_f32(&z, &mut a, &mut da);
        for ((&x, &ai), &di) in z.iter().zip(&a).zip(&da) {
            let (want_a, want_d) = (
                crate::elementwise::gelu(x),
                crate::elementwise::gelu_grad(x),
            );
            assert!(
                (ai - want_a).abs() <= 1e-6 * (1.0 + want_a.abs()),
                "gelu({x})"
            );
            assert!((di - want_d).abs() <= 1e-6, "gelu'({x})");
        }
    }
}
