//! One thread and two give the same bits: every parallel kernel splits its work into fixed
//! chunks (or whole output matrices, or whole samples) and combines partial results serially in
//! order, so the thread count only changes who computes a piece, never the arithmetic.
//!
//! The sizes are above `tensor::kernels::PARALLEL_MIN` (and several `CHUNK`s long) so that the
//! parallel paths actually run. `matrixmultiply` keeps its own threads, fixed per process; it
//! partitions each product by output blocks, so its results do not depend on them either.

use autodiff::{per_sample_grads, per_sample_grads_loop, Result, Tape, Var};
use rayon::ThreadPool;
use tensor::kernels::{CHUNK, PARALLEL_MIN};
use tensor::{rng, Tensor, Transpose};

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

/// The bit patterns of a tensor, so that `-0.0 != 0.0` and NaN equals itself.
fn bits(t: &Tensor<f32>) -> Vec<u32> {
    t.data().iter().map(|v| v.to_bits()).collect()
}

/// Runs `work` in a pool of one thread and in a pool of two, and asserts equal bits.
fn same_bits_on_one_and_two_threads(what: &str, work: impl Fn() -> Vec<Tensor<f32>> + Sync) {
    let one = pool(1).install(&work);
    let two = pool(2).install(&work);
    assert_eq!(one.len(), two.len(), "{what}");
    for (i, (a, b)) in one.iter().zip(&two).enumerate() {
        assert_eq!(a.shape(), b.shape(), "{what}, result {i}");
        assert!(bits(a) == bits(b), "{what}, result {i}: bits differ");
    }
}

/// A length that is long enough to go parallel, is not a multiple of the chunk, and is odd.
const LONG: usize = 5 * CHUNK + 12_345;
const _: () = assert!(LONG > PARALLEL_MIN);

#[test]
fn reductions() {
    let mut r = rng(1);
    let x = Tensor::<f32>::randn(&[LONG], 1.0, &mut r);
    let y = Tensor::<f32>::randn(&[LONG], 1.0, &mut r);
    same_bits_on_one_and_two_threads("sum, dot, norm", || {
        vec![
            Tensor::scalar(x.sum_all()),
            Tensor::scalar(x.dot(&y)),
            Tensor::scalar(x.norm()),
            Tensor::scalar(x.mean_all()),
        ]
    });
}

#[test]
fn elementwise_maps() {
    let mut r = rng(2);
    let x = Tensor::<f32>::randn(&[LONG], 1.0, &mut r);
    let y = Tensor::<f32>::randn(&[LONG], 1.0, &mut r);
    same_bits_on_one_and_two_threads("maps", || {
        let mut axpy = y.clone();
        axpy.try_add_scaled_assign(0.3, &x).expect("same shapes");
        vec![
            x.gelu(),
            x.exp(),
            x.tanh(),
            x.add(&y),
            x.mul(&y),
            x.zip_map(&y, |a, b| a * b - a),
            axpy,
        ]
    });
}

#[test]
fn matrix_products() {
    let mut r = rng(3);
    let a = Tensor::<f32>::randn(&[301, 257], 1.0, &mut r);
    let b = Tensor::<f32>::randn(&[257, 263], 1.0, &mut r);
    let batched_a = Tensor::<f32>::randn(&[9, 61, 67], 1.0, &mut r);
    let batched_b = Tensor::<f32>::randn(&[9, 67, 59], 1.0, &mut r);
    let shared_b = Tensor::<f32>::randn(&[59, 67], 1.0, &mut r);
    same_bits_on_one_and_two_threads("matmul", || {
        vec![
            a.matmul(&b),
            a.matmul_t(Transpose::Yes, &a, Transpose::No),
            batched_a.matmul(&batched_b),
            batched_a.matmul_t(Transpose::Yes, &batched_a, Transpose::No),
            batched_a.matmul_nt(&shared_b),
        ]
    });
}

/// An MLP 48 -> 96 -> 96 -> 24 with GELU on the hidden layers and a linear output; the
/// per-sample loss is the MSE against `x[1]`.
fn mlp(tape: &mut Tape<f32>, p: &[Var], x: &[Var]) -> Result<Var> {
    let mut h = x[0];
    for (l, pair) in p.chunks(2).enumerate() {
        h = tape.try_linear(h, pair[0], Some(pair[1]))?;
        if l + 1 < p.len() / 2 {
            h = tape.gelu(h);
        }
    }
    tape.try_mse(h, x[1])
}

#[test]
fn per_sample_gradients() {
    let widths = [48, 96, 96, 24];
    let mut r = rng(4);
    let params: Vec<Tensor<f32>> = widths
        .windows(2)
        .flat_map(|w| {
            let std = (2.0 / w[0] as f64).sqrt();
            [
                Tensor::randn(&[w[1], w[0]], std, &mut r),
                Tensor::randn(&[w[1]], 0.1, &mut r),
            ]
        })
        .collect();
    let x = Tensor::<f32>::randn(&[128, widths[0]], 1.0, &mut r);
    let y = Tensor::<f32>::randn(&[128, widths[3]], 1.0, &mut r);
    same_bits_on_one_and_two_threads("per_sample_grads", || {
        per_sample_grads(&params, &[&x, &y], mlp)
            .expect("per-sample gradients")
            .into_iter()
            .map(|g| g.into_dense())
            .collect()
    });
    same_bits_on_one_and_two_threads("per_sample_grads_loop", || {
        per_sample_grads_loop(&params, &[&x, &y], mlp).expect("per-sample gradients")
    });
}

/// Two 3x3 convolutions (1 -> 8 -> 8 channels, padding 1) over 8x8 images, relu, 2x2 max
/// pool, flatten and a linear layer to 10 logits; the per-sample loss is the KL divergence to
/// `x[1]`. With 128 images both unfold (forward) and fold (the second convolution's input
/// gradient) pass `PARALLEL_MIN` and split over images.
fn cnn(tape: &mut Tape<f32>, p: &[Var], x: &[Var]) -> Result<Var> {
    let same = autodiff::Conv2dOptions {
        padding: (1, 1),
        ..Default::default()
    };
    let h = tape.try_conv2d(x[0], p[0], Some(p[1]), same)?;
    let h = tape.relu(h);
    let h = tape.try_conv2d(h, p[2], Some(p[3]), same)?;
    let h = tape.relu(h);
    let h = tape.try_max_pool2d(h, (2, 2), (2, 2))?;
    let h = tape.try_flatten(h)?;
    let logits = tape.try_linear(h, p[4], Some(p[5]))?;
    tape.try_kl_div(logits, x[1])
}

#[test]
fn convolutions() {
    let mut r = rng(5);
    let shapes: [&[usize]; 6] = [&[8, 1, 3, 3], &[8], &[8, 8, 3, 3], &[8], &[10, 128], &[10]];
    let params: Vec<Tensor<f32>> = shapes
        .iter()
        .map(|s| Tensor::randn(s, 0.3, &mut r))
        .collect();
    let x = Tensor::<f32>::uniform(&[128, 1, 8, 8], 0.0, 1.0, &mut r);
    let y = Tensor::<f32>::randn(&[128, 10], 1.0, &mut r);
    assert!(
        x.unfold2d(&autodiff::Window2d::new((3, 3)).with_padding((1, 1)))
            .numel()
            > PARALLEL_MIN
    );
    same_bits_on_one_and_two_threads("conv per_sample_grads", || {
        per_sample_grads(&params, &[&x, &y], cnn)
            .expect("per-sample gradients")
            .into_iter()
            .map(|g| g.into_dense())
            .collect()
    });
}
