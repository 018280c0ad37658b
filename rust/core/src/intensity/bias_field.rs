//! TorchIO's `BiasField`: a smooth multiplicative field
//! `exp(sum_{p+q+r <= order} c_pqr x^p y^q z^r)` over voxel coordinates
//! normalised to `[-1, 1]` per axis, multiplied into every channel (or divided
//! out, for the inverse).
//!
//! Coordinates follow TorchIO: along an axis of length `n`,
//! `u_t = (t - n/2 + 0.5) / (n/2 - 0.5)` (0 when `n == 1`). Coefficients are
//! ordered with `p` outermost, then `q`, then `r` innermost, each running from
//! 0 to what the total order leaves. The polynomial is evaluated separably:
//! per row `(i, j)` the coefficients of the polynomial in `z` are formed in
//! float64 from the per-axis powers, then every voxel costs one float32 Horner
//! evaluation and one `exp`, fused with the multiplication into the image.

use ndarray::{Array3, Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, zeroed, Voxel};

/// A voxel type and the type of `voxel * float32` under PyTorch's promotion
/// rules: float64 stays float64, every other type becomes float32.
pub trait Float32Promotion: Voxel {
    /// The promoted (output) type.
    type Out: Voxel + Copy + Send + Sync;
    /// Multiplies by a float32 factor in the promoted type.
    fn mul_f32(self, factor: f32) -> Self::Out;
    /// Adds a float32 term in the promoted type.
    fn add_f32(self, term: f32) -> Self::Out;
}

macro_rules! impl_promotion_to_f32 {
    ($($t:ty),*) => {$(
        impl Float32Promotion for $t {
            type Out = f32;
            #[inline(always)]
            fn mul_f32(self, factor: f32) -> f32 {
                self as f32 * factor
            }
            #[inline(always)]
            fn add_f32(self, term: f32) -> f32 {
                self as f32 + term
            }
        }
    )*};
}

impl_promotion_to_f32!(f32, u8, i16, i32, i64);

impl Float32Promotion for f64 {
    type Out = f64;
    #[inline(always)]
    fn mul_f32(self, factor: f32) -> f64 {
        self * factor as f64
    }
    #[inline(always)]
    fn add_f32(self, term: f32) -> f64 {
        self + term as f64
    }
}

/// Number of coefficients of a bias field of total degree `order`:
/// `(order + 1)(order + 2)(order + 3) / 6`.
pub fn num_coefficients(order: usize) -> usize {
    (order + 1) * (order + 2) * (order + 3) / 6
}

/// TorchIO's normalised coordinates of an axis of length `n`.
pub fn normalized_coordinates(n: usize) -> Vec<f64> {
    let half = n as f64 / 2.0;
    let max = half - 0.5;
    (0..n)
        .map(|t| {
            let u = (t as f64 - half) + 0.5;
            if max > 0.0 {
                u / max
            } else {
                u
            }
        })
        .collect()
}

/// Powers `u^0 ..= u^order` of each coordinate, `powers[e][t]`.
fn powers(coordinates: &[f64], order: usize) -> Vec<Vec<f64>> {
    let mut table = vec![vec![1.0; coordinates.len()]];
    for e in 1..=order {
        let next: Vec<f64> = table[e - 1]
            .iter()
            .zip(coordinates)
            .map(|(p, u)| p * u)
            .collect();
        table.push(next);
    }
    table
}

/// Validated polynomial: per-axis power tables and coefficients by `[p][q][r]`.
struct Polynomial {
    order: usize,
    /// `coefficient[p][q][r]` (0 where `p + q + r > order`).
    coefficient: Vec<Vec<Vec<f64>>>,
    x: Vec<Vec<f64>>,
    y: Vec<Vec<f64>>,
    /// Normalised K coordinates in float32.
    z: Vec<f32>,
}

