//! Bad input to every fallible tensor operation: an error (never a panic) whose message names
//! the op and the shapes involved.

use std::fmt::Display;
use tensor::{Tensor, Transpose};

type T = Tensor<f32>;

fn z(shape: &[usize]) -> T {
    Tensor::zeros(shape)
}

/// Asserts that `result` is an error whose message contains every one of `parts`.
#[track_caller]
fn assert_error<V, E: Display>(result: Result<V, E>, parts: &[&str]) {
    let Err(err) = result else {
        panic!("expected an error naming {parts:?}, got a value");
    };
    let msg = err.to_string();
    for part in parts {
        assert!(msg.contains(part), "{msg:?} does not name {part:?}");
    }
}

#[test]
fn construction_and_reshape() {
    assert_error(
        T::try_from_vec(&[2, 3], vec![0.0; 5]),
        &["from_vec", "[2, 3]", "6", "5"],
    );
    assert_error(T::try_from_vec(&[], vec![]), &["from_vec", "[]", "1", "0"]);
    assert_error(z(&[2, 3]).try_reshape(&[4]), &["reshape", "[2, 3]", "[4]"]);
    assert_error(z(&[0, 3]).try_reshape(&[1]), &["reshape", "[0, 3]", "[1]"]);
    assert_error(z(&[2, 3]).try_item(), &["item", "[2, 3]"]);
    assert_error(z(&[0]).try_item(), &["item", "[0]"]);
}

#[test]
fn broadcasting_binary_ops() {
    let (a, b) = (z(&[2, 3]), z(&[4]));
    for (op, result) in [
        ("add", a.try_add(&b)),
        ("sub", a.try_sub(&b)),
        ("mul", a.try_mul(&b)),
        ("div", a.try_div(&b)),
        ("custom", a.try_zip_broadcast(&b, "custom", |x, y| x + y)),
    ] {
        assert_error(result, &[op, "[2, 3]", "[4]"]);
    }
    // Sizes that are neither equal nor 1, in a leading axis; an empty axis against a full one.
    assert_error(
        z(&[2, 1, 3]).try_add(&z(&[3, 4, 3])),
        &["[2, 1, 3]", "[3, 4, 3]"],
    );
    assert_error(z(&[2, 3]).try_mul(&z(&[0, 3])), &["[2, 3]", "[0, 3]"]);
    assert_error(
        a.try_zip_map(&z(&[3, 2]), |x, _| x),
        &["zip_map", "[2, 3]", "[3, 2]"],
    );
    assert_error(a.try_dot(&z(&[6])), &["dot", "[2, 3]", "[6]"]);
    let mut acc = z(&[2, 3]);
    assert_error(
        acc.try_add_scaled_assign(1.0, &z(&[1, 3])),
        &["add_scaled_assign", "[2, 3]", "[1, 3]"],
    );
}

#[test]
fn sum_to_shape_needs_a_shape_that_broadcasts_up() {
    let g = z(&[2, 3, 4]);
    assert_error(
        g.try_sum_to_shape(&[5]),
        &["sum_to_shape", "[5]", "[2, 3, 4]"],
    );
    // A shape that broadcasts with g but to something larger than g.
    assert_error(
        g.try_sum_to_shape(&[2, 2, 3, 4]),
        &["sum_to_shape", "[2, 2, 3, 4]"],
    );
    assert_error(g.try_sum_to_shape(&[3, 3, 4]), &["[3, 3, 4]", "[2, 3, 4]"]);
}

#[test]
fn matrix_products() {
    let a = z(&[2, 3]);
    let cases = [
        (a.try_matmul(&a), "[2, 3]"),
        (a.try_matmul(&z(&[3])), "[3]"),
        (z(&[3]).try_matmul(&a), "[3]"),
        (
            a.try_matmul_t(Transpose::Yes, &z(&[3, 2]), Transpose::No),
            "[3, 2]",
        ),
        (
            a.try_matmul_t(Transpose::No, &z(&[2, 3]), Transpose::No),
            "[2, 3]",
        ),
        (z(&[2, 2, 3]).try_matmul(&z(&[3, 3, 1])), "[3, 3, 1]"),
        (z(&[4, 2, 3]).try_matmul(&z(&[2, 3, 1])), "[4, 2, 3]"),
    ];
    for (result, shape) in cases {
        assert_error(result, &["matmul", shape]);
    }
}

#[test]
fn reductions_over_an_axis() {
    let t = z(&[2, 3]);
    assert_error(t.try_sum_axis(2), &["sum_axis", "axis 2", "[2, 3]"]);
    assert_error(t.try_mean_axis(5), &["mean_axis", "axis 5", "[2, 3]"]);
    assert_error(z(&[]).try_sum_axis(0), &["sum_axis", "[]"]);
    assert_error(t.try_max_argmax_axis(2), &["max_axis", "[2, 3]"]);
    assert_error(z(&[2, 0]).try_max_argmax_axis(1), &["max_axis", "[2, 0]"]);
    assert_error(z(&[3, 0]).try_max_all(), &["max_all", "[3, 0]"]);
    assert_error(
        z(&[2, 0]).try_log_softmax_last(),
        &["log_softmax", "[2, 0]"],
    );
    assert_error(z(&[]).try_log_softmax_last(), &["log_softmax", "[]"]);
    assert_error(z(&[4, 0]).try_softmax_last(), &["log_softmax", "[4, 0]"]);
}

