//! The GEMM against a naive triple loop: exact small-integer products into NaN-filled outputs,
//! every kernel (packed and small) on every instruction set the CPU has, on its own.

use super::*;
use crate::Float;

/// Small integers: every product and partial sum is exact, so any order gives the same bits.
fn ints(len: usize, seed: usize) -> Vec<f64> {
    (0..len)
        .map(|i| ((i * 7 + seed) % 9) as f64 - 4.0)
        .collect()
}

fn naive(a: &MatRef<f64>, b: &MatRef<f64>) -> Vec<f64> {
    let mut c = vec![0.0; a.rows * b.cols];
    for i in 0..a.rows {
        for j in 0..b.cols {
            c[i * b.cols + j] = (0..a.cols).map(|p| a.at(i, p) * b.at(p, j)).sum();
        }
    }
    c
}

/// The two kernels: packed, and small.
#[derive(Debug, Clone, Copy)]
enum Path {
    Packed(Isa),
    Small(Isa),
}

/// Runs one kernel whatever the size (the packed one needs `k > 0`).
fn product(
    path: Path,
    alpha: f64,
    a: MatRef<f64>,
    b: MatRef<f64>,
    beta: f64,
    mut c: MatMut<f64>,
    s: &mut GemmScratch<f64>,
) {
    match path {
        Path::Packed(isa) if a.cols > 0 => {
            let ops = Operands {
                a: std::slice::from_ref(&a),
                b: BSource::Strided(std::slice::from_ref(&b)),
                upper: false,
            };
            packed(isa, alpha, ops, beta, &mut c, s)
        }
        Path::Packed(isa) | Path::Small(isa) => small_path(isa, alpha, &a, &b, beta, &mut c, s),
    }
}

/// Every instruction set of this CPU; those it lacks are skipped with a message.
fn isas() -> Vec<Isa> {
    for isa in Isa::ALL.into_iter().filter(|isa| !isa.supported()) {
        eprintln!("skipping {isa:?}: this CPU lacks it");
    }
    Isa::available()
}

fn paths() -> Vec<Path> {
    let isas = isas();
    isas.iter()
        .map(|&i| Path::Packed(i))
        .chain(isas.iter().map(|&i| Path::Small(i)))
        .collect()
}

#[test]
fn matches_naive_for_every_size_to_16_layout_and_path() {
    let mut scratch = GemmScratch::default();
    for isa in paths() {
        for m in 0..=16 {
            for k in 0..=16 {
                // Every width to 16, and past the widest panel (NR = 32).
                for n in (0..=16).chain([17, 33]) {
                    let (ad, bd) = (ints(m * k, 1), ints(k * n, 2));
                    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                        let a = if ta {
                            MatRef::rows(&ad, k, m).t()
                        } else {
                            MatRef::rows(&ad, m, k)
                        };
                        let b = if tb {
                            MatRef::rows(&bd, n, k).t()
                        } else {
                            MatRef::rows(&bd, k, n)
                        };
                        let mut c = vec![f64::NAN; m * n];
                        product(
                            isa,
                            1.0,
                            a,
                            b,
                            0.0,
                            MatMut::rows(&mut c, m, n),
                            &mut scratch,
                        );
                        assert_eq!(c, naive(&a, &b), "{isa:?} {m}x{k}x{n} {ta} {tb}");
                    }
                }
            }
        }
    }
}

#[test]
fn block_sizes_are_multiples_of_every_tile() {
    fn check<T: Float>() {
        let shapes = [
            (<T::Avx512 as Kernel<T>>::MR, <T::Avx512 as Kernel<T>>::NR),
            (<T::Avx2 as Kernel<T>>::MR, <T::Avx2 as Kernel<T>>::NR),
            (
                <T::Baseline as Kernel<T>>::MR,
                <T::Baseline as Kernel<T>>::NR,
            ),
        ];
        for (mr, nr) in shapes {
            assert_eq!((MC % mr, NC % nr), (0, 0), "{}: {mr} x {nr}", T::NAME);
        }
    }
    check::<f32>();
    check::<f64>();
}

