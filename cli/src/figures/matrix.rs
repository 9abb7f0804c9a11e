//! The plain data heatmaps are drawn from.

use super::FigureError;

/// A row-major matrix of `rows x cols` values.
///
/// Invariant: `values.len() == rows * cols` (checked by [`Matrix::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Matrix {
    /// A `rows x cols` matrix from its row-major `values`; `what` names it in the error when
    /// the length is not `rows * cols`.
    pub fn new(
        what: &str,
        rows: usize,
        cols: usize,
        values: Vec<f32>,
    ) -> Result<Self, FigureError> {
        if values.len() != rows * cols {
            return Err(FigureError::Length {
                what: format!("{what} [{rows}, {cols}]"),
                expected: rows * cols,
                got: values.len(),
            });
        }
        Ok(Self { rows, cols, values })
    }

    /// A matrix from a list of equally long rows (`[rows][cols]`).
    pub fn from_rows(what: &str, rows: &[Vec<f32>]) -> Result<Self, FigureError> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut values = Vec::with_capacity(rows.len() * cols);
        for (i, row) in rows.iter().enumerate() {
            if row.len() != cols {
                return Err(FigureError::Length {
                    what: format!("{what} row {i}"),
                    expected: cols,
                    got: row.len(),
                });
            }
            values.extend_from_slice(row);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            values,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The value at row `i`, column `j`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.values[i * self.cols + j]
    }
}

/// One parameter tensor of a model or of a subnetwork: its name, its shape and its values.
///
/// It is drawn as a matrix: a shape `[rows, cols]` as is, a vector `[n]` as one row `[1, n]`, a
/// scalar `[]` as `[1, 1]`, and a tensor of more modes `[d0, d1, ...]` as `[d0, d1 * ...]`.
/// Invariant: the number of values is the product of the shape (checked by [`ParamTensor::new`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamTensor {
    name: String,
    shape: Vec<usize>,
    matrix: Matrix,
}

impl ParamTensor {
    /// A tensor named `name` of `shape` with row-major `values`.
    pub fn new(name: &str, shape: &[usize], values: Vec<f32>) -> Result<Self, FigureError> {
        let (rows, cols) = match shape {
            [] => (1, 1),
            [n] => (1, *n),
            [rows, rest @ ..] => (*rows, rest.iter().product()),
        };
        Ok(Self {
            name: name.to_string(),
            shape: shape.to_vec(),
            matrix: Matrix::new(name, rows, cols, values)?,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The tensor laid out as the matrix that is drawn.
    pub fn matrix(&self) -> &Matrix {
        &self.matrix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_map_to_matrices() {
        let v = ParamTensor::new("b", &[3], vec![1.0, 2.0, 3.0]).unwrap();
        assert_eq!((v.matrix().rows(), v.matrix().cols()), (1, 3));
        let s = ParamTensor::new("s", &[], vec![1.0]).unwrap();
        assert_eq!((s.matrix().rows(), s.matrix().cols()), (1, 1));
        let t = ParamTensor::new("k", &[2, 3, 4], vec![0.0; 24]).unwrap();
        assert_eq!((t.matrix().rows(), t.matrix().cols()), (2, 12));
        assert_eq!(t.matrix().get(1, 11), 0.0);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        assert!(matches!(
            ParamTensor::new("W", &[2, 2], vec![0.0; 3]),
            Err(FigureError::Length {
                expected: 4,
                got: 3,
                ..
            })
        ));
        assert!(Matrix::from_rows("A", &[vec![1.0, 2.0], vec![3.0]]).is_err());
        assert_eq!(Matrix::from_rows("A", &[]).unwrap().rows(), 0);
    }
}
