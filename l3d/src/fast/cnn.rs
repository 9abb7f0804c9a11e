//! Per-sample gradients of a convolution followed by dense layers without the tape (a model
//! with a [`ConvView`]: conv2d, an activation, an optional max pool, flatten, then an MLP),
//! one forward and one backward pass per chunk into buffers reused from step to step.
//!
//! # Legend
//!
//! - `n` samples of a chunk; images `x: [n, C, H, W]`; the kernel `W: [out, K]` read as a
//!   matrix, `K = C kh kw` taps in `(c, i, j)` order (PyTorch's `[out, C, kh, kw]`).
//! - `M = OH OW` output positions; `patches: [n M, K]`, the im2col rows of every sample's
//!   positions in row order (as the tape's `unfold2d`).
//! - `z = patches W^T + b: [n M, out]` (position-major per sample), `a = act(z)`.
//! - The pool takes, for every channel and pooled position, the largest `a` of its window
//!   (on ties the first in row-major window order, a NaN smaller than every number, as the
//!   tape's `max_pool2d`), flattened in `(channel, row, column)` order: the dense layers'
//!   input `h: [n, out PH PW]` (`crate::mlp`'s pass from there on).
//!
//! # Backward
//!
//! With `delta_0` the first dense layer's `dD/dz` (`crate::mlp`), `dh = delta_0 W_0: [n, flat]`;
//! each `dh` entry goes to the `a` its pool took (`dA`, zero elsewhere), and the conv's
//! `delta = dA * act'(z): [n M, out]`. Sample `i`'s kernel gradient is
//! `sum_p delta_ip patch_ip^T` (kept factored, `M` rows per sample), its bias gradient
//! `sum_p delta_ip` (dense).

use super::layout::{Split, CHUNK_ROWS};
use super::pass::{ChunkedPass, PassNet};
use crate::config::Divergence;
use crate::decomposition::Decomposition;
use crate::error::{L3dError, Result};
use crate::mlp::{activate_in_place, MlpChunk, MlpNet, Role};
use nets::{Activation, ConvView, MlpLayer, MlpView, Model};
use tensor::gemm::{gemm, GemmScratch, MatMut, MatRef};
use tensor::{Float, Tensor, Window2d};

/// What a parameter tensor is to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CnnRole {
    Kernel,
    ConvBias,
    Dense(Role),
}

/// A tensor whose gradients arrive factored: the kernel, or dense layer `l`'s weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Factor {
    Kernel,
    Weight(usize),
}

/// A tensor whose gradients arrive dense: the conv's bias, or dense layer `l`'s bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sum {
    ConvBias,
    Bias(usize),
}

/// A validated [`ConvView`].
#[derive(Debug, Clone)]
pub(crate) struct CnnNet<'m, T: Float> {
    w: &'m Tensor<T>,
    b: Option<&'m Tensor<T>>,
    act: Activation,
    image: [usize; 3],
    out: usize,
    /// `(OH, OW)`, and `K` taps per position.
    positions: (usize, usize),
    taps: usize,
    /// `(PH, PW)`: the pooled positions (the conv's own without a pool).
    pooled: (usize, usize),
    dense: MlpNet<'m, T>,
    roles: Vec<CnnRole>,
    /// For each of one sample's `M K` patch entries, its index in the image, or [`PADDING`].
    tap_source: Vec<usize>,
    /// For each entry of one sample's dense input, the indices in its `z: [M, out]` of the
    /// pool's window in row-major window order (`window_len` of them; one without a pool).
    window_source: Vec<usize>,
    window_len: usize,
}

/// A patch entry in the padding.
const PADDING: usize = usize::MAX;

impl<'m, T: Float> CnnNet<'m, T> {
    /// The network of `model`, `None` if the model has no conv view (or one with no dense
    /// layer), or an error naming what in its view does not fit the model.
    pub fn of(model: &'m dyn Model<T>) -> Result<Option<Self>> {
        let Some(view) = model.as_conv() else {
            return Ok(None);
        };
        if view.tail.is_empty() {
            return Ok(None);
        }
        Self::from_view(view, model.output_dim()).map(Some)
    }