impl Polynomial {
    fn new(shape: [usize; 3], order: usize, coefficients: &[f64]) -> Result<Self> {
        let needed = num_coefficients(order);
        ensure(coefficients.len() >= needed, || {
            format!(
                "a bias field of order {order} needs {needed} coefficients, got {}",
                coefficients.len()
            )
        })?;
        ensure(coefficients.iter().all(|c| c.is_finite()), || {
            format!("bias field coefficients must be finite, got {coefficients:?}")
        })?;
        let mut coefficient = vec![vec![vec![0.0; order + 1]; order + 1]; order + 1];
        let mut values = coefficients.iter();
        for (p, by_q) in coefficient.iter_mut().enumerate() {
            for (q, by_r) in by_q.iter_mut().enumerate().take(order + 1 - p) {
                for c in by_r.iter_mut().take(order + 1 - p - q) {
                    *c = values.next().copied().unwrap_or(0.0);
                }
            }
        }
        let z = normalized_coordinates(shape[2])
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Ok(Self {
            order,
            coefficient,
            x: powers(&normalized_coordinates(shape[0]), order),
            y: powers(&normalized_coordinates(shape[1]), order),
            z,
        })
    }

    /// Coefficients `g_r` of the polynomial in `z` along row `(i, j)`.
    fn row_coefficients(&self, i: usize, j: usize) -> Vec<f32> {
        (0..=self.order)
            .map(|r| {
                let mut g = 0.0;
                for p in 0..=(self.order - r) {
                    for q in 0..=(self.order - r - p) {
                        g += self.coefficient[p][q][r] * self.x[p][i] * self.y[q][j];
                    }
                }
                g as f32
            })
            .collect()
    }

    /// Writes the field (or its reciprocal) of row `(i, j)` into `row`.
    fn fill_row(&self, i: usize, j: usize, reciprocal: bool, row: &mut [f32]) {
        let g = self.row_coefficients(i, j);
        for (out, &z) in row.iter_mut().zip(&self.z) {
            // Horner in float32.
            let mut poly = g[self.order];
            for r in (0..self.order).rev() {
                poly = poly * z + g[r];
            }
            let field = poly.exp();
            *out = if reciprocal { 1.0 / field } else { field };
        }
    }
}

/// The bias field `(I, J, K)` as float32 (TorchIO's `generate_bias_field`).
pub fn bias_field_map(
    shape: [usize; 3],
    order: usize,
    coefficients: &[f64],
) -> Result<Array3<f32>> {
    if shape.contains(&0) {
        return Err(Error::Empty(format!("shape {shape:?} holds no voxels")));
    }
    let polynomial = Polynomial::new(shape, order, coefficients)?;
    let [ni, nj, nk] = shape;
    let mut field = Array3::<f32>::zeros((ni, nj, nk));
    let Some(out) = field.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    out.par_chunks_mut(nj * nk)
        .enumerate()
        .for_each(|(i, plane)| {
            for (j, row) in plane.chunks_mut(nk).enumerate() {
                polynomial.fill_row(i, j, false, row);
            }
        });
    Ok(field)
}