#[test]
fn large_odd_sizes_blocks_alpha_beta_and_row_strides() {
    // Past every block size (MC = 96, KC = 256, NC = 512), into a wider output.
    let (m, k, n, stride) = (101, 300, 530, 533);
    let (ad, bd) = (ints(m * k, 3), ints(k * n, 4));
    let (a, b) = (MatRef::rows(&ad, m, k), MatRef::rows(&bd, k, n));
    let expect = naive(&a, &b);
    for isa in paths() {
        let mut scratch = GemmScratch::default();
        let mut c: Vec<f64> = (0..m * stride).map(|i| (i % 5) as f64).collect();
        let before = c.clone();
        product(
            isa,
            2.0,
            a,
            b,
            -1.0,
            MatMut::new(&mut c, m, n, stride),
            &mut scratch,
        );
        for i in 0..m {
            for j in 0..stride {
                let at = i * stride + j;
                let want = if j < n {
                    2.0 * expect[i * n + j] - before[at]
                } else {
                    before[at]
                };
                assert_eq!(c[at], want, "{isa:?} ({i}, {j})");
            }
        }
    }
}

#[test]
fn prepacked_b_gives_the_same_bits() {
    let mut pre = PackedB::default();
    for (m, k, n) in [(7, 3, 5), (40, 300, 530), (101, 17, 33), (3, 0, 4)] {
        let (ad, bd) = (ints(m * k, 5), ints(k * n, 6));
        for tb in [false, true] {
            let b = if tb {
                MatRef::rows(&bd, n, k).t()
            } else {
                MatRef::rows(&bd, k, n)
            };
            let a = MatRef::rows(&ad, m, k);
            let mut want = vec![1.0; m * n];
            let mut got = vec![1.0; m * n];
            let mut scratch = GemmScratch::default();
            if k > 0 {
                let ops = Operands {
                    a: std::slice::from_ref(&a),
                    b: BSource::Strided(std::slice::from_ref(&b)),
                    upper: false,
                };
                packed(
                    Isa::active(),
                    1.0,
                    ops,
                    0.5,
                    &mut MatMut::rows(&mut want, m, n),
                    &mut scratch,
                );
            } else {
                want.fill(0.5);
            }
            pre.pack(b);
            gemm_prepacked(
                1.0,
                a,
                &pre,
                0.5,
                MatMut::rows(&mut got, m, n),
                &mut scratch,
            );
            assert_eq!(got, want, "{m}x{k}x{n} {tb}");
        }
    }
}

#[test]
fn a_sum_of_parts_equals_the_product_of_the_joined_operands() {
    // Parts of k across a KC = 256 boundary, empty parts, both layouts, beta 0 and not.
    let (m, n) = (45, 37);
    for lens in [
        vec![3, 0, 5],
        vec![32, 32, 128],
        vec![200, 0, 100, 7],
        vec![1],
    ] {
        let k: usize = lens.iter().sum();
        let (ad, bd) = (ints(m * k, 7), ints(k * n, 8));
        let (whole_a, whole_b) = (MatRef::rows(&ad, m, k), MatRef::rows(&bd, k, n));
        let expect = naive(&whole_a, &whole_b);
        // Part j: columns of A (as a column-major copy when j is odd) and rows of B.
        let mut a_store = Vec::new();
        let mut start = 0;
        for (j, &len) in lens.iter().enumerate() {
            let part: Vec<f64> = if j % 2 == 1 {
                (0..len * m)
                    .map(|x| ad[(x % m) * k + start + x / m])
                    .collect()
            } else {
                (0..m * len)
                    .map(|x| ad[(x / len.max(1)) * k + start + x % len.max(1)])
                    .collect()
            };
            a_store.push((part, start, len));
            start += len;
        }
        let parts_a: Vec<MatRef<f64>> = a_store
            .iter()
            .enumerate()
            .map(|(j, (data, _, len))| {
                if j % 2 == 1 {
                    MatRef::rows(data, *len, m).t()
                } else {
                    MatRef::rows(data, m, *len)
                }
            })
            .collect();
        let parts_b: Vec<MatRef<f64>> = a_store
            .iter()
            .map(|(_, start, len)| MatRef::rows(&bd[start * n..(start + len) * n], *len, n))
            .collect();
        for isa in isas() {
            for beta in [0.0, 0.5] {
                let mut c = vec![if beta == 0.0 { f64::NAN } else { 2.0 }; m * n];
                let mut scratch = GemmScratch::default();
                let out = MatMut::rows(&mut c, m, n);
                gemm_sum_with(isa, 2.0, &parts_a, &parts_b, beta, out, &mut scratch);
                for (x, y) in c.iter().zip(&expect) {
                    let want = 2.0 * y + if beta == 0.0 { 0.0 } else { 1.0 };
                    assert_eq!(*x, want, "{isa:?} parts {lens:?} beta {beta}");
                }
            }
        }
    }
}

