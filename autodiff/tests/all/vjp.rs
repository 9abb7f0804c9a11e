//! Every tape op's vector-Jacobian product against central finite differences in f64.
//!
//! Each case draws shapes (sizes 1 to 5, so 1 and odd sizes occur), values, and a seed; the
//! checker [`check_vjp`] draws a random cotangent (never all ones) and random directions from
//! that seed and compares `sum_i <vjp_i(u), d_i>` with the central difference of `<u, f>`.
//! Ops with a kink (relu, abs, elu) get inputs shifted away from it; log, sqrt and the
//! denominator of div get inputs bounded away from 0.

use crate::common;

use autodiff::check::check_vjp;
use autodiff::{Conv2dOptions, Result, Tape, Var, Window2d};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::seq::SliceRandom;
use rand::Rng;
use tensor::{rng, Tensor, Transpose};

/// Relative tolerance. With the checker's step h = 1e-6, truncation error is about
/// `h^2 |f'''|` (1e-12 at these scales) and rounding error about `eps |<u, f>| / h` (1e-9 for
/// sums of at most a few hundred terms of unit size), so 1e-6 leaves a wide margin, while a
/// wrong or missing vjp term is an O(1) relative error.
const TOL: f64 = 1e-6;

/// Below this magnitude of the directional derivative the error is measured absolutely
/// (1e-7 = TOL * FLOOR): a derivative near zero by chance (or exactly zero, as for `x / x`)
/// would otherwise turn the 1e-9 rounding noise into a large relative error.
const FLOOR: f64 = 0.1;

/// Where an op's inputs are drawn from.
#[derive(Debug, Clone, Copy)]
enum Domain {
    /// Standard normal.
    Any,
    /// Standard normal shifted by 1e-3 away from 0, for ops with a kink at 0. The checker
    /// moves each input by at most `h |d| < 1e-5`, so it never crosses the kink.
    AwayFromZero,
    /// Uniform on [0.5, 2): for log and sqrt.
    Positive,
    /// Uniform on (-2, -0.5] or [0.5, 2): for denominators.
    NonZero,
    /// Distinct values at least `4 / numel` apart (a shuffled grid on [-2, 2)), for maxima:
    /// the checker moves each input by at most `h |d| < 1e-5`, so no two entries swap order.
    Distinct,
}

fn values(shape: &[usize], domain: Domain, r: &mut impl Rng) -> Tensor<f64> {
    match domain {
        Domain::Any => Tensor::randn(shape, 1.0, r),
        Domain::AwayFromZero => Tensor::randn(shape, 1.0, r).map(|v: f64| v + 1e-3 * v.signum()),
        Domain::Positive => Tensor::uniform(shape, 0.5, 2.0, r),
        Domain::NonZero => {
            let sign = Tensor::randn(shape, 1.0, r).map(f64::signum);
            Tensor::uniform(shape, 0.5, 2.0, r).mul(&sign)
        }
        Domain::Distinct => {
            let n = shape.iter().product::<usize>();
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(r);
            Tensor::from_fn(shape, |i| 4.0 * order[i] as f64 / n as f64 - 2.0)
        }
    }
}

/// Runs the checker on `f` at `inputs` and fails the case with both derivatives if they differ.
fn assert_vjp(
    name: &str,
    f: impl Fn(&mut Tape<f64>, &[Var]) -> Result<Var>,
    inputs: &[Tensor<f64>],
    seed: u64,
) -> std::result::Result<(), TestCaseError> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let check = check_vjp(f, inputs, &mut rng(seed))
        .map_err(|e| TestCaseError::fail(format!("{name} on {shapes:?}: {e}")))?;
    let err = check.relative_error(FLOOR);
    prop_assert!(
        err < TOL,
        "{name} on {shapes:?}: vjp {} but finite differences {} (relative error {err:e})",
        check.analytic,
        check.numeric
    );
    Ok(())
}

/// A shape of rank `min..=max` with sizes 1 to 5.
fn dims(min: usize, max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, min..=max)
}

type Unary = fn(&mut Tape<f64>, Var) -> Var;