#[test]
fn axes_and_rows() {
    let t = z(&[2, 3, 4]);
    assert_error(t.try_permute(&[0, 1]), &["permute", "[0, 1]", "[2, 3, 4]"]);
    assert_error(t.try_permute(&[0, 1, 1]), &["permute", "[0, 1, 1]"]);
    assert_error(t.try_permute(&[0, 1, 3]), &["permute", "[0, 1, 3]"]);
    assert_error(z(&[5]).try_transpose(), &["transpose", "[5]"]);
    assert_error(z(&[]).try_transpose(), &["transpose", "[]"]);
    assert_error(
        t.try_gather_rows(&[0, 2]),
        &["gather_rows", "2", "[2, 3, 4]"],
    );
    assert_error(z(&[0, 3]).try_gather_rows(&[0]), &["gather_rows", "[0, 3]"]);
    assert_error(z(&[]).try_gather_rows(&[0]), &["gather_rows", "[]"]);
    assert_error(
        t.try_slice_axis(3, 0..1),
        &["slice_axis", "axis 3", "[2, 3, 4]"],
    );
    assert_error(
        t.try_slice_axis(1, 2..4),
        &["slice_axis", "2..4", "axis 1", "[2, 3, 4]"],
    );
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 2..1;
    assert_error(
        t.try_slice_axis(2, backwards),
        &["slice_axis", "2..1", "[2, 3, 4]"],
    );
    assert_error(t.try_row_tensor(2), &["row_tensor", "[2, 3, 4]"]);
    assert_error(z(&[]).try_row_tensor(0), &["row_tensor", "[]"]);
    assert_error(
        z(&[3, 4]).try_scatter_add_rows(&[0, 1], 5),
        &["scatter_add_rows", "[3, 4]"],
    );
    assert_error(
        z(&[2, 4]).try_scatter_add_rows(&[0, 5], 5),
        &["scatter_add_rows", "5", "[2, 4]"],
    );
}

#[test]
fn concat_and_stack() {
    let (a, b) = (z(&[2, 3]), z(&[2, 4]));
    assert_error(T::try_concat(&[], 0), &["concat", "empty"]);
    assert_error(T::try_concat(&[&a, &b], 0), &["concat", "[2, 3]", "[2, 4]"]);
    assert_error(
        T::try_concat(&[&a, &z(&[2, 3, 1])], 1),
        &["concat", "[2, 3, 1]"],
    );
    assert_error(T::try_concat(&[&a, &a], 2), &["concat", "axis 2", "[2, 3]"]);
    assert_error(T::try_concat(&[&z(&[]), &z(&[])], 0), &["concat", "[]"]);
    assert_error(T::try_stack(&[]), &["stack", "empty"]);
    assert_error(T::try_stack(&[&a, &b]), &["stack", "[2, 3]", "[2, 4]"]);
}

#[test]
fn top_k_of_more_than_there_is() {
    assert_error(
        z(&[2, 3]).try_top_k_abs(7),
        &["top_k_abs", "7", "6", "[2, 3]"],
    );
    assert_error(z(&[0, 4]).try_top_k_abs(1), &["top_k_abs", "[0, 4]"]);
}

#[test]
fn empty_tensors_that_are_fine_stay_fine() {
    // Empty batches are valid input where the result is simply empty.
    assert_eq!(z(&[0, 3]).add(&z(&[3])).shape(), &[0, 3]);
    assert_eq!(z(&[0, 3]).matmul(&z(&[3, 2])).shape(), &[0, 2]);
    assert_eq!(z(&[2, 0]).matmul(&z(&[0, 5])), z(&[2, 5]));
    assert_eq!(z(&[0, 3]).sum_axis(0), z(&[3]));
    assert_eq!(z(&[0, 3]).log_softmax_last().shape(), &[0, 3]);
    assert_eq!(z(&[0, 3]).gather_rows(&[]).shape(), &[0, 3]);
    assert_eq!(z(&[0, 3]).top_k_abs(0).kept, 0);
    assert_eq!(z(&[0, 3]).sum_to_shape(&[3]), z(&[3]));
}

#[test]
fn sliding_windows() {
    use tensor::Window2d;
    let w3 = Window2d::new((3, 3));
    assert_error(
        z(&[2, 3, 4]).try_unfold2d(&w3),
        &["unfold2d", "[N, C, H, W]", "[2, 3, 4]"],
    );
    // A 3x3 window over a 2x5 image, and with dilation 3 (7x7 pixels) over a padded 6x6.
    assert_error(
        z(&[1, 1, 2, 5]).try_unfold2d(&w3),
        &["unfold2d", "3x3", "2x5", "[1, 1, 2, 5]"],
    );
    let dilated = w3.with_dilation((3, 3)).with_padding((1, 1));
    assert_error(
        z(&[1, 1, 4, 4]).try_unfold2d(&dilated),
        &["unfold2d", "7x7", "6x6", "[1, 1, 4, 4]"],
    );
    for bad in [
        Window2d::new((0, 3)),
        w3.with_stride((1, 0)),
        w3.with_dilation((0, 1)),
    ] {
        assert_error(
            z(&[1, 1, 5, 5]).try_unfold2d(&bad),
            &["unfold2d", "at least 1", &bad.to_string()],
        );
    }
    // Columns of 3x3 windows over [2, 4, 4] images are [N, 4, 18].
    assert_error(
        z(&[1, 4, 17]).try_fold2d(&w3, [2, 4, 4]),
        &["fold2d", "[1, 4, 17]", "[2, 4, 4]", "[N, 4, 18]"],
    );
    assert_error(
        z(&[1, 4, 18]).try_fold2d(&w3, [2, 2, 4]),
        &["fold2d", "3x3", "2x4"],
    );
    assert_error(z(&[]).try_fold2d(&w3, [2, 4, 4]), &["fold2d", "[]"]);
}
