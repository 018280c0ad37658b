//! Dense displacement fields from cubic B-spline control grids (elastic deformation).
//!
//! The control grid follows `sitk.BSplineTransformInitializer(image, mesh)` with
//! `mesh = n - 3` control points per axis: the grid is aligned with the image
//! axes and its transform domain spans the image's continuous index range
//! padded by ITK's epsilon of 1/8 voxel, `[-0.625, size - 0.375]`, with one
//! extra control point before and two after. So the control-grid continuous
//! index of voxel index `v` along an axis is
//! `g = (v + 0.625) * mesh / (size + 0.25) + 1`, the support is
//! `floor(g) - 1 ..= floor(g) + 2` with cubic B-spline weights, exactly as
//! `sitk.BSplineTransform.TransformPoint`. Points whose support leaves the grid
//! get zero displacement (ITK returns them unchanged).
//!
//! Evaluation is separable: per axis, every voxel index has 4 weights and a
//! start index; the tensor product is contracted one axis at a time (K once
//! per grid, then I per plane, then J per row), so the cost is about 12 multiply-adds per output voxel and component.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::spatial::displacement::split_planes;
use crate::spatial::interpolation::cubic_weights;

/// Start index and weights of one voxel index along one axis (`None` outside the valid region).
type AxisSupport = Option<(usize, [f64; 4])>;

/// Control-grid support of every voxel index along an axis of `size` voxels
/// with `points` control points (ITK initializer conventions).
#[cfg(test)]
fn axis_supports(size: usize, points: usize) -> Vec<AxisSupport> {
    supports_at((0..size).map(|v| v as f64), size, points)
}

/// Control-grid support at continuous voxel indices `positions` along an
/// axis of `size` voxels with `points` control points.
fn supports_at(
    positions: impl Iterator<Item = f64>,
    size: usize,
    points: usize,
) -> Vec<AxisSupport> {
    let mesh = (points - 3) as f64;
    let scale = mesh / (size as f64 + 0.25);
    positions
        .map(|v| {
            let g = (v + 0.625) * scale + 1.0;
            // Supports start at 0 ..= points - 4: a first guard in float64
            // (also against NaN and far points, before any integer cast).
            if !(1.0..=(points - 2) as f64).contains(&g) {
                return None;
            }
            let base = g.floor();
            let mut start = base as i64 - 1;
            let mut t = g - base;
            // At the very end of the domain ITK keeps the point inside; the
            // last weight is zero there, so shift the support down by one.
            if start + 3 == points as i64 && t == 0.0 {
                start -= 1;
                t = 1.0;
            }
            if start < 0 || start + 3 > points as i64 - 1 {
                return None;
            }
            Some((start as usize, cubic_weights(t)))
        })
        .collect()
}

/// `sum_c w[c] s[c]`, accumulated from zero in order (every evaluation path
/// shares it, so they agree bit for bit).
#[inline(always)]
fn blend4(w: [f64; 4], s: [f64; 4]) -> f64 {
    let mut sum = 0.0;
    for c in 0..4 {
        sum += w[c] * s[c];
    }
    sum
}

/// A control grid prepared for evaluation on the points of a sampling grid
/// (the voxels of its image, or of another grid aligned with it): the
/// per-axis supports and the grid already contracted along K. Dense fields
/// ([`bspline_field`]) and the warp's on-the-fly rows both evaluate through
/// [`BSplineGrid::plane_rows`] and [`BSplineGrid::row`], so their
/// displacements are bit-identical.
#[derive(Debug, Clone)]
pub struct BSplineGrid {
    shape: [usize; 3],
    n1: usize,
    support_i: Vec<AxisSupport>,
    support_j: Vec<AxisSupport>,
    /// `t1[a][b][d][k] = sum_c w_k[c] * coef[a, b, start_k + c, d]`.
    t1: Vec<f64>,
}

impl BSplineGrid {
    /// Prepares `coefficients` `(n0, n1, n2, 3)` (displacements in mm, world
    /// components) for an image of spatial `shape`, with
    /// `sitk.BSplineTransformInitializer` conventions.
    ///
    /// # Errors
    /// Fewer than 4 control points along an axis, a last axis that is not 3,
    /// an empty shape, or non-finite coefficients.
    pub fn new(coefficients: ArrayView4<'_, f64>, shape: [usize; 3]) -> Result<Self> {
        let voxels = shape.map(|n| (0..n).map(|v| v as f64).collect::<Vec<_>>());
        Self::sampled(coefficients, shape, &voxels)
    }