/// The ops of one input that accept any shape of rank at least 1.
const UNARY: &[(&str, Domain, Unary)] = &[
    ("scale", Domain::Any, |t, x| t.scale(x, -1.7)),
    ("add_scalar", Domain::Any, |t, x| t.add_scalar(x, 0.3)),
    ("neg", Domain::Any, |t, x| t.neg(x)),
    ("mask", Domain::Any, |t, x| {
        // Every third element cut from the graph, the rest kept.
        let mask = Tensor::from_fn(t.shape(x), |i| if i % 3 == 1 { 0.0 } else { 1.0 });
        t.mask(x, &mask)
    }),
    ("relu", Domain::AwayFromZero, |t, x| t.relu(x)),
    ("gelu", Domain::Any, |t, x| t.gelu(x)),
    ("elu", Domain::AwayFromZero, |t, x| t.elu(x, 0.7)),
    ("tanh", Domain::Any, |t, x| t.tanh(x)),
    ("sigmoid", Domain::Any, |t, x| t.sigmoid(x)),
    ("exp", Domain::Any, |t, x| t.exp(x)),
    ("log", Domain::Positive, |t, x| t.log(x)),
    ("square", Domain::Any, |t, x| t.square(x)),
    ("sqrt", Domain::Positive, |t, x| t.sqrt(x)),
    ("abs", Domain::AwayFromZero, |t, x| t.abs(x)),
    ("sum_all", Domain::Any, |t, x| t.sum_all(x)),
    ("mean_all", Domain::Any, |t, x| t.mean_all(x)),
    ("sum_rows", Domain::Any, |t, x| t.sum_rows(x)),
    ("log_softmax", Domain::Any, |t, x| t.log_softmax(x)),
    ("softmax", Domain::Any, |t, x| t.softmax(x)),
    ("reshape to flat", Domain::Any, |t, x| {
        let n = t.value(x).numel();
        t.reshape(x, &[n])
    }),
    ("x used twice: tanh(x) * x", Domain::Any, |t, x| {
        let y = t.tanh(x);
        t.mul(y, x)
    }),
];

type Binary = fn(&mut Tape<f64>, Var, Var) -> Result<Var>;

/// The broadcasting binary ops; the right operand is drawn from `NonZero` for all of them, so
/// `div` never divides by a number near 0.
const BINARY: &[(&str, Binary)] = &[
    ("add", |t, a, b| t.try_add(a, b)),
    ("sub", |t, a, b| t.try_sub(a, b)),
    ("mul", |t, a, b| t.try_mul(a, b)),
    ("div", |t, a, b| t.try_div(a, b)),
];

/// Operand shapes for the binary ops, from sizes `b`, `r`, `c`, covering each broadcasting
/// path of the tensor crate.
fn broadcast_pairs(b: usize, r: usize, c: usize) -> Vec<(Vec<usize>, Vec<usize>)> {
    vec![
        // Equal shapes: the zipped loop.
        (vec![r, c], vec![r, c]),
        // A trailing shape: a bias over a batch, both ways round.
        (vec![b, r, c], vec![c]),
        (vec![c], vec![b, r, c]),
        (vec![b, r, c], vec![r, c]),
        // The general walk: both operands stretched, and ranks that differ.
        (vec![r, 1], vec![1, c]),
        (vec![b, 1, c], vec![r, 1]),
        (vec![1, r, 1], vec![b, 1, c]),
        // A scalar operand.
        (vec![r, c], vec![]),
    ]
}

/// The shape of an operand stored so that its transpose-or-not is `[rows, cols]`.
fn stored(rows: usize, cols: usize, t: Transpose) -> Vec<usize> {
    match t {
        Transpose::No => vec![rows, cols],
        Transpose::Yes => vec![cols, rows],
    }
}

fn with_batch(b: usize, shape: Vec<usize>) -> Vec<usize> {
    let mut out = vec![b];
    out.extend(shape);
    out
}

fn transpose() -> impl Strategy<Value = Transpose> {
    prop_oneof![Just(Transpose::No), Just(Transpose::Yes)]
}

/// A window drawn from `(kernel, stride, padding, dilation)` and an image size `extra` pixels
/// larger (per axis) than the smallest the window fits, so that sizes 1 and odd sizes occur.
fn window_and_image(
    (kernel, stride, padding, dilation): Geometry,
    extra: (usize, usize),
) -> (Window2d, (usize, usize)) {
    let g = Window2d {
        kernel,
        stride,
        padding,
        dilation,
    };
    let least = |k: usize, d: usize, p: usize| (d * (k - 1) + 1).saturating_sub(2 * p).max(1);
    let h = least(kernel.0, dilation.0, padding.0) + extra.0;
    let w = least(kernel.1, dilation.1, padding.1) + extra.1;
    (g, (h, w))
}

