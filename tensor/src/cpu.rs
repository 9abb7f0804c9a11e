//! The instruction sets the kernels are compiled for, detected once, and [`multiversion!`](crate::multiversion),
//! the one way in the workspace to run code compiled for more than the target's baseline.
//!
//! The workspace is built for the baseline of its target (SSE2 on x86-64), so a hot loop that
//! should use AVX2 or AVX-512 is written once, as plain Rust the compiler vectorises, and run
//! as `multiversion!(hot_loop(..))`: the macro expands the call once per instruction set, each
//! copy in its own closure, which [`avx512`] or [`avx2`] calls from a function compiled with
//! the instruction set's target features. A closure called from one place is inlined there,
//! with every `#[inline(always)]` function it calls, and so compiled for those features.
//!
//! The instruction set changes speed, not results, except where a kernel chooses otherwise:
//! the compiler never fuses `a * b + c` on its own, so a loop of plain arithmetic gives the same
//! bits on every instruction set. Only the GEMM's microkernels use fused multiply-adds where
//! the instruction set has them (`gemm::Element`).
//!
//! To force a lower instruction set (for a test or a bench on the portable fallback), set
//! `TENSOR_ISA` to `avx2` or `baseline`: [`Isa::active`] reads it once and never goes above
//! the CPU's own. Tests of one kernel pass each of [`Isa::available`] explicitly instead.

use std::sync::OnceLock;

/// The environment variable that lowers [`Isa::active`].
const ISA_VARIABLE: &str = "TENSOR_ISA";

/// An instruction set the kernels are compiled for, narrowest first: `a <= b` when a CPU
/// that runs `b` runs `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// The target's baseline (SSE2 on x86-64): the portable fallback, the only one elsewhere.
    Baseline,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512F and AVX-512VL, with AVX2 and FMA.
    Avx512,
}

impl Isa {
    /// Every instruction set, widest first.
    pub const ALL: [Isa; 3] = [Isa::Avx512, Isa::Avx2, Isa::Baseline];

    /// The instruction set kernels use: the widest this CPU supports, or lower if
    /// `TENSOR_ISA` asks for it. Decided once per process. Panics if `TENSOR_ISA` names no
    /// instruction set.
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let widest = hardware();
            match std::env::var(ISA_VARIABLE) {
                Ok(name) => Isa::parse(&name).min(widest),
                Err(_) => widest,
            }
        })
    }

    /// Whether this CPU can run code compiled for `self`.
    pub fn supported(self) -> bool {
        self <= hardware()
    }

    /// Every instruction set this CPU supports, widest first (for tests and benches that run
    /// each on its own).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.supported()).collect()
    }

    /// The instruction set named by a value of `TENSOR_ISA`.
    fn parse(name: &str) -> Isa {
        match name.trim().to_ascii_lowercase().as_str() {
            "avx512" => Isa::Avx512,
            "avx2" => Isa::Avx2,
            "baseline" => Isa::Baseline,
            _ => panic!("{ISA_VARIABLE}={name:?}: expected avx512, avx2 or baseline"),
        }
    }
}

#[cold]
#[inline(never)]
fn lacks(isa: Isa) -> ! {
    panic!("this CPU lacks {isa:?}, the instruction set asked for")
}

/// The widest instruction set this CPU supports, detected once.
fn hardware() -> Isa {
    static HARDWARE: OnceLock<Isa> = OnceLock::new();
    *HARDWARE.get_or_init(detect)
}

fn detect() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl") {
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}

/// `$body` compiled for the active instruction set ([`Isa::active`]), or for a given one with
/// `multiversion!(isa => $body)` (which panics if the CPU lacks it). `$body` is expanded once
/// per instruction set, each copy in its own closure, so that each is inlined into the
/// function compiled for its instruction set: put the loop in `$body`, or in
/// `#[inline(always)]` functions it calls (a call that is not inlined runs at the baseline).
#[macro_export]
macro_rules! multiversion {
    ($isa:expr => $body:expr) => {
        match $isa {
            $crate::Isa::Avx512 => $crate::cpu::avx512(|| $body),
            $crate::Isa::Avx2 => $crate::cpu::avx2(|| $body),
            $crate::Isa::Baseline => $body,
        }
    };
    ($body:expr) => {
        $crate::multiversion!($crate::Isa::active() => $body)
    };
}

/// `f()` compiled for AVX-512 (F and VL, with AVX2 and FMA): called from a function built with
/// those features, into which `f` is inlined if this is its only call. Panics if the CPU lacks
/// them. [`multiversion!`](crate::multiversion) picks between this, [`avx2`] and the baseline.
#[inline(always)]
pub fn avx512<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx512.supported() {
        // SAFETY: `supported` found AVX-512F, AVX-512VL, AVX2 and FMA on this CPU, every
        // feature `with_avx512` is compiled with; its body is safe code.
        return unsafe { with_avx512(f) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = f;
    lacks(Isa::Avx512)
}

/// `f()` compiled for AVX2 with FMA, as [`avx512`] is for AVX-512. Panics if the CPU lacks them.
#[inline(always)]
pub fn avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.supported() {
        // SAFETY: `supported` found AVX2 and FMA on this CPU, the features `with_avx2` is
        // compiled with; its body is safe code.
        return unsafe { with_avx2(f) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = f;
    lacks(Isa::Avx2)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
#[inline]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_set_is_supported_and_the_baseline_always_is() {
        assert!(Isa::active().supported());
        assert!(Isa::Baseline.supported());
        let available = Isa::available();
        assert_eq!(available.last(), Some(&Isa::Baseline));
        assert!(available.windows(2).all(|w| w[0] > w[1]), "widest first");
        for isa in Isa::ALL {
            if !isa.supported() {
                eprintln!("skipping {isa:?}: this CPU lacks it");
            }
        }
    }

    #[test]
    fn multiversion_gives_the_bodys_value_on_every_available_set() {
        let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.37 - 100.0).collect();
        let plain: Vec<f32> = x.iter().map(|v| v * v + 1.5).collect();
        for isa in Isa::available() {
            let got: Vec<f32> =
                crate::multiversion!(isa => x.iter().map(|v| v * v + 1.5).collect());
            assert_eq!(got, plain, "{isa:?}");
        }
    }

    #[test]
    fn asking_for_a_missing_set_panics() {
        if let Some(&missing) = Isa::ALL.iter().find(|isa| !isa.supported()) {
            let run = std::panic::catch_unwind(|| crate::multiversion!(missing => 1));
            assert!(run.is_err(), "{missing:?}");
        }
    }

    #[test]
    fn names_parse_in_any_case() {
        assert_eq!(Isa::parse("AVX2"), Isa::Avx2);
        assert_eq!(Isa::parse(" baseline\n"), Isa::Baseline);
        assert_eq!(Isa::parse("avx512"), Isa::Avx512);
    }

    #[test]
    #[should_panic(expected = "expected avx512, avx2 or baseline")]
    fn an_unknown_name_is_refused() {
        Isa::parse("sse9");
    }
}