    /// Prepares `coefficients` for an image of spatial `shape`, to be evaluated
    /// on a grid aligned with the image's axes whose points along axis `d`
    /// lie at the image's continuous voxel indices `positions[d]` (a finer
    /// or coarser grid, shifted or flipped). Points whose support leaves the
    /// control grid get zero displacement.
    ///
    /// # Errors
    /// As [`new`](Self::new), and empty `positions`.
    pub fn sampled(
        coefficients: ArrayView4<'_, f64>,
        shape: [usize; 3],
        positions: &[Vec<f64>; 3],
    ) -> Result<Self> {
        let (n0, n1, n2, components) = coefficients.dim();
        if components != 3 || n0 < 4 || n1 < 4 || n2 < 4 {
            return Err(Error::Shape(format!(
                "control points must have shape (n0, n1, n2, 3) with every n >= 4, got {:?}",
                coefficients.shape()
            )));
        }
        if shape.contains(&0) || positions.iter().any(Vec::is_empty) {
            return Err(Error::Empty(format!(
                "image shape {shape:?} or its sampling grid holds no voxels"
            )));
        }
        if coefficients.iter().any(|v| !v.is_finite()) {
            return Err(Error::InvalidArgument(
                "control points contain NaN or infinite values".into(),
            ));
        }
        let supports =
            |d: usize, points: usize| supports_at(positions[d].iter().copied(), shape[d], points);
        let support_k = supports(2, n2);
        let nk = support_k.len();
        let mut t1 = vec![0.0f64; n0 * n1 * 3 * nk];
        for a in 0..n0 {
            for b in 0..n1 {
                for d in 0..3 {
                    let row = &mut t1[((a * n1 + b) * 3 + d) * nk..][..nk];
                    for (k, value) in row.iter_mut().enumerate() {
                        if let Some((start, w)) = support_k[k] {
                            *value = (0..4)
                                .map(|c| w[c] * coefficients[[a, b, start + c, d]])
                                .sum();
                        }
                    }
                }
            }
        }
        Ok(Self {
            shape: positions.each_ref().map(Vec::len),
            n1,
            support_i: supports(0, n0),
            support_j: supports(1, n1),
            t1,
        })
    }

    /// Shape of the grid the control grid is evaluated on.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Length of the scratch [`plane_rows`](Self::plane_rows) fills.
    pub fn plane_len(&self) -> usize {
        self.n1 * 3 * self.shape[2]
    }

    /// Contracts the grid along I for output plane `i`:
    /// `rows[b][d][k] = sum_a w_i[a] t1[start_i + a][b][d][k]`. Returns false
    /// (and leaves `rows` alone) if the plane has zero displacement.
    pub fn plane_rows(&self, i: usize, rows: &mut [f64]) -> bool {
        let Some((start_i, w)) = self.support_i[i] else {
            return false;
        };
        let block = self.plane_len();
        let src = |a: usize| &self.t1[(start_i + a) * block..][..block];
        let (s0, s1, s2, s3) = (src(0), src(1), src(2), src(3));
        for (k, out) in rows[..block].iter_mut().enumerate() {
            *out = blend4(w, [s0[k], s1[k], s2[k], s3[k]]);
        }
        true
    }

    /// Displacement component `d` along row `j` of a plane whose
    /// [`plane_rows`](Self::plane_rows) are `rows`, rounded to float32 like a
    /// dense field. Returns false (and leaves `out` alone) if the row has zero
    /// displacement.
    pub fn row(&self, rows: &[f64], j: usize, d: usize, out: &mut [f32]) -> bool {
        let Some((start_j, w)) = self.support_j[j] else {
            return false;
        };
        let nk = self.shape[2];
        let src = |b: usize| &rows[((start_j + b) * 3 + d) * nk..][..nk];
        let (s0, s1, s2, s3) = (src(0), src(1), src(2), src(3));
        for (k, value) in out[..nk].iter_mut().enumerate() {
            *value = blend4(w, [s0[k], s1[k], s2[k], s3[k]]) as f32;
        }
        true
    }

    /// The displacement at voxel `index`, with the arithmetic of
    /// [`plane_rows`](Self::plane_rows) and [`row`](Self::row) (so equal to the
    /// dense field's value there), widened back to float64.
    pub fn at_voxel(&self, index: [usize; 3]) -> [f64; 3] {
        let [i, j, k] = index;
        let (Some((start_i, w_i)), Some((start_j, w_j))) = (self.support_i[i], self.support_j[j])
        else {
            return [0.0; 3];
        };
        let nk = self.shape[2];
        let block = self.plane_len();
        let mut out = [0.0; 3];
        for (d, value) in out.iter_mut().enumerate() {
            let row = |b: usize| {
                let at =
                    |a: usize| self.t1[(start_i + a) * block + ((start_j + b) * 3 + d) * nk + k];
                blend4(w_i, [at(0), at(1), at(2), at(3)])
            };
            *value = blend4(w_j, [row(0), row(1), row(2), row(3)]) as f32 as f64;
        }
        out
    }