type Geometry = (
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
);

/// Kernel 1 to 3, stride 1 to 3, padding 0 to 2, dilation 1 to 2, each drawn per axis.
fn geometry() -> impl Strategy<Value = Geometry> {
    let pair = |lo: usize, hi: usize| (lo..=hi, lo..=hi);
    (pair(1, 3), pair(1, 3), pair(0, 2), pair(1, 2))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn unary_ops(shape in dims(1, 3), seed in any::<u64>()) {
        for (name, domain, op) in UNARY {
            let x = values(&shape, *domain, &mut rng(seed ^ 1));
            assert_vjp(name, |t, v| Ok(op(t, v[0])), &[x], seed)?;
        }
    }

    #[test]
    fn axis_reductions(shape in dims(1, 4), axis in any::<Index>(), seed in any::<u64>()) {
        let axis = axis.index(shape.len());
        let x = values(&shape, Domain::Any, &mut rng(seed ^ 1));
        assert_vjp("sum_axis", |t, v| t.try_sum_axis(v[0], axis), std::slice::from_ref(&x), seed)?;
        assert_vjp("mean_axis", |t, v| t.try_mean_axis(v[0], axis), &[x], seed)?;
    }

    #[test]
    fn binary_ops_on_every_broadcasting_path(
        b in 1usize..=4,
        r in 1usize..=5,
        c in 1usize..=5,
        seed in any::<u64>(),
    ) {
        for (lhs, rhs) in broadcast_pairs(b, r, c) {
            let mut values_rng = rng(seed ^ 1);
            let x = values(&lhs, Domain::Any, &mut values_rng);
            let y = values(&rhs, Domain::NonZero, &mut values_rng);
            for (name, op) in BINARY {
                assert_vjp(name, |t, v| op(t, v[0], v[1]), &[x.clone(), y.clone()], seed)?;
            }
        }
    }

    #[test]
    fn binary_ops_on_a_value_used_twice(shape in dims(1, 3), seed in any::<u64>()) {
        let mut values_rng = rng(seed ^ 1);
        let x = values(&shape, Domain::NonZero, &mut values_rng);
        let y = values(&shape, Domain::Any, &mut values_rng);
        // op(x, x): both operand slots add into x's gradient (for sub and div they cancel to 0).
        for (name, op) in BINARY {
            assert_vjp(name, |t, v| op(t, v[0], v[0]), std::slice::from_ref(&x), seed)?;
        }
        assert_vjp("x * (x + y)", |t, v| {
            let s = t.try_add(v[0], v[1])?;
            t.try_mul(v[0], s)
        }, &[x.clone(), y], seed)?;
        // A bias used twice through broadcasting: (x * b) + b, with b: [last axis].
        let bias = values(&shape[shape.len() - 1..], Domain::Any, &mut values_rng);
        assert_vjp("x * b + b", |t, v| {
            let p = t.try_mul(v[0], v[1])?;
            t.try_add(p, v[1])
        }, &[x, bias], seed)?;
    }

    #[test]
    fn matmul_with_every_transpose_and_batching(
        (b, m, k, n) in (1usize..=3, 1usize..=5, 1usize..=5, 1usize..=5),
        ta in transpose(),
        tb in transpose(),
        seed in any::<u64>(),
    ) {
        let (a2, b2) = (stored(m, k, ta), stored(k, n, tb));
        let cases = [
            ("2-D @ 2-D", a2.clone(), b2.clone()),
            ("batched 3-D @ 3-D", with_batch(b, a2.clone()), with_batch(b, b2.clone())),
            // Two batch axes, as attention's [B, heads, T, dh] @ [B, heads, dh, T].
            ("batched 4-D @ 4-D", with_batch(b, with_batch(2, a2.clone())),
                with_batch(b, with_batch(2, b2.clone()))),
            ("3-D @ 2-D", with_batch(b, a2.clone()), b2.clone()),
            ("2-D @ 3-D", a2, with_batch(b, b2)),
        ];
        for (name, sa, sb) in cases {
            let mut values_rng = rng(seed ^ 1);
            let x = values(&sa, Domain::Any, &mut values_rng);
            let y = values(&sb, Domain::Any, &mut values_rng);
            let label = format!("matmul {name} ({ta:?}, {tb:?})");
            assert_vjp(&label, |t, v| t.try_matmul_t(v[0], ta, v[1], tb), &[x, y], seed)?;
        }
        // One square matrix on both sides: op(x) @ op(x).
        let x = values(&[m, m], Domain::Any, &mut rng(seed ^ 2));
        let label = format!("matmul x with itself ({ta:?}, {tb:?})");
        assert_vjp(&label, |t, v| t.try_matmul_t(v[0], ta, v[0], tb), &[x], seed)?;
    }

    #[test]
    fn linear_with_and_without_bias(
        (b, s, fan_in, fan_out) in (1usize..=4, 1usize..=3, 1usize..=5, 1usize..=5),
        seed in any::<u64>(),
    ) {
        let mut values_rng = rng(seed ^ 1);
        let w = values(&[fan_out, fan_in], Domain::Any, &mut values_rng);
        let bias = values(&[fan_out], Domain::Any, &mut values_rng);
        for x_shape in [vec![b, fan_in], vec![b, s, fan_in]] {
            let x = values(&x_shape, Domain::Any, &mut values_rng);
            assert_vjp("linear", |t, v| t.try_linear(v[0], v[1], Some(v[2])),
                &[x.clone(), w.clone(), bias.clone()], seed)?;
            assert_vjp("linear without bias", |t, v| t.try_linear(v[0], v[1], None),
                &[x, w.clone()], seed)?;
        }
    }

    #[test]
    fn reshape_permute_transpose(
        shape in dims(3, 3),
        axes in prop::sample::select(vec![
            [0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0],
        ]),
        seed in any::<u64>(),
    ) {
        let x = values(&shape, Domain::Any, &mut rng(seed ^ 1));
        let (p, q, r) = (shape[0], shape[1], shape[2]);
        assert_vjp("reshape", |t, v| t.try_reshape(v[0], &[r, p * q]), std::slice::from_ref(&x), seed)?;
        assert_vjp("permute", |t, v| t.try_permute(v[0], &axes), std::slice::from_ref(&x), seed)?;
        assert_vjp("transpose 3-D", |t, v| t.try_transpose(v[0]), std::slice::from_ref(&x), seed)?;
        let x2 = values(&[p, q], Domain::Any, &mut rng(seed ^ 2));
        assert_vjp("transpose 2-D", |t, v| t.try_transpose(v[0]), &[x2], seed)?;
        // permute then multiply by the input permuted another way: x used twice.
        assert_vjp("permute(x) * permute(x)", |t, v| {
            let a = t.try_permute(v[0], &axes)?;
            let b = t.try_permute(v[0], &axes)?;
            t.try_mul(a, b)
        }, &[x], seed)?;
    }

    #[test]
    fn gather_rows_with_repeated_indices(
        shape in dims(1, 3),
        count in 1usize..=6,
        seed in any::<u64>(),
    ) {
        let mut values_rng = rng(seed ^ 1);
        let x = values(&shape, Domain::Any, &mut values_rng);
        let rows = shape[0];
        let mut indices: Vec<usize> = (0..count).map(|_| values_rng.gen_range(0..rows)).collect();
        // Always at least one row gathered twice, so its gradient must add both.
        indices.push(indices[0]);
        assert_vjp("gather_rows", |t, v| t.try_gather_rows(v[0], &indices), &[x], seed)?;
    }

    #[test]
    fn concat_along_each_axis(
        shape in dims(1, 3),
        axis in any::<Index>(),
        extra in (1usize..=4, 1usize..=4),
        seed in any::<u64>(),
    ) {
        let axis = axis.index(shape.len());
        let mut values_rng = rng(seed ^ 1);
        let mut parts = Vec::new();
        for size in [shape[axis], extra.0, extra.1] {
            let mut s = shape.clone();
            s[axis] = size;
            parts.push(values(&s, Domain::Any, &mut values_rng));
        }
        assert_vjp("concat", |t, v| t.try_concat(v, axis), &parts, seed)?;
        // The same value twice in the list, next to another.
        assert_vjp("concat [x, y, x]", |t, v| t.try_concat(&[v[0], v[1], v[0]], axis),
            &parts[..2], seed)?;
    }

    #[test]
    fn slice_along_each_axis(
        shape in dims(1, 3),
        axis in any::<Index>(),
        cut in (any::<Index>(), any::<Index>()),
        seed in any::<u64>(),
    ) {
        let axis = axis.index(shape.len());
        let n = shape[axis];
        let (a, b) = (cut.0.index(n + 1), cut.1.index(n + 1));
        let range = a.min(b)..a.max(b);
        let x = values(&shape, Domain::Any, &mut rng(seed ^ 1));
        assert_vjp("slice_axis", |t, v| t.try_slice_axis(v[0], axis, range.clone()),
            std::slice::from_ref(&x), seed)?;
        // Two overlapping slices of one value, joined: the overlap gets both gradients.
        assert_vjp("concat [x[..b], x[a..]]", |t, v| {
            let head = t.try_slice_axis(v[0], axis, 0..range.end)?;
            let tail = t.try_slice_axis(v[0], axis, range.start..n)?;
            t.try_concat(&[head, tail], axis)
        }, &[x], seed)?;
    }

    #[test]
    fn embedding_lookups_with_repeated_ids(
        (vocab, d) in (1usize..=5, 1usize..=4),
        ids_shape in dims(1, 2),
        seed in any::<u64>(),
    ) {
        let mut values_rng = rng(seed ^ 1);
        let table = values(&[vocab, d], Domain::Any, &mut values_rng);
        let count = ids_shape.iter().product();
        let mut picks: Vec<f64> = (0..count).map(|_| values_rng.gen_range(0..vocab) as f64).collect();
        // At least one id looked up twice when there are two positions, so its row adds both.
        if count > 1 {
            picks[count - 1] = picks[0];
        }
        let ids = Tensor::from_vec(&ids_shape, picks);
        assert_vjp("embedding", |t, v| {
            let ids = t.constant(ids.clone());
            t.try_embedding(v[0], ids)
        }, &[table], seed)?;
    }

    #[test]
    fn divergences(shape in dims(2, 3), seed in any::<u64>()) {
        let mut values_rng = rng(seed ^ 1);
        let y = values(&shape, Domain::Any, &mut values_rng);
        let reference = values(&shape, Domain::Any, &mut values_rng);
        // Both arguments take gradients here (the checker makes every input a parameter).
        assert_vjp("mse", |t, v| t.try_mse(v[0], v[1]), &[y.clone(), reference.clone()], seed)?;
        assert_vjp("kl_div", |t, v| t.try_kl_div(v[0], v[1]), &[y, reference], seed)?;
    }

    #[test]
    fn unfold_and_fold(
        (n, c) in (1usize..=2, 1usize..=3),
        geometry in geometry(),
        extra in (0usize..=3, 0usize..=3),
        seed in any::<u64>(),
    ) {
        let (g, (h, w)) = window_and_image(geometry, extra);
        let x = values(&[n, c, h, w], Domain::Any, &mut rng(seed ^ 1));
        assert_vjp(&format!("unfold2d ({g})"), |t, v| t.try_unfold2d(v[0], &g),
            std::slice::from_ref(&x), seed)?;
        let cols = Tensor::<f64>::zeros(&[n, c, h, w]).unfold2d(&g);
        let u = values(cols.shape(), Domain::Any, &mut rng(seed ^ 2));
        assert_vjp(&format!("fold2d ({g})"), |t, v| t.try_fold2d(v[0], &g, [c, h, w]),
            &[u], seed)?;
    }

    #[test]
    fn conv2d_with_and_without_bias(
        (n, c, out) in (1usize..=2, 1usize..=3, 1usize..=3),
        geometry in geometry(),
        extra in (0usize..=3, 0usize..=3),
        seed in any::<u64>(),
    ) {
        let (g, (h, w)) = window_and_image(geometry, extra);
        let options = Conv2dOptions { stride: g.stride, padding: g.padding, dilation: g.dilation };
        let mut values_rng = rng(seed ^ 1);
        let x = values(&[n, c, h, w], Domain::Any, &mut values_rng);
        let k = values(&[out, c, g.kernel.0, g.kernel.1], Domain::Any, &mut values_rng);
        let bias = values(&[out], Domain::Any, &mut values_rng);
        assert_vjp(&format!("conv2d ({g})"), |t, v| t.try_conv2d(v[0], v[1], Some(v[2]), options),
            &[x.clone(), k.clone(), bias], seed)?;
        assert_vjp(&format!("conv2d without bias ({g})"),
            |t, v| t.try_conv2d(v[0], v[1], None, options), &[x, k], seed)?;
    }

    #[test]
    fn pools_and_flatten(
        (n, c) in (1usize..=2, 1usize..=3),
        geometry in geometry(),
        extra in (0usize..=3, 0usize..=3),
        seed in any::<u64>(),
    ) {
        let (kernel, stride, padding, _) = geometry;
        // Max pooling has neither padding nor dilation; average pooling has padding.
        let (g, (h, w)) = window_and_image((kernel, stride, (0, 0), (1, 1)), extra);
        let x = values(&[n, c, h, w], Domain::Distinct, &mut rng(seed ^ 1));
        assert_vjp(&format!("max_pool2d ({g})"), |t, v| t.try_max_pool2d(v[0], kernel, stride),
            std::slice::from_ref(&x), seed)?;
        let (g, (h, w)) = window_and_image((kernel, stride, padding, (1, 1)), extra);
        let x = values(&[n, c, h, w], Domain::Any, &mut rng(seed ^ 2));
        assert_vjp(&format!("avg_pool2d ({g})"),
            |t, v| t.try_avg_pool2d(v[0], kernel, stride, padding),
            std::slice::from_ref(&x), seed)?;
        assert_vjp("flatten", |t, v| t.try_flatten(v[0]), &[x], seed)?;
    }

    #[test]
    fn max_over_an_axis(shape in dims(1, 4), axis in any::<Index>(), seed in any::<u64>()) {
        let axis = axis.index(shape.len());
        let x = values(&shape, Domain::Distinct, &mut rng(seed ^ 1));
        assert_vjp("max_axis", |t, v| t.try_max_axis(v[0], axis), &[x], seed)?;
    }

    #[test]
    fn causal_mask_then_softmax(lead in dims(0, 2), t in 1usize..=5, seed in any::<u64>()) {
        // The mask writes -inf, so it is checked through the softmax that follows it in
        // attention (where the masked entries' weights are exactly 0).
        let mut shape = lead;
        shape.extend([t, t]);
        let x = values(&shape, Domain::Any, &mut rng(seed ^ 1));
        assert_vjp("softmax(causal_mask(x))", |t, v| {
            let masked = t.try_causal_mask(v[0])?;
            Ok(t.softmax(masked))
        }, &[x], seed)?;
    }

    #[test]
    fn attention_layers(
        (b, t, dh) in (1usize..=2, 1usize..=4, 1usize..=3),
        heads in 1usize..=2,
        seed in any::<u64>(),
    ) {
        let d = heads * dh;
        let mut values_rng = rng(seed ^ 1);
        let x = values(&[b, t, d], Domain::Any, &mut values_rng);
        let mut separate = vec![x.clone()];
        separate.extend((0..4).map(|_| values(&[d, d], Domain::Any, &mut values_rng)));
        assert_vjp(&format!("self-attention, {heads} heads"),
            |tape, v| common::self_attention(tape, v[0], &v[1..], heads), &separate, seed)?;
        let fused = vec![
            x,
            values(&[3 * d, d], Domain::Any, &mut values_rng),
            values(&[3 * d], Domain::Any, &mut values_rng),
            values(&[d, d], Domain::Any, &mut values_rng),
            values(&[d], Domain::Any, &mut values_rng),
        ];
        assert_vjp(&format!("multi-head attention, fused projection, {heads} heads"),
            |tape, v| common::multihead_attention(tape, v[0], &v[1..], heads), &fused, seed)?;
    }

    #[test]
    fn layer_norm(shape in dims(1, 3), seed in any::<u64>()) {
        let d = shape[shape.len() - 1];
        let mut values_rng = rng(seed ^ 1);
        let x = values(&shape, Domain::Any, &mut values_rng);
        let gamma = values(&[d], Domain::Any, &mut values_rng);
        let beta = values(&[d], Domain::Any, &mut values_rng);
        assert_vjp("layer_norm", |t, v| t.try_layer_norm(v[0], v[1], v[2], 1e-5),
            &[x, gamma, beta], seed)?;
    }
}
