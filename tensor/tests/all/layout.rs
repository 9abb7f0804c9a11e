//! Moving elements around: permute and transpose (against the index map, and round trips),
//! concatenation, stacking, row gathers and their adjoint, and axis reductions against naive
//! loops. Random shapes with sizes 0 to 4 (sizes 1 and 3 included), small-integer data.

use proptest::prelude::*;
use tensor::Tensor;

fn counting(shape: &[usize]) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| i as f64)
}

fn ints(shape: &[usize], seed: usize) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| ((i * 5 + seed) % 7) as f64 - 3.0)
}

fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (i, &size) in shape.iter().enumerate().rev() {
        index[i] = flat % size;
        flat /= size;
    }
    index
}

fn ravel(index: &[usize], shape: &[usize]) -> usize {
    index.iter().zip(shape).fold(0, |o, (&i, &s)| o * s + i)
}

/// A shape of rank 1 to 4 and a permutation of its axes.
fn shape_and_axes() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(0usize..=4, 1..=4).prop_flat_map(|shape| {
        let axes: Vec<usize> = (0..shape.len()).collect();
        (Just(shape), Just(axes).prop_shuffle())
    })
}

fn inverse(axes: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; axes.len()];
    for (i, &a) in axes.iter().enumerate() {
        inv[a] = i;
    }
    inv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn permute_follows_the_index_map_and_inverts((shape, axes) in shape_and_axes()) {
        let x = counting(&shape);
        let p = x.permute(&axes);
        let expect_shape: Vec<usize> = axes.iter().map(|&a| shape[a]).collect();
        prop_assert_eq!(p.shape(), &expect_shape[..]);
        // out[i_0, .., i_n] = x[j] with j[axes[k]] = i_k.
        for (flat, &v) in p.data().iter().enumerate() {
            let out_index = unravel(flat, p.shape());
            let mut src = vec![0; shape.len()];
            for (k, &a) in axes.iter().enumerate() {
                src[a] = out_index[k];
            }
            prop_assert_eq!(v, ravel(&src, &shape) as f64);
        }
        prop_assert_eq!(p.permute(&inverse(&axes)), x);
    }

    #[test]
    fn transpose_swaps_the_last_two_axes_and_twice_is_identity(
        shape in prop::collection::vec(0usize..=4, 2..=4),
    ) {
        let x = counting(&shape);
        let nd = shape.len();
        let mut axes: Vec<usize> = (0..nd).collect();
        axes.swap(nd - 2, nd - 1);
        let t = x.transpose();
        prop_assert_eq!(&t, &x.permute(&axes));
        prop_assert_eq!(t.transpose(), x);
    }

    #[test]
    fn concat_places_each_part_in_its_slot(
        shape in prop::collection::vec(0usize..=4, 1..=3),
        axis in any::<prop::sample::Index>(),
        sizes in prop::collection::vec(0usize..=3, 1..=3),
    ) {
        let axis = axis.index(shape.len());
        let parts: Vec<Tensor<f64>> = sizes
            .iter()
            .enumerate()
            .map(|(p, &size)| {
                let mut s = shape.clone();
                s[axis] = size;
                Tensor::from_fn(&s, |i| (1000 * p + i) as f64)
            })
            .collect();
        let refs: Vec<&Tensor<f64>> = parts.iter().collect();
        let joined = Tensor::concat(&refs, axis);
        prop_assert_eq!(joined.shape()[axis], sizes.iter().sum::<usize>());
        for (flat, &v) in joined.data().iter().enumerate() {
            let mut index = unravel(flat, joined.shape());
            let mut part = 0;
            while index[axis] >= sizes[part] {
                index[axis] -= sizes[part];
                part += 1;
            }
            let expect = parts[part].data()[ravel(&index, parts[part].shape())];
            prop_assert_eq!(v, expect);
        }
    }

    #[test]
    fn slice_axis_keeps_the_range_and_cuts_concat_back_into_its_parts(
        shape in prop::collection::vec(0usize..=4, 1..=3),
        axis in any::<prop::sample::Index>(),
        cut in (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
    ) {
        let axis = axis.index(shape.len());
        let n = shape[axis];
        let (a, b) = (cut.0.index(n + 1), cut.1.index(n + 1));
        let (start, end) = (a.min(b), a.max(b));
        let x = counting(&shape);
        let s = x.slice_axis(axis, start..end);
        let mut expect_shape = shape.clone();
        expect_shape[axis] = end - start;
        prop_assert_eq!(s.shape(), &expect_shape[..]);
        for (flat, &v) in s.data().iter().enumerate() {
            let mut index = unravel(flat, s.shape());
            index[axis] += start;
            prop_assert_eq!(v, x.data()[ravel(&index, &shape)]);
        }
        let parts = [x.slice_axis(axis, 0..start), s, x.slice_axis(axis, end..n)];
        let refs: Vec<&Tensor<f64>> = parts.iter().collect();
        prop_assert_eq!(Tensor::concat(&refs, axis), x);
    }

    /// `<gather(a), g> == <a, scatter_add(g)>`, with repeated indices, and gather's rows.
    #[test]
    fn gather_rows_and_its_adjoint(
        shape in prop::collection::vec(1usize..=4, 1..=3),
        picks in prop::collection::vec(any::<prop::sample::Index>(), 0..=6),
    ) {
        let rows = shape[0];
        let indices: Vec<usize> = picks.iter().map(|p| p.index(rows)).collect();
        let a = ints(&shape, 1);
        let gathered = a.gather_rows(&indices);
        for (j, &i) in indices.iter().enumerate() {
            prop_assert_eq!(gathered.row(j), a.row(i));
        }
        let g = ints(gathered.shape(), 2);
        let scattered = g.scatter_add_rows(&indices, rows);
        prop_assert_eq!(scattered.shape(), a.shape());
        prop_assert_eq!(gathered.dot(&g), a.dot(&scattered));
    }

    #[test]
    fn axis_sums_match_a_naive_loop(
        shape in prop::collection::vec(0usize..=4, 1..=4),
        axis in any::<prop::sample::Index>(),
    ) {
        let axis = axis.index(shape.len());
        let x = ints(&shape, 3);
        let s = x.sum_axis(axis);
        let mut expect = vec![0.0; s.numel()];
        for (flat, &v) in x.data().iter().enumerate() {
            let mut index = unravel(flat, &shape);
            index.remove(axis);
            expect[ravel(&index, s.shape())] += v;
        }
        prop_assert_eq!(s.data(), &expect[..]);
        let mut kept = shape.clone();
        kept.remove(axis);
        prop_assert_eq!(s.shape(), &kept[..]);
    }
}

#[test]
fn stack_adds_a_leading_axis() {
    let a = counting(&[2, 3]);
    let b = a.add_scalar(100.0);
    let s = Tensor::stack(&[&a, &b, &a]);
    assert_eq!(s.shape(), &[3, 2, 3]);
    assert_eq!(s.row_tensor(1), b);
    assert_eq!(s.row_tensor(2), a);
    // Scalars stack into a vector.
    let v = Tensor::stack(&[&Tensor::scalar(1.0), &Tensor::scalar(2.0)]);
    assert_eq!(v, Tensor::from_vec(&[2], vec![1.0, 2.0]));
}
