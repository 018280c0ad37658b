//! 4x4 homogeneous affine matrices (RAS+, voxel index -> world mm, or world -> world).
//!
//! Matrices are row-major `[[f64; 4]; 4]` with last row `[0, 0, 0, 1]`. Every
//! matrix that enters a kernel is validated once ([`check_affine`]): finite,
//! affine (last row exact) and invertible.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// A row-major 4x4 homogeneous matrix.
pub type Matrix4 = [[f64; 4]; 4];

/// The identity matrix.
pub const IDENTITY: Matrix4 = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// Determinant of the upper-left 3x3 block.
fn determinant3(m: &Matrix4) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

/// Fails unless `m` is finite, has last row `[0, 0, 0, 1]` and an invertible
/// linear part (determinant not negligible against its column norms).
pub fn check_affine(m: &Matrix4, name: &str) -> Result<()> {
    if m.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "{name} must be finite, got {m:?}"
        )));
    }
    if m[3] != [0.0, 0.0, 0.0, 1.0] {
        return Err(Error::InvalidArgument(format!(
            "{name} must have last row [0, 0, 0, 1], got {:?}",
            m[3]
        )));
    }
    let norms: f64 = (0..3)
        .map(|col| {
            (0..3)
                .map(|row| m[row][col] * m[row][col])
                .sum::<f64>()
                .sqrt()
        })
        .product();
    let det = determinant3(m);
    if norms == 0.0 || det.abs() <= 1e-12 * norms {
        return Err(Error::InvalidArgument(format!(
            "{name} is singular (determinant {det:e}): {m:?}"
        )));
    }
    Ok(())
}

/// Reads a `(4, 4)` array into a [`Matrix4`] and validates it.
pub fn from_view(view: ArrayView2<'_, f64>, name: &str) -> Result<Matrix4> {
    if view.shape() != [4, 4] {
        return Err(Error::Shape(format!(
            "{name} must have shape (4, 4), got {:?}",
            view.shape()
        )));
    }
    let mut m = IDENTITY;
    for (r, row) in m.iter_mut().enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = view[[r, c]];
        }
    }
    check_affine(&m, name)?;
    Ok(m)
}

/// Returns `a * b` (apply `b` first, then `a`).
pub fn multiply(a: &Matrix4, b: &Matrix4) -> Matrix4 {
    let mut out = [[0.0; 4]; 4];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = (0..4).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// Inverse of a validated affine matrix (closed form: inverse of the 3x3
/// block by cofactors, translation `-A^-1 t`).
pub fn invert(m: &Matrix4) -> Result<Matrix4> {
    check_affine(m, "affine")?;
    let det = determinant3(m);
    let a = |r: usize, c: usize| m[r][c];
    let mut inv = IDENTITY;
    inv[0][0] = (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1)) / det;
    inv[0][1] = (a(0, 2) * a(2, 1) - a(0, 1) * a(2, 2)) / det;
    inv[0][2] = (a(0, 1) * a(1, 2) - a(0, 2) * a(1, 1)) / det;
    inv[1][0] = (a(1, 2) * a(2, 0) - a(1, 0) * a(2, 2)) / det;
    inv[1][1] = (a(0, 0) * a(2, 2) - a(0, 2) * a(2, 0)) / det;
    inv[1][2] = (a(0, 2) * a(1, 0) - a(0, 0) * a(1, 2)) / det;
    inv[2][0] = (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0)) / det;
    inv[2][1] = (a(0, 1) * a(2, 0) - a(0, 0) * a(2, 1)) / det;
    inv[2][2] = (a(0, 0) * a(1, 1) - a(0, 1) * a(1, 0)) / det;
    for row in inv.iter_mut().take(3) {
        row[3] = -(0..3).map(|k| row[k] * m[k][3]).sum::<f64>();
    }
    Ok(inv)
}

/// Applies `m` to the point `p`.
#[inline(always)]
pub fn apply(m: &Matrix4, p: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * p[0] + m[0][1] * p[1] + m[0][2] * p[2] + m[0][3],
        m[1][0] * p[0] + m[1][1] * p[1] + m[1][2] * p[2] + m[1][3],
        m[2][0] * p[0] + m[2][1] * p[1] + m[2][2] * p[2] + m[2][3],
    ]
}

/// Column `c` (0..3) of the linear part: the image of a unit step along axis `c`.
#[inline(always)]
pub fn column(m: &Matrix4, c: usize) -> [f64; 3] {
    [m[0][c], m[1][c], m[2][c]]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn example() -> Matrix4 {
        [
            [0.0, -2.0, 0.1, 10.0],
            [1.5, 0.0, 0.0, -3.0],
            [0.0, 0.3, 0.8, 7.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    #[test]
    fn inverse_times_matrix_is_identity() {
        let m = example();
        let product = multiply(&invert(&m).unwrap(), &m);
        for r in 0..4 {
            for c in 0..4 {
                assert!((product[r][c] - IDENTITY[r][c]).abs() < 1e-12);
            }
        }
        let p = [1.0, 2.0, 3.0];
        let back = apply(&invert(&m).unwrap(), apply(&m, p));
        for d in 0..3 {
            assert!((back[d] - p[d]).abs() < 1e-12);
        }
    }

    #[test]
    fn singular_nan_and_projective_matrices_are_rejected() {
        let mut m = example();
        m[2] = [0.0, 0.0, 0.0, 1.0];
        assert!(matches!(
            check_affine(&m, "a"),
            Err(Error::InvalidArgument(_))
        ));
        let mut m = example();
        m[0][0] = f64::NAN;
        assert!(check_affine(&m, "a").is_err());
        let mut m = example();
        m[3][0] = 1.0;
        assert!(check_affine(&m, "a").is_err());
        assert!(invert(&[[0.0; 4]; 4]).is_err());
    }
}