#[test]
fn a_gram_from_blocks_of_rows_is_the_same() {
    // Blocks of 1, 7 and 32 rows of a 70-column Gram (some end mid-tile), then the mirror.
    let (d, cols) = (90, 70);
    let fd: Vec<f32> = (0..d * cols)
        .map(|i| ((i * 29 % 97) as f32).cos())
        .collect();
    let f = MatRef::rows(&fd, d, cols);
    let mut whole = vec![0f32; cols * cols];
    let mut scratch = GemmScratch::default();
    gram(f, &mut whole, &mut scratch);
    for block in [1, 7, 32] {
        let mut k = vec![f32::NAN; cols * cols];
        for (b, rows) in k.chunks_mut(block * cols).enumerate() {
            gram_rows(f, b * block, rows, &mut scratch);
        }
        mirror_upper(&mut k, cols);
        let same = k
            .iter()
            .zip(&whole)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "blocks of {block} rows");
    }
}

#[test]
fn the_gram_from_its_upper_tiles_is_the_whole_product() {
    // Exact on integers for every path, past MC = 96 and NR; the f32 result equals the
    // plain product bit for bit (the same sums), and is symmetric.
    for (d, cols) in [(1, 1), (5, 3), (40, 7), (17, 33), (300, 128), (64, 130)] {
        let fd = ints(d * cols, 9);
        let f = MatRef::rows(&fd, d, cols);
        let expect = naive(&f.t(), &f);
        for isa in isas() {
            let mut k = vec![f64::NAN; cols * cols];
            gram_with(isa, f, &mut k, &mut GemmScratch::default());
            assert_eq!(k, expect, "{isa:?} {d} x {cols}");
        }
        let f32s: Vec<f32> = (0..d * cols)
            .map(|i| ((i * 37 % 101) as f32).sin())
            .collect();
        let f = MatRef::rows(&f32s, d, cols);
        let mut plain = vec![0f32; cols * cols];
        let mut scratch = GemmScratch::default();
        gemm(
            1.0,
            f.t(),
            f,
            0.0,
            MatMut::rows(&mut plain, cols, cols),
            &mut scratch,
        );
        let mut k = vec![f32::NAN; cols * cols];
        gram(f, &mut k, &mut scratch);
        for i in 0..cols {
            for j in 0..cols {
                assert_eq!(k[i * cols + j].to_bits(), k[j * cols + i].to_bits());
                assert_eq!(k[i * cols + j].to_bits(), plain[i * cols + j].to_bits());
            }
        }
    }
}

#[test]
fn f32_agrees_with_f64_and_k_zero_scales_c() {
    let (m, k, n) = (37, 70, 45);
    let ad: Vec<f32> = (0..m * k)
        .map(|i| ((i * 13) % 17) as f32 / 17.0 - 0.5)
        .collect();
    let bd: Vec<f32> = (0..k * n)
        .map(|i| ((i * 11) % 19) as f32 / 19.0 - 0.5)
        .collect();
    let a64: Vec<f64> = ad.iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = bd.iter().map(|&x| x as f64).collect();
    let expect = naive(&MatRef::rows(&a64, m, k), &MatRef::rows(&b64, k, n));
    for isa in isas() {
        let mut c = vec![0f32; m * n];
        let mut scratch = GemmScratch::default();
        gemm_with(
            isa,
            1.0,
            MatRef::rows(&ad, m, k),
            MatRef::rows(&bd, k, n),
            0.0,
            MatMut::rows(&mut c, m, n),
            &mut scratch,
        );
        for (x, y) in c.iter().zip(&expect) {
            // 70 terms of magnitude <= 0.25: rounding error well below 1e-5.
            assert!((*x as f64 - y).abs() < 1e-5, "{isa:?}: {x} vs {y}");
        }
    }
    let mut c = vec![3.0f64; 6];
    let mut scratch = GemmScratch::default();
    gemm(
        1.0,
        MatRef::rows(&[], 2, 0),
        MatRef::rows(&[], 0, 3),
        0.5,
        MatMut::rows(&mut c, 2, 3),
        &mut scratch,
    );
    assert_eq!(c, vec![1.5; 6]);
}
