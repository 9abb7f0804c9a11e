//! The handwritten digits of scikit-learn (`sklearn.datasets.load_digits`): the test set of the
//! UCI "Optical Recognition of Handwritten Digits" data, 1,797 images of 8 x 8 pixels, each
//! pixel a count 0..=16 of the "on" pixels of a 4 x 4 block of a 32 x 32 bitmap, labelled with
//! their digit 0..=9. The file is vendored in `toys/data/digits/` (its README says where it
//! comes from) and compiled into the binary, so no data file is needed at run time.
//!
//! # Conventions
//!
//! - Pixels are scaled to `[0, 1]` by `x / 16` (the largest count).
//! - Images are `[N, 1, 8, 8]` (PyTorch's `NCHW`, one channel), rows `[N, 64]`; both in the
//!   file's row-major pixel order, so row `i` is image `i` flattened.
//! - The held-out split ([`split`]) takes `round(fraction n_c)` samples of each class `c`
//!   (`n_c` its count) at random, from `seed`; both parts are in the file's order.
//!
//! The digits networks and their training are in [`train`].

pub mod train;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tensor::Tensor;
use thiserror::Error;

/// The vendored CSV: one image a line, 64 pixel counts then the label, comma-separated.
const CSV: &str = include_str!("../data/digits/digits.csv");

/// Images in the data set.
pub const SAMPLES: usize = 1797;
/// Pixels per image (8 x 8).
pub const PIXELS: usize = 64;
/// Pixels per side.
pub const SIDE: usize = 8;
/// Digit classes.
pub const CLASSES: usize = 10;
/// The largest pixel count (the number of pixels in a 4 x 4 block).
pub const MAX_PIXEL: u8 = 16;

/// The RNG stream of the held-out split (streams 1..=5 are the toys' own, in
/// `crate::models`).
const SPLIT_STREAM: u64 = 11;

/// What can be wrong with a digits CSV.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DigitsError {
    #[error("digits CSV line {line}: expected {expected} comma-separated values, found {found}")]
    Width {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("digits CSV line {line}, column {column}: '{value}' is not an integer in 0..={max}")]
    Value {
        line: usize,
        column: usize,
        value: String,
        max: u8,
    },
    #[error("digits CSV: no images")]
    Empty,
}

/// A digits data set: images of [`PIXELS`] counts in `0..=16`, and their labels.
///
/// Invariants: `pixels.len() == PIXELS * labels.len()`; every pixel `<= MAX_PIXEL`; every
/// label `< CLASSES`.
#[derive(Debug, Clone, PartialEq)]
pub struct Digits {
    pixels: Vec<u8>,
    labels: Vec<usize>,
}

/// The vendored data set (1,797 images).
pub fn load() -> Digits {
    parse(CSV).expect("the vendored digits CSV parses (a test checks it)")
}

/// Parses a digits CSV: one image a line, [`PIXELS`] integers in `0..=16`, then the label in
/// `0..=9`. Empty lines are skipped; lines and columns in errors count from 1.
pub fn parse(text: &str) -> Result<Digits, DigitsError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (l, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(DigitsError::Width {
                line: l + 1,
                expected: PIXELS + 1,
                found: fields.len(),
            });
        }
        for (c, field) in fields.iter().enumerate() {
            let max = if c == PIXELS {
                CLASSES as u8 - 1
            } else {
                MAX_PIXEL
            };
            let value = field
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&v| v <= max)
                .ok_or_else(|| DigitsError::Value {
                    line: l + 1,
                    column: c + 1,
                    value: field.to_string(),
                    max,
                })?;
            match c == PIXELS {
                true => labels.push(value as usize),
                false => pixels.push(value),
            }
        }
    }
    if labels.is_empty() {
        return Err(DigitsError::Empty);
    }
    Ok(Digits { pixels, labels })
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Every image's label, in order.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The raw counts of image `i`.
    pub fn pixels(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// The images `indices` as rows scaled to `[0, 1]`: `[n, 64]`.
    pub fn rows(&self, indices: &[usize]) -> Tensor<f32> {
        let data = indices
            .iter()
            .flat_map(|&i| self.pixels(i).iter())
            .map(|&p| p as f32 / MAX_PIXEL as f32)
            .collect();
        Tensor::from_vec(&[indices.len(), PIXELS], data)
    }

    /// The images `indices` scaled to `[0, 1]`, as one-channel images: `[n, 1, 8, 8]`.
    pub fn images(&self, indices: &[usize]) -> Tensor<f32> {
        self.rows(indices).reshape(&[indices.len(), 1, SIDE, SIDE])
    }

    /// The labels of `indices`.
    pub fn labels_of(&self, indices: &[usize]) -> Vec<usize> {
        indices.iter().map(|&i| self.labels[i]).collect()
    }

    /// The labels of `indices` as one-hot rows: `[n, 10]`.
    pub fn one_hot(&self, indices: &[usize]) -> Tensor<f32> {
        one_hot(&self.labels_of(indices), CLASSES)
    }
}