    fn from_view(view: ConvView<'m, T>, output_dim: usize) -> Result<Self> {
        let bad = |msg: String| L3dError::Model(format!("the model's conv view: {msg}"));
        let [c, h, wd] = view.image;
        let w = *view
            .params
            .get(view.weight)
            .ok_or_else(|| bad("no kernel".into()))?;
        let (kh, kw) = view.window.kernel;
        let &[out, wc, wkh, wkw] = w.shape() else {
            return Err(bad(format!("the kernel has shape {:?}", w.shape())));
        };
        if (wc, wkh, wkw) != (c, kh, kw) {
            return Err(bad(format!(
                "the kernel {:?} does not fit images of {c} channels and a {kh}x{kw} window",
                w.shape()
            )));
        }
        let b = match view.bias {
            Some(i) => {
                let b = *view.params.get(i).ok_or_else(|| bad("no bias".into()))?;
                if b.shape() != [out] {
                    return Err(bad(format!("the bias has shape {:?}", b.shape())));
                }
                Some(b)
            }
            None => None,
        };
        let size = |window: &Window2d, shape: [usize; 4]| {
            window
                .try_output_size("conv view", &shape)
                .map_err(|e| bad(e.to_string()))
        };
        let positions = size(&view.window, [1, c, h, wd])?;
        let pooled = match &view.pool {
            Some(p) => size(p, [1, out, positions.0, positions.1])?,
            None => positions,
        };
        // The dense layers' parameters follow the conv's.
        let first = 1 + usize::from(b.is_some());
        let shift = |i: usize| {
            i.checked_sub(first)
                .ok_or_else(|| bad(format!("dense layer parameter {i} is the conv's")))
        };
        let layers = view
            .tail
            .iter()
            .map(|l| {
                Ok(MlpLayer {
                    weight: shift(l.weight)?,
                    bias: l.bias.map(shift).transpose()?,
                    activation: l.activation,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let params = view.params.get(first..).unwrap_or_default().to_vec();
        let flat = out * pooled.0 * pooled.1;
        let dense = MlpNet::from_view(MlpView { params, layers }, flat, output_dim, CHUNK_ROWS)?;
        let mut roles = vec![CnnRole::Kernel];
        if b.is_some() {
            roles.push(CnnRole::ConvBias);
        }
        roles.extend(dense.roles.iter().map(|&r| CnnRole::Dense(r)));
        let tap_source = tap_sources(view.image, &view.window, positions);
        let (window_source, window_len) =
            window_sources(out, positions, pooled, view.pool.as_ref());
        Ok(Self {
            w,
            b,
            act: view.activation,
            image: view.image,
            out,
            positions,
            taps: c * kh * kw,
            pooled,
            dense,
            roles,
            tap_source,
            window_source,
            window_len,
        })
    }

    /// `M`, the conv's output positions.
    fn m(&self) -> usize {
        self.positions.0 * self.positions.1
    }

    fn input_len(&self) -> usize {
        self.image.iter().product()
    }

    fn flat(&self) -> usize {
        self.out * self.pooled.0 * self.pooled.1
    }
}

/// The buffers of one chunk of up to `n` samples.
///
/// Invariant: after [`CnnChunk::forward`], `patches`, `z`, `da` and `taken` hold the chunk's
/// `n` samples and `dense` its dense layers' forward; after [`CnnChunk::backward`], `delta`
/// and `bias_grad` hold the conv's gradients and `dense` its dense layers' `delta`s.
#[derive(Debug, Clone, Default)]
pub(crate) struct CnnChunk<T> {
    n: usize,
    x: Vec<T>,
    patches: Vec<T>,
    z: Vec<T>,
    da: Vec<T>,
    /// For every entry of the dense layers' input, the index in `z` of the `a` it took.
    taken: Vec<usize>,
    delta: Vec<T>,
    bias_grad: Vec<T>,
    dh: Vec<T>,
    dense: MlpChunk<T>,
    gemm: GemmScratch<T>,
}

impl<T: Float> CnnChunk<T> {
    /// Buffers for up to `n` samples of `net` (allocates; steps reuse them).
    pub fn new(net: &CnnNet<T>, n: usize) -> Self {
        let rows = n * net.m();
        Self {
            n: 0,
            x: vec![T::zero(); n * net.input_len()],
            patches: vec![T::zero(); rows * net.taps],
            z: vec![T::zero(); rows * net.out],
            da: vec![T::zero(); rows * net.out],
            taken: vec![0; n * net.flat()],
            delta: vec![T::zero(); rows * net.out],
            bias_grad: vec![T::zero(); n * net.out],
            dh: vec![T::zero(); n * net.flat()],
            dense: MlpChunk::new(&net.dense, n),
            gemm: GemmScratch::default(),
        }
    }

    /// Copies `rows` of `data` (`[N, C, H, W]`) into `x`.
    pub fn gather(&mut self, data: &Tensor<T>, rows: &[usize]) {
        let len = data.row_len();
        self.n = rows.len();
        for (dst, &r) in self.x.chunks_exact_mut(len).zip(rows) {
            dst.copy_from_slice(data.row(r));
        }
    }

    /// The output rows of the last forward pass.
    pub fn output(&self, net: &CnnNet<T>) -> &[T] {
        self.dense.output(&net.dense)
    }

    /// Unfold, the conv, its activation, the pool, then the dense layers.
    pub fn forward(&mut self, net: &CnnNet<T>) {
        let (n, m, k, out) = (self.n, net.m(), net.taps, net.out);
        let rows = n * m;
        unfold(
            net,
            &self.x[..n * net.input_len()],
            &mut self.patches[..rows * k],
        );
        let z = &mut self.z[..rows * out];
        // z = patches W^T: [n M, K] @ [K, out].
        gemm(
            T::one(),
            MatRef::rows(&self.patches[..rows * k], rows, k),
            MatRef::rows(net.w.data(), out, k).t(),
            T::zero(),
            MatMut::rows(z, rows, out),
            &mut self.gemm,
        );
        if let Some(b) = net.b {
            for row in z.chunks_exact_mut(out) {
                for (zi, &bi) in row.iter_mut().zip(b.data()) {
                    *zi += bi;
                }
            }
        }
        // z becomes a = act(z); da = act'(z).
        activate_in_place(net.act, z, &mut self.da[..rows * out]);
        self.dense.n = n;
        let sizes = (n, net.m() * out);
        let (h, taken) = (&mut self.dense.x, &mut self.taken);
        pool(&net.window_source, net.window_len, sizes, z, h, taken);
        self.dense.forward(&net.dense);
    }

    /// The dense layers' `delta`s, then the conv's `delta` and bias gradients, from the
    /// reference rows `r`.
    pub fn backward(&mut self, net: &CnnNet<T>, r: &[T], divergence: Divergence) {
        let (n, out, flat) = (self.n, net.out, net.flat());
        let rows = n * net.m();
        self.dense.backward(&net.dense, r, divergence, 0);
        let first = &net.dense.layers[0];
        let dh = &mut self.dh[..n * flat];
        // dh = delta_0 W_0: [n, d_1] @ [d_1, flat].
        gemm(
            T::one(),
            MatRef::rows(self.dense.layer_delta(&net.dense, 0), n, first.n_out),
            MatRef::rows(first.w.data(), first.n_out, flat),
            T::zero(),
            MatMut::rows(dh, n, flat),
            &mut self.gemm,
        );
        let delta = &mut self.delta[..rows * out];
        delta.fill(T::zero());
        for (&g, &at) in dh.iter().zip(&self.taken[..n * flat]) {
            delta[at] += g;
        }
        for (d, &da) in delta.iter_mut().zip(&self.da) {
            *d *= da;
        }
        let per_sample = net.m() * out;
        let sums = self.bias_grad[..n * out].chunks_exact_mut(out);
        for (sum, sample) in sums.zip(delta.chunks_exact(per_sample)) {
            sum.fill(T::zero());
            for row in sample.chunks_exact(out) {
                for (s, &d) in sum.iter_mut().zip(row) {
                    *s += d;
                }
            }
        }
    }
}

/// Where each of one sample's `M K` patch entries comes from:
/// `patches[p, (c, i, j)] = x[c, y sh + i dh - ph, x sw + j dw - pw]` for position
/// `p = (y, x)`, as an index into the image `[C, H, W]`, or [`PADDING`].
fn tap_sources(image: [usize; 3], window: &Window2d, (oh, ow): (usize, usize)) -> Vec<usize> {
    let [c, h, w] = image;
    let Window2d {
        kernel: (kh, kw),
        stride: (sh, sw),
        padding: (ph, pw),
        dilation: (dh, dw),
    } = *window;
    let mut out = Vec::with_capacity(oh * ow * c * kh * kw);
    for y in 0..oh {
        for xo in 0..ow {
            for channel in 0..c {
                for i in 0..kh {
                    let yy = (y * sh + i * dh).checked_sub(ph).filter(|&v| v < h);
                    for j in 0..kw {
                        let xx = (xo * sw + j * dw).checked_sub(pw).filter(|&v| v < w);
                        out.push(match (yy, xx) {
                            (Some(yy), Some(xx)) => (channel * h + yy) * w + xx,
                            _ => PADDING,
                        });
                    }
                }
            }
        }
    }
    out
}

/// For each entry `(channel, py, px)` of one sample's dense input, the indices in its
/// `z: [M, out]` of the pool's window `(py sh + i, px sw + j)` in row-major order, and the
/// window's size (without a pool, the entry's own position, a window of one).
fn window_sources(
    out: usize,
    (_, ow): (usize, usize),
    (ph, pw): (usize, usize),
    pool: Option<&Window2d>,
) -> (Vec<usize>, usize) {
    let (kernel, stride) = pool.map_or(((1, 1), (1, 1)), |p| (p.kernel, p.stride));
    let at = |y: usize, x: usize, c: usize| (y * ow + x) * out + c;
    let mut sources = Vec::with_capacity(out * ph * pw * kernel.0 * kernel.1);
    for c in 0..out {
        for py in 0..ph {
            for px in 0..pw {
                for i in 0..kernel.0 {
                    for j in 0..kernel.1 {
                        sources.push(at(py * stride.0 + i, px * stride.1 + j, c));
                    }
                }
            }
        }
    }
    (sources, kernel.0 * kernel.1)
}

/// `patches[s M + p, (c, i, j)] = x[s, c, y sh + i dh - ph, x sw + j dw - pw]` (0 in the
/// padding) for position `p = (y, x)`, from the table of [`tap_sources`].
fn unfold<T: Float>(net: &CnnNet<T>, x: &[T], patches: &mut [T]) {
    let len = net.input_len();
    let per_sample = net.tap_source.len();
    for (image, rows) in x
        .chunks_exact(len)
        .zip(patches.chunks_exact_mut(per_sample))
    {
        for (tap, &at) in rows.iter_mut().zip(&net.tap_source) {
            *tap = if at == PADDING { T::zero() } else { image[at] };
        }
    }
}

/// The dense layers' input `h[s, (c, py, px)]` from `a: [n M, out]` (`per_sample = M out`
/// values per sample), and where each entry was taken from: of the window `windows[k]` of
/// entry `k` ([`window_sources`]), the largest `a`, on ties the first in row-major window
/// order, a NaN smaller than every number.
fn pool<T: Float>(
    windows: &[usize],
    window_len: usize,
    (n, per_sample): (usize, usize),
    a: &[T],
    h: &mut [T],
    taken: &mut [usize],
) {
    let flat = windows.len() / window_len;
    let windows = windows.chunks_exact(window_len);
    for (s, (a, (h, taken))) in a
        .chunks_exact(per_sample)
        .zip(h.chunks_exact_mut(flat).zip(taken.chunks_exact_mut(flat)))
        .take(n)
        .enumerate()
    {
        let base = s * per_sample;
        for ((hk, tk), window) in h.iter_mut().zip(taken.iter_mut()).zip(windows.clone()) {
            let mut best = window[0];
            let mut b = a[best];
            for &t in &window[1..] {
                let v = a[t];
                // Without branches: which value wins is data, and mispredicts cost more
                // than the selects.
                let take = (v > b) | (b.is_nan() & !v.is_nan());
                let mask = usize::from(take).wrapping_neg();
                best = (t & mask) | (best & !mask);
                // `v` exactly when `take` (up to the sign of a zero on ties; the entry is
                // read back from `best` below).
                b = b.max(v);
            }
            *hk = a[best];
            *tk = base + best;
        }
    }
}

/// A model with a conv view: the kernel's gradient factored (`M` rows per sample), the conv's
/// bias dense, the dense layers as in the MLP pass; computed per chunk into reused buffers.
pub(crate) type CnnPass<'m, T> = ChunkedPass<'m, T, CnnNet<'m, T>, CnnChunk<T>, Factor, Sum>;

impl<T: Float> PassNet<T> for CnnNet<'_, T> {
    type Chunk = CnnChunk<T>;
    type Factored = Factor;
    type Dense = Sum;

    fn layout(&self, d: &Decomposition<T>) -> (Split, Vec<Factor>, Vec<Sum>) {
        let mut split = Split::default();
        let (mut factored, mut dense) = (Vec::new(), Vec::new());
        for (&param, cp) in d.param_index.iter().zip(&d.encoder) {
            match self.roles[param] {
                CnnRole::Kernel => {
                    split.push_factored(self.out, self.taps, self.m());
                    factored.push(Factor::Kernel);
                }
                CnnRole::Dense(Role::Weight(l)) => {
                    let layer = &self.dense.layers[l];
                    split.push_factored(layer.n_out, layer.n_in, 1);
                    factored.push(Factor::Weight(l));
                }
                CnnRole::ConvBias => {
                    split.push_dense(cp.numel());
                    dense.push(Sum::ConvBias);
                }
                CnnRole::Dense(Role::Bias(l)) => {
                    split.push_dense(cp.numel());
                    dense.push(Sum::Bias(l));
                }
            }
        }
        (split, factored, dense)
    }

    fn new_chunk(&self, n: usize) -> CnnChunk<T> {
        CnnChunk::new(self, n)
    }

    /// The conv's product, then each dense layer's forward, its `delta` and `dh`.
    fn work_per_sample(&self) -> usize {
        let dense: usize = self.dense.layers.iter().map(|l| l.n_in * l.n_out).sum();
        self.m() * self.taps * self.out + 3 * dense
    }

    fn width(&self) -> usize {
        self.dense.output_dim
    }

    fn gather(&self, c: &mut CnnChunk<T>, data: &Tensor<T>, rows: &[usize]) {
        c.gather(data, rows);
    }

    fn forward(&self, c: &mut CnnChunk<T>) {
        c.forward(self);
    }

    fn output<'c>(&self, c: &'c CnnChunk<T>) -> &'c [T] {
        c.output(self)
    }

    fn backward(&self, c: &mut CnnChunk<T>, r: &[T], divergence: Divergence) {
        c.backward(self, r, divergence);
    }

    fn outer_rows<'c>(&'c self, c: &'c CnnChunk<T>, role: &Factor) -> (&'c [T], &'c [T]) {
        match *role {
            Factor::Kernel => {
                let rows = c.n * self.m();
                (&c.delta[..rows * self.out], &c.patches[..rows * self.taps])
            }
            Factor::Weight(l) => (
                c.dense.layer_delta(&self.dense, l),
                c.dense.layer_input(&self.dense, l),
            ),
        }
    }

