//! The factors prepared once per step for every chunk's encode: a factored tensor's factors
//! packed for the chunks' products with them, a dense tensor's dense form `V^T` per side, and
//! a factored tensor's right factor per side when it has more than two modes (the
//! Khatri-Rao product of its factors after the first, `fast/dense.rs`).

use super::dense::{dense_form, dense_form_is_factor, right_factor, DenseScratch};
use super::layout::{Side, Split};
use crate::decomposition::Decomposition;
use crate::par::each;
use tensor::gemm::{takes_packing, MatRef, PackedB};
use tensor::Float;

/// Factor `m` of factored tensor `k` on one side, packed once per step for the chunks'
/// products with it (only when there are several chunks and the product is large enough to
/// pack).
#[derive(Debug, Default)]
struct FactorPack<T> {
    k: usize,
    m: usize,
    pack: StepPack<T>,
}

/// A right operand packed once per step for the chunks' products with it, when it was worth
/// packing (several chunks, each product large enough).
#[derive(Debug, Default)]
struct StepPack<T> {
    packed: PackedB<T>,
    active: bool,
}

impl<T: Float> StepPack<T> {
    /// Packs `b` for this step if `wanted`; otherwise the step has nothing packed.
    fn update(&mut self, wanted: bool, b: MatRef<'_, T>) {
        self.active = wanted;
        if wanted {
            self.packed.pack(b);
        }
    }

    /// The packed operand, if this step packed it.
    fn get(&self) -> Option<&PackedB<T>> {
        self.active.then_some(&self.packed)
    }
}

/// A buffer formed once per step from the factors of one side of tensor `k`: a dense tensor's
/// dense form `V^T: [numel, n_v]` (unused for a vector of rank 1, whose factor is its dense
/// form), or a factored tensor's right factor `KR(F_1, .., F_last): [prod_{m >= 1} d_m, C]`
/// (formed only when the tensor has more than two modes; for two, `F_1` is it).
#[derive(Debug)]
struct Formed<T> {
    k: usize,
    side: Side,
    v: Vec<T>,
    scratch: DenseScratch<T>,
    /// A dense form packed for the chunks' encodes, once per step rather than per chunk.
    pack: StepPack<T>,
}

impl<T: Float> Formed<T> {
    /// Empty buffers for both sides of tensors `0..count`, tensor `k`'s at `2 k` (encoder)
    /// and `2 k + 1` (decoder).
    fn both_sides(count: usize) -> Vec<Self> {
        (0..count)
            .flat_map(|k| {
                Side::BOTH.map(|side| Formed {
                    k,
                    side,
                    v: Vec::new(),
                    scratch: DenseScratch::default(),
                    pack: StepPack::default(),
                })
            })
            .collect()
    }
}

/// Every factored tensor's packed factors and right factors and every dense tensor's dense
/// forms, reused from step to step.
///
/// Invariant: `packs[side]` holds factor `m` of factored tensor `k` at `2 k + m` (`m = 1`: the
/// right factor); `forms` holds dense tensor `k`'s forms and `rights` factored tensor `k`'s
/// right factors at `2 k` (encoder) and `2 k + 1` (decoder), for the split of the last
/// [`Prepared::for_split`].
#[derive(Debug)]
pub(crate) struct Prepared<T> {
    packs: [Vec<FactorPack<T>>; 2],
    forms: Vec<Formed<T>>,
    rights: Vec<Formed<T>>,
}

impl<T: Float> Prepared<T> {
    /// Empty buffers for the tensors of `split`.
    pub fn for_split(split: &Split) -> Self {
        let packs = || {
            (0..split.factored().len())
                .flat_map(|k| {
                    (0..2).map(move |m| FactorPack {
                        k,
                        m,
                        ..Default::default()
                    })
                })
                .collect()
        };
        Prepared {
            packs: [packs(), packs()],
            forms: Formed::both_sides(split.dense().len()),
            rights: Formed::both_sides(split.factored().len()),
        }
    }

