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
//! start index; the tensor product is contracted one axis at a time (K, then
//! I, then J), so the cost is about 12 multiply-adds per output voxel and component.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::spatial::displacement::split_planes;
use crate::spatial::interpolation::cubic_weights;

/// Start index and weights of one voxel index along one axis (`None` outside the valid region).
type AxisSupport = Option<(usize, [f64; 4])>;

/// Control-grid support of every voxel index along an axis of `size` voxels
/// with `points` control points (ITK initializer conventions).
fn axis_supports(size: usize, points: usize) -> Vec<AxisSupport> {
    let mesh = (points - 3) as f64;
    let scale = mesh / (size as f64 + 0.25);
    (0..size)
        .map(|v| {
            let g = (v as f64 + 0.625) * scale + 1.0;
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

/// Evaluates the control grid `coefficients` `(n0, n1, n2, 3)` (displacements
/// in mm, world components) into a dense `(3, I, J, K)` `f32` field on an image
/// of spatial `shape`, with `sitk.BSplineTransformInitializer` conventions.
///
/// # Errors
/// Fewer than 4 control points along an axis, a last axis that is not 3, an
/// empty shape, or non-finite coefficients.
pub fn bspline_field(coefficients: ArrayView4<'_, f64>, shape: [usize; 3]) -> Result<Array4<f32>> {
    let dims = coefficients.dim();
    let (n0, n1, n2, components) = dims;
    if components != 3 || n0 < 4 || n1 < 4 || n2 < 4 {
        return Err(Error::Shape(format!(
            "control points must have shape (n0, n1, n2, 3) with every n >= 4, got {:?}",
            coefficients.shape()
        )));
    }
    if shape.contains(&0) {
        return Err(Error::Empty(format!(
            "image shape {shape:?} holds no voxels"
        )));
    }
    if coefficients.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(
            "control points contain NaN or infinite values".into(),
        ));
    }
    let [ni, nj, nk] = shape;
    let support_i = axis_supports(ni, n0);
    let support_j = axis_supports(nj, n1);
    let support_k = axis_supports(nk, n2);

    // Stage 1, along K: t1[a][b][d][k] = sum_c w_k[c] * coef[a, b, start_k + c, d].
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
    // Stages 2 and 3, one task per output I plane of the 3 components. Along I:
    // row[b][d][k] = sum_a w_i[a] * t1[start_i + a][b][d][k], a few kilobytes that
    // stay in L1; then along J, straight into the output rows. Contracting I
    // before J keeps every intermediate per plane, so the only large memory
    // traffic is writing the field itself.
    let plane = nj * nk;
    let mut field = Array4::<f32>::zeros((3, ni, nj, nk));
    let Some(buffer) = field.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let block = n1 * 3 * nk;
    split_planes(buffer, 3, plane)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || (vec![0.0f64; block], vec![0.0f64; nk]),
            |(rows, accumulator), (i, mut planes)| {
                let Some((start_i, w_i)) = support_i[i] else {
                    return;
                };
                rows.iter_mut().for_each(|v| *v = 0.0);
                for (a, &weight) in w_i.iter().enumerate() {
                    let src = &t1[(start_i + a) * block..][..block];
                    rows.iter_mut()
                        .zip(src)
                        .for_each(|(o, &s)| *o += weight * s);
                }
                for (d, out) in planes.iter_mut().enumerate() {
                    for (j, out_row) in out.chunks_mut(nk).enumerate() {
                        let Some((start_j, w_j)) = support_j[j] else {
                            continue;
                        };
                        accumulator.iter_mut().for_each(|v| *v = 0.0);
                        for (b, &weight) in w_j.iter().enumerate() {
                            let src = &rows[((start_j + b) * 3 + d) * nk..][..nk];
                            accumulator
                                .iter_mut()
                                .zip(src)
                                .for_each(|(o, &s)| *o += weight * s);
                        }
                        out_row
                            .iter_mut()
                            .zip(accumulator.iter())
                            .for_each(|(o, &s)| *o = s as f32);
                    }
                }
            },
        );
    Ok(field)
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