/// One-hot rows of `labels` over `classes`: `[n, classes]`.
///
/// Panics if a label is not below `classes`.
pub fn one_hot(labels: &[usize], classes: usize) -> Tensor<f32> {
    let mut t = Tensor::zeros(&[labels.len(), classes]);
    for (i, &l) in labels.iter().enumerate() {
        assert!(l < classes, "label {l} is not below {classes}");
        t.row_mut(i)[l] = 1.0;
    }
    t
}

/// A split of a data set's indices into a training and a held-out part, each in increasing
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
}

/// The stratified split of `labels`: for each class `c` with `n_c` samples,
/// `round(held_out_fraction n_c)` of them chosen at random (from `seed`) are held out, the rest
/// train. The same seed gives the same split.
///
/// Panics unless `held_out_fraction` is in `[0, 1]`.
pub fn split(labels: &[usize], held_out_fraction: f64, seed: u64) -> Split {
    assert!(
        (0.0..=1.0).contains(&held_out_fraction),
        "held_out_fraction must be in [0, 1], is {held_out_fraction}"
    );
    let mut rng: ChaCha8Rng = tensor::rng(seed);
    rng.set_stream(SPLIT_STREAM);
    let classes = labels.iter().max().map_or(0, |&m| m + 1);
    let mut held = vec![false; labels.len()];
    for c in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        members.shuffle(&mut rng);
        let take = (held_out_fraction * members.len() as f64).round() as usize;
        for &i in &members[..take] {
            held[i] = true;
        }
    }
    let (held_out, train) = (0..labels.len()).partition(|&i| held[i]);
    Split { train, held_out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_set_has_1797_images_of_ten_classes_with_pixels_in_0_to_16() {
        let d = load();
        assert_eq!(d.len(), SAMPLES);
        // The class counts of sklearn's load_digits (np.bincount(digits.target)).
        assert_eq!(
            d.class_counts(),
            [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert!(d.pixels.iter().all(|&p| p <= MAX_PIXEL));
        assert_eq!(d.pixels.iter().max(), Some(&MAX_PIXEL));
        // The first image of the file (a 0), its first row and second row of pixels.
        assert_eq!(d.labels()[0], 0);
        assert_eq!(d.pixels(0)[..8], [0, 0, 5, 13, 9, 1, 0, 0]);
        assert_eq!(d.pixels(0)[8..16], [0, 0, 13, 15, 10, 15, 5, 0]);
    }

    #[test]
    fn rows_and_images_hold_the_same_scaled_pixels() {
        let d = load();
        let idx = [3, 0, 1796];
        let rows = d.rows(&idx);
        let images = d.images(&idx);
        assert_eq!(rows.shape(), [3, PIXELS]);
        assert_eq!(images.shape(), [3, 1, SIDE, SIDE]);
        assert_eq!(rows.data(), images.data());
        for (k, &i) in idx.iter().enumerate() {
            for (p, &raw) in d.pixels(i).iter().enumerate() {
                assert_eq!(rows.row(k)[p], raw as f32 / 16.0);
            }
        }
        let hot = d.one_hot(&idx);
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(hot.row(k).iter().sum::<f32>(), 1.0);
            assert_eq!(hot.row(k)[d.labels()[i]], 1.0);
        }
    }

    #[test]
    fn bad_csv_lines_name_the_line_and_column() {
        let good = format!("{},3", vec!["0"; PIXELS].join(","));
        assert_eq!(parse(&good).unwrap().labels(), [3]);
        let short = format!("{good}\n1,2,3");
        assert_eq!(
            parse(&short),
            Err(DigitsError::Width {
                line: 2,
                expected: 65,
                found: 3
            })
        );
        let big_pixel = format!(
            "{},3",
            [vec!["17"], vec!["0"; PIXELS - 1]].concat().join(",")
        );
        assert!(matches!(
            parse(&big_pixel),
            Err(DigitsError::Value {
                line: 1,
                column: 1,
                ..
            })
        ));
        let bad_label = format!("{},10", vec!["0"; PIXELS].join(","));
        assert!(matches!(
            parse(&bad_label),
            Err(DigitsError::Value { column: 65, .. })
        ));
        assert_eq!(parse("\n\n"), Err(DigitsError::Empty));
    }

    #[test]
    fn the_split_holds_out_a_fifth_of_each_class_and_depends_on_the_seed_alone() {
        let d = load();
        let s = split(d.labels(), 0.2, 7);
        assert_eq!(s.train.len() + s.held_out.len(), SAMPLES);
        let counts = d.class_counts();
        for (c, &n) in counts.iter().enumerate() {
            let held = s.held_out.iter().filter(|&&i| d.labels()[i] == c).count();
            assert_eq!(held, (0.2 * n as f64).round() as usize, "class {c}");
        }
        let mut all: Vec<usize> = s.train.iter().chain(&s.held_out).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..SAMPLES).collect::<Vec<_>>());
        assert!(s.train.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(split(d.labels(), 0.2, 7), s);
        assert_ne!(split(d.labels(), 0.2, 8).held_out, s.held_out);
    }
}
