//! Half-precision floats (IEEE 754 binary16 and bfloat16) widened to `f32`, exactly.
//!
//! binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
//! bfloat16: 1 sign bit, 8 exponent bits (bias 127), 7 mantissa bits: the top half of an `f32`.
//! Every value of either format is an `f32` value, so the conversions never round.

/// The `f32` equal to the binary16 value with bits `bits`; infinities stay infinite and NaNs
/// stay NaN (with their payload shifted into the `f32` mantissa).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let magnitude = match exponent {
        // Subnormal: mantissa * 2^-24, an exact product (both are f32 values, the result too).
        0 => mantissa as f32 / 16_777_216.0,
        // Infinity (mantissa 0) or NaN.
        0x1f => f32::from_bits(0x7f80_0000 | (mantissa << 13)),
        // Normal: rebias the exponent from 15 to 127, widen the mantissa from 10 to 23 bits.
        _ => f32::from_bits(((exponent + 127 - 15) << 23) | (mantissa << 13)),
    };
    f32::from_bits(magnitude.to_bits() | sign)
}

/// The `f32` equal to the bfloat16 value with bits `bits`.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_bit_patterns() {
        let cases: [(u16, f32); 12] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3800, 0.5),
            (0x3555, 0.333_251_95),   // 1365/4096: the f16 nearest to 1/3
            (0x7bff, 65504.0),        // the largest finite f16
            (0x0400, 6.103_515_6e-5), // 2^-14, the smallest normal
            (0x0001, 5.960_464_5e-8), // 2^-24, the smallest subnormal
            (0x03ff, 6.097_555e-5),   // 1023 * 2^-24, the largest subnormal
            (0x8001, -5.960_464_5e-8),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, expected) in cases {
            assert_eq!(f16_to_f32(bits), expected, "bits {bits:#06x}");
        }
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
        assert!(f16_to_f32(0x7e00).is_nan());
        assert!(f16_to_f32(0xfc01).is_nan());
    }

    /// Every finite binary16 value against the definition
    /// `(-1)^s * 2^(e - 15) * (1 + m / 1024)`, or `(-1)^s * 2^-14 * (m / 1024)` when `e = 0`,
    /// computed in f64.
    #[test]
    fn f16_every_finite_pattern_matches_the_definition() {
        for bits in 0..=u16::MAX {
            let (s, e, m) = (bits >> 15, (bits >> 10) & 0x1f, f64::from(bits & 0x3ff));
            if e == 0x1f {
                continue;
            }
            let magnitude = if e == 0 {
                2f64.powi(-14) * (m / 1024.0)
            } else {
                2f64.powi(i32::from(e) - 15) * (1.0 + m / 1024.0)
            };
            let expected = if s == 1 { -magnitude } else { magnitude };
            assert_eq!(f64::from(f16_to_f32(bits)), expected, "bits {bits:#06x}");
        }
    }

    #[test]
    fn bf16_known_bit_patterns() {
        let cases: [(u16, f32); 8] = [
            (0x0000, 0.0),
            (0x3f80, 1.0),
            (0xc000, -2.0),
            (0x3eab, 0.333_984_38),    // 171/512: the bf16 just above 1/3
            (0x7f7f, 3.389_531_4e38),  // the largest finite bf16
            (0x0080, 1.175_494_4e-38), // 2^-126, the smallest normal
            (0x7f80, f32::INFINITY),
            (0xff80, f32::NEG_INFINITY),
        ];
        for (bits, expected) in cases {
            assert_eq!(bf16_to_f32(bits), expected, "bits {bits:#06x}");
        }
        assert_eq!(bf16_to_f32(0x0001), f32::from_bits(0x0001_0000)); // a subnormal
        assert!(bf16_to_f32(0x7fc0).is_nan());
    }
}