/// Multiplies every channel of `volume` `(C, I, J, K)` by the bias field, or
/// by its float32 reciprocal when `invert` is set (TorchIO's inverse).
///
/// The output type follows PyTorch's `tensor * float32_tensor` promotion:
/// float64 for float64 volumes, float32 otherwise.
pub fn apply_bias_field<T: Float32Promotion>(
    volume: ArrayView4<'_, T>,
    order: usize,
    coefficients: &[f64],
    invert: bool,
) -> Result<Array4<T::Out>> {
    check_not_empty(&volume, "volume")?;
    let (c, ni, nj, nk) = volume.dim();
    let polynomial = Polynomial::new([ni, nj, nk], order, coefficients)?;
    let mut output = zeroed::<T::Out, _, _>((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    let input = volume.as_standard_layout();
    let Some(data) = input.as_slice() else {
        return Err(Error::Shape("input could not be made contiguous".into()));
    };
    let plane_len = nj * nk;
    let channel_len = ni * plane_len;
    // Group the output planes by i, so one task computes the field of a plane
    // once and applies it to every channel.
    let mut groups: Vec<Vec<&mut [T::Out]>> = (0..ni).map(|_| Vec::with_capacity(c)).collect();
    for (index, plane) in out.chunks_mut(plane_len).enumerate() {
        groups[index % ni].push(plane);
    }
    groups.par_iter_mut().enumerate().for_each_init(
        || vec![0f32; nk],
        |row_field, (i, planes)| {
            for j in 0..nj {
                polynomial.fill_row(i, j, invert, row_field);
                for (channel, plane) in planes.iter_mut().enumerate() {
                    let start = channel * channel_len + i * plane_len + j * nk;
                    let source = &data[start..start + nk];
                    let target = &mut plane[j * nk..(j + 1) * nk];
                    for ((o, &v), &f) in target.iter_mut().zip(source).zip(row_field.iter()) {
                        *o = v.mul_f32(f);
                    }
                }
            }
        },
    );
    Ok(output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn naive_field(shape: [usize; 3], order: usize, coefficients: &[f64]) -> Array3<f64> {
        let x = normalized_coordinates(shape[0]);
        let y = normalized_coordinates(shape[1]);
        let z = normalized_coordinates(shape[2]);
        Array3::from_shape_fn((shape[0], shape[1], shape[2]), |(i, j, k)| {
            let mut sum = 0.0;
            let mut index = 0;
            for p in 0..=order {
                for q in 0..=(order - p) {
                    for r in 0..=(order - p - q) {
                        sum += coefficients[index]
                            * x[i].powi(p as i32)
                            * y[j].powi(q as i32)
                            * z[k].powi(r as i32);
                        index += 1;
                    }
                }
            }
            sum.exp()
        })
    }

    #[test]
    fn coordinates_match_torchio() {
        assert_eq!(normalized_coordinates(1), vec![0.0]);
        assert_eq!(
            normalized_coordinates(4),
            vec![-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]
        );
        assert_eq!(normalized_coordinates(5), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        assert_eq!(num_coefficients(3), 20);
        assert_eq!(num_coefficients(0), 1);
    }

    #[test]
    fn field_matches_naive_evaluation() {
        for order in [0usize, 1, 2, 3, 4] {
            let n = num_coefficients(order);
            let coefficients: Vec<f64> = (0..n).map(|t| ((t * 7) % 5) as f64 * 0.1 - 0.2).collect();
            let shape = [5, 6, 7];
            let field = bias_field_map(shape, order, &coefficients).unwrap();
            let expected = naive_field(shape, order, &coefficients);
            for (a, b) in field.iter().zip(expected.iter()) {
                assert!(
                    ((*a as f64) - b).abs() <= 2e-6 * b,
                    "order {order}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn zero_coefficients_are_identity_and_inverse_undoes() {
        let volume = Array::from_shape_fn((2, 3, 4, 5), |(c, i, j, k)| (c + i + j + k) as f32);
        let out = apply_bias_field(volume.view(), 2, &[0.0; 10], false).unwrap();
        assert_eq!(out, volume);
        let coefficients: Vec<f64> = (0..10).map(|t| t as f64 * 0.05).collect();
        let biased = apply_bias_field(volume.view(), 2, &coefficients, false).unwrap();
        let restored = apply_bias_field(biased.view(), 2, &coefficients, true).unwrap();
        for (a, b) in restored.iter().zip(volume.iter()) {
            assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0));
        }
    }

    #[test]
    fn integer_input_promotes_to_f32_and_bad_coefficients_fail() {
        let volume = Array4::<i16>::from_elem((1, 2, 2, 2), 3);
        let out = apply_bias_field(volume.view(), 0, &[0.0], false).unwrap();
        assert_eq!(out, Array4::<f32>::from_elem((1, 2, 2, 2), 3.0));
        assert!(apply_bias_field(volume.view(), 1, &[0.0; 3], false).is_err());
        assert!(apply_bias_field(volume.view(), 0, &[f64::NAN], false).is_err());
    }
}