    /// Packs the factors of `side` that several of the `n_chunks` chunks of up to `rows`
    /// samples multiply by.
    pub fn pack(
        &mut self,
        d: &Decomposition<T>,
        split: &Split,
        side: Side,
        (n_chunks, rows): (usize, usize),
        parallel: bool,
    ) {
        let rights = &self.rights;
        each(&mut self.packs[side.index()], parallel, |_, p| {
            let factored = &split.factored()[p.k];
            let f = match p.m {
                0 => side.of(d, factored.t).factors[0].data(),
                _ => right_of(rights, d, split, side, p.k),
            };
            let cols = side.of(d, factored.t).columns();
            let width = f.len() / cols;
            let wanted = n_chunks > 1 && takes_packing(rows * factored.m, width, cols);
            p.pack.update(wanted, MatRef::rows(f, width, cols));
        });
    }

    /// The right factors of both sides of every factored tensor of more than two modes.
    pub fn form_rights(&mut self, d: &Decomposition<T>, split: &Split) {
        for r in &mut self.rights {
            let cp = r.side.of(d, split.factored()[r.k].t);
            if cp.factors.len() > 2 {
                right_factor(cp, &mut r.v, &mut r.scratch);
            }
        }
    }

    /// The right factor of factored tensor `k` on `side`, `[q, C]` row-major: `F_1` for a
    /// matrix, the formed Khatri-Rao product of the factors after the first for more modes.
    pub fn right<'a>(
        &'a self,
        d: &'a Decomposition<T>,
        split: &Split,
        side: Side,
        k: usize,
    ) -> &'a [T] {
        right_of(&self.rights, d, split, side, k)
    }

    /// The dense forms of both sides of every dense tensor that needs one (in parallel only
    /// when they are large, as for large tensors of given gradients), packed for the chunks'
    /// products when there are several chunks of up to `rows` rows.
    pub fn form_dense(
        &mut self,
        d: &Decomposition<T>,
        split: &Split,
        (n_chunks, rows): (usize, usize),
        parallel: bool,
    ) {
        let cp_of = |f: &Formed<T>| f.side.of(d, split.dense()[f.k].t);
        let work: usize = self
            .forms
            .iter()
            .filter(|f| !dense_form_is_factor(cp_of(f)))
            .map(|f| cp_of(f).numel() * cp_of(f).columns())
            .sum();
        each(&mut self.forms, parallel && work >= 1 << 16, |_, f| {
            let cp = cp_of(f);
            let direct = dense_form_is_factor(cp);
            if !direct {
                dense_form(cp, &mut f.v, &mut f.scratch);
            }
            let (numel, n_v) = (cp.numel(), cp.n_v);
            let wanted = n_chunks > 1 && takes_packing(rows, numel, n_v);
            let v = if direct { cp.factors[0].data() } else { &f.v };
            f.pack.update(wanted, MatRef::rows(v, numel, n_v));
        });
    }

    /// Dense tensor `k`'s form on `side` packed for this step, if it was.
    pub fn dense_packed(&self, side: Side, k: usize) -> Option<&PackedB<T>> {
        let f = &self.forms[2 * k + side.index()];
        f.pack.get()
    }

    /// Factor `m` of factored tensor `k` packed for this step, if it was.
    pub fn packed(&self, side: Side, k: usize, m: usize) -> Option<&PackedB<T>> {
        let p = &self.packs[side.index()][2 * k + m];
        p.pack.get()
    }

    /// `V^T: [numel, n_v]` of dense tensor `k` on `side`: its factor itself for a vector of
    /// rank 1.
    pub fn dense_form<'a>(
        &'a self,
        d: &'a Decomposition<T>,
        split: &Split,
        side: Side,
        k: usize,
    ) -> &'a [T] {
        let cp = side.of(d, split.dense()[k].t);
        if dense_form_is_factor(cp) {
            return cp.factors[0].data();
        }
        &self.forms[2 * k + side.index()].v
    }
}

fn right_of<'a, T: Float>(
    rights: &'a [Formed<T>],
    d: &'a Decomposition<T>,
    split: &Split,
    side: Side,
    k: usize,
) -> &'a [T] {
    let cp = side.of(d, split.factored()[k].t);
    if cp.factors.len() <= 2 {
        return cp.factors[1].data();
    }
    &rights[2 * k + side.index()].v
}