    fn dense_rows<'c>(&'c self, c: &'c CnnChunk<T>, role: &Sum) -> &'c [T] {
        match *role {
            Sum::ConvBias => &c.bias_grad[..c.n * self.out],
            Sum::Bias(l) => c.dense.layer_delta(&self.dense, l),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first largest value of each window, a NaN below every number, by comparisons.
    fn naive(a: &[f64], window: &[usize]) -> usize {
        let mut best = window[0];
        for &t in window {
            let (v, b) = (a[t], a[best]);
            if v > b || (b.is_nan() && !v.is_nan()) {
                best = t;
            }
        }
        best
    }

    #[test]
    fn the_pool_takes_the_first_largest_and_a_number_over_a_nan() {
        // Two samples of a 4x4 map with 2 channels, 2x2 windows of stride 2.
        let (out, positions, pooled) = (2, (4, 4), (2, 2));
        let window = Window2d {
            kernel: (2, 2),
            stride: (2, 2),
            padding: (0, 0),
            dilation: (1, 1),
        };
        let (sources, len) = window_sources(out, positions, pooled, Some(&window));
        assert_eq!((sources.len(), len), (out * 4 * 4, 4));
        let per_sample = 16 * out;
        // Ties, zeros of both signs, NaN first, NaN last, all NaN, a NaN beside a tie.
        let nan = f64::NAN;
        let mut a: Vec<f64> = (0..2 * per_sample)
            .map(|i| [1.0, 3.0, 3.0, -0.0, 0.0, 2.0, nan, -1.0][i * 7 % 8])
            .collect();
        a[per_sample..per_sample + 8].fill(nan);
        let (mut h, mut taken) = (vec![0.0; 2 * 8], vec![0; 2 * 8]);
        pool(&sources, len, (2, per_sample), &a, &mut h, &mut taken);
        for s in 0..2 {
            let a_s = &a[s * per_sample..(s + 1) * per_sample];
            for (k, w) in sources.chunks_exact(len).enumerate() {
                let want = naive(a_s, w);
                assert_eq!(
                    taken[s * 8 + k],
                    s * per_sample + want,
                    "sample {s}, entry {k}"
                );
                let (got, exp) = (h[s * 8 + k], a_s[want]);
                assert!(got.to_bits() == exp.to_bits(), "sample {s}, entry {k}");
            }
        }
        // Without a pool, each entry is its own position.
        let (sources, len) = window_sources(out, positions, positions, None);
        assert_eq!(len, 1);
        let at = |c: usize, y: usize, x: usize| (y * 4 + x) * out + c;
        assert_eq!(sources[16 + 4 + 3], at(1, 1, 3));
    }
}