    /// Evaluates the grid into a dense `(3, I, J, K)` `f32` field.
    pub fn dense(&self) -> Result<Array4<f32>> {
        let [ni, nj, nk] = self.shape;
        let plane = nj * nk;
        let mut field = Array4::<f32>::zeros((3, ni, nj, nk));
        let Some(buffer) = field.as_slice_mut() else {
            return Err(Error::Shape(
                "freshly allocated output is not contiguous".into(),
            ));
        };
        // One task per output I plane of the 3 components; the I contraction
        // (a few kilobytes) stays in L1 and the J one writes the output rows,
        // so writing the field is the only large memory traffic.
        split_planes(buffer, 3, plane)
            .into_par_iter()
            .enumerate()
            .for_each_init(
                || vec![0.0f64; self.plane_len()],
                |rows, (i, mut planes)| {
                    if !self.plane_rows(i, rows) {
                        return;
                    }
                    for (d, out) in planes.iter_mut().enumerate() {
                        for (j, out_row) in out.chunks_mut(nk).enumerate() {
                            self.row(rows, j, d, out_row);
                        }
                    }
                },
            );
        Ok(field)
    }
}

/// Evaluates the control grid `coefficients` `(n0, n1, n2, 3)` (displacements
/// in mm, world components) into a dense `(3, I, J, K)` `f32` field on an image
/// of spatial `shape`, with `sitk.BSplineTransformInitializer` conventions.
///
/// # Errors
/// Fewer than 4 control points along an axis, a last axis that is not 3, an
/// empty shape, or non-finite coefficients.
pub fn bspline_field(coefficients: ArrayView4<'_, f64>, shape: [usize; 3]) -> Result<Array4<f32>> {
    BSplineGrid::new(coefficients, shape)?.dense()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array4;

    /// Direct (non-separable) evaluation at one voxel, for comparison.
    fn direct(coefficients: &Array4<f64>, shape: [usize; 3], v: [usize; 3]) -> [f64; 3] {
        let (n0, n1, n2, _) = coefficients.dim();
        let s = [
            axis_supports(shape[0], n0)[v[0]],
            axis_supports(shape[1], n1)[v[1]],
            axis_supports(shape[2], n2)[v[2]],
        ];
        let mut out = [0.0; 3];
        let (Some((a0, wa)), Some((b0, wb)), Some((c0, wc))) = (s[0], s[1], s[2]) else {
            return out;
        };
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..3 {
                        out[d] += wa[a] * wb[b] * wc[c] * coefficients[[a0 + a, b0 + b, c0 + c, d]];
                    }
                }
            }
        }
        out
    }

    #[test]
    fn separable_equals_direct_evaluation() {
        let coefficients = Array4::from_shape_fn((5, 6, 7, 3), |(a, b, c, d)| {
            (((a * 31 + b * 17 + c * 7 + d * 3) % 19) as f64 - 9.0) * 0.25
        });
        let shape = [9, 4, 11];
        let field = bspline_field(coefficients.view(), shape).unwrap();
        for i in 0..9 {
            for j in 0..4 {
                for k in 0..11 {
                    let expected = direct(&coefficients, shape, [i, j, k]);
                    for d in 0..3 {
                        assert!((field[[d, i, j, k]] as f64 - expected[d]).abs() < 1e-5);
                    }
                }
            }
        }
    }

    #[test]
    fn constant_grid_gives_constant_field_and_supports_stay_inside() {
        let mut coefficients = Array4::<f64>::zeros((4, 7, 5, 3));
        for d in 0..3 {
            coefficients
                .index_axis_mut(ndarray::Axis(3), d)
                .fill(d as f64 + 1.0);
        }
        let field = bspline_field(coefficients.view(), [3, 50, 1]).unwrap();
        for d in 0..3 {
            assert!(field
                .index_axis(ndarray::Axis(0), d)
                .iter()
                .all(|&v| (v - (d as f32 + 1.0)).abs() < 1e-6));
        }
        for (size, points) in [(1, 4), (2, 4), (256, 7), (1000, 30)] {
            assert!(axis_supports(size, points).iter().all(Option::is_some));
        }
    }

    #[test]
    fn bad_control_grids_are_errors() {
        let small = Array4::<f64>::zeros((3, 4, 4, 3));
        assert!(bspline_field(small.view(), [4, 4, 4]).is_err());
        let two = Array4::<f64>::zeros((4, 4, 4, 2));
        assert!(bspline_field(two.view(), [4, 4, 4]).is_err());
        let mut nan = Array4::<f64>::zeros((4, 4, 4, 3));
        nan[[0, 0, 0, 0]] = f64::NAN;
        assert!(bspline_field(nan.view(), [4, 4, 4]).is_err());
        let ok = Array4::<f64>::zeros((4, 4, 4, 3));
        assert!(bspline_field(ok.view(), [4, 0, 4]).is_err());
    }
}
