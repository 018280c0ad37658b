//! Dense displacement fields: sampling and numerical inversion.
//!
//! A field is a `(3, I, J, K)` `f32` array of displacements in mm (RAS world
//! vectors) defined on a grid with a voxel -> world affine. As a coordinate
//! transform it maps a world point `p` to `p + u(p)`, where `u` is sampled
//! trilinearly at `p`'s continuous index in the field grid with the same
//! semantics as ITK's `DisplacementFieldTransform`: inside `[-0.5, n - 0.5)` the
//! neighbours are clamped to the grid, outside the displacement is zero.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::affine::{self, Matrix4};
use crate::error::{ensure, Error, Result};
use crate::spatial::interpolation::{inside, linear_neighbours};

/// Trilinear sampler of a displacement field in world coordinates.
pub struct FieldSampler<'a> {
    data: &'a [f32],
    dims: [usize; 3],
    world_to_index: Matrix4,
    index_to_world: Matrix4,
}

/// Checks that `field` is a non-empty, C-contiguous `(3, I, J, K)` array of finite values.
pub fn check_field(field: &ArrayView4<'_, f32>, name: &str) -> Result<()> {
    let shape = field.shape();
    if shape[0] != 3 || shape[1..].contains(&0) {
        return Err(Error::Shape(format!(
            "{name} must have shape (3, I, J, K) with I, J, K >= 1, got {shape:?}"
        )));
    }
    let Some(values) = field.as_slice() else {
        return Err(Error::Shape(format!("{name} must be C-contiguous")));
    };
    ensure(all_finite(values), || {
        format!("{name} contains NaN or infinite displacements")
    })
}

/// Whether every value is finite: chunks checked in parallel, each with a
/// branch-free fold that vectorises (a dense field of a brain holds 26M).
fn all_finite(values: &[f32]) -> bool {
    const CHUNK: usize = 1 << 16;
    values
        .par_chunks(CHUNK)
        .all(|chunk| chunk.iter().fold(true, |finite, v| finite & v.is_finite()))
}

impl<'a> FieldSampler<'a> {
    /// Wraps a checked field and its voxel -> world `affine`.
    pub fn new(field: &'a ArrayView4<'_, f32>, affine: &Matrix4) -> Result<Self> {
        check_field(field, "displacement field")?;
        let world_to_index = affine::invert(affine)?;
        let Some(data) = field.as_slice() else {
            return Err(Error::Shape(
                "displacement field must be C-contiguous".into(),
            ));
        };
        let s = field.shape();
        Ok(Self {
            data,
            dims: [s[1], s[2], s[3]],
            world_to_index,
            index_to_world: *affine,
        })
    }

    /// Whether the field is defined on exactly this grid (shape and affine).
    pub fn is_on_grid(&self, shape: [usize; 3], affine: &Matrix4) -> bool {
        self.dims == shape && self.index_to_world == *affine
    }

    /// Displacement stored at grid voxel `(i, j, k)` (no interpolation).
    #[inline(always)]
    pub fn at_voxel(&self, i: usize, j: usize, k: usize) -> [f64; 3] {
        let [ni, nj, nk] = self.dims;
        let offset = (i * nj + j) * nk + k;
        let volume = ni * nj * nk;
        [
            self.data[offset] as f64,
            self.data[volume + offset] as f64,
            self.data[2 * volume + offset] as f64,
        ]
    }

    /// Displacement (mm) at world point `p`; zero outside the field's grid.
    #[inline(always)]
    pub fn displacement(&self, p: [f64; 3]) -> [f64; 3] {
        let x = affine::apply(&self.world_to_index, p);
        let [ni, nj, nk] = self.dims;
        if !(inside(x[0], ni) && inside(x[1], nj) && inside(x[2], nk)) {
            return [0.0; 3];
        }
        let (i0, i1, wi) = linear_neighbours(x[0], ni);
        let (j0, j1, wj) = linear_neighbours(x[1], nj);
        let (k0, k1, wk) = linear_neighbours(x[2], nk);
        let plane = nj * nk;
        let volume = ni * plane;
        let mut out = [0.0; 3];
        for (component, value) in out.iter_mut().enumerate() {
            let base = component * volume;
            let at = |i: usize, j: usize, k: usize| self.data[base + i * plane + j * nk + k] as f64;
            let c00 = at(i0, j0, k0) + (at(i0, j0, k1) - at(i0, j0, k0)) * wk;
            let c01 = at(i0, j1, k0) + (at(i0, j1, k1) - at(i0, j1, k0)) * wk;
            let c10 = at(i1, j0, k0) + (at(i1, j0, k1) - at(i1, j0, k0)) * wk;
            let c11 = at(i1, j1, k0) + (at(i1, j1, k1) - at(i1, j1, k0)) * wk;
            let c0 = c00 + (c01 - c00) * wj;
            let c1 = c10 + (c11 - c10) * wj;
            *value = c0 + (c1 - c0) * wi;
        }
        out
    }
}

/// Splits a C-order `(C, N, plane)` buffer into `N` groups of `C` mutable
/// planes, so one task can write plane `n` of every channel.
pub(crate) fn split_planes<T>(
    buffer: &mut [T],
    channels: usize,
    plane: usize,
) -> Vec<Vec<&mut [T]>> {
    if channels == 0 || plane == 0 {
        return Vec::new();
    }
    let per_channel = buffer.len() / channels;
    let planes_per_channel = per_channel / plane;
    let mut groups: Vec<Vec<&mut [T]>> = (0..planes_per_channel)
        .map(|_| Vec::with_capacity(channels))
        .collect();
    for channel in buffer.chunks_mut(per_channel) {
        for (n, p) in channel.chunks_mut(plane).enumerate() {
            groups[n].push(p);
        }
    }
    groups
}

/// Numerically inverts the coordinate transform `p -> p + u(p)` of `field`.
///
/// Returns the field `v` on the same grid such that `q + v(q) + u(q + v(q)) = q`
/// at every grid point `q`, by the fixed-point iteration `v <- -u(q + v)`
/// (starting from `v = -u(q)`), stopping per voxel when the update is below
/// `tolerance` mm or after `iterations` steps. Converges where the forward
/// transform does not fold (Jacobian of `u` with norm below 1).
pub fn invert_field(
    field: ArrayView4<'_, f32>,
    affine: &Matrix4,
    iterations: usize,
    tolerance: f64,
) -> Result<Array4<f32>> {
    ensure(iterations >= 1, || {
        format!("iterations must be at least 1, got {iterations}")
    })?;
    ensure(tolerance.is_finite() && tolerance >= 0.0, || {
        format!("tolerance must be a non-negative number, got {tolerance}")
    })?;
    let sampler = FieldSampler::new(&field, affine)?;
    let [ni, nj, nk] = sampler.dims;
    let mut output = Array4::<f32>::zeros((3, ni, nj, nk));
    let Some(buffer) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let tolerance2 = tolerance * tolerance;
    split_planes(buffer, 3, nj * nk)
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut planes)| {
            for j in 0..nj {
                for k in 0..nk {
                    let q = affine::apply(affine, [i as f64, j as f64, k as f64]);
                    let u = sampler.displacement(q);
                    let mut v = [-u[0], -u[1], -u[2]];
                    for _ in 0..iterations {
                        let x = [q[0] + v[0], q[1] + v[1], q[2] + v[2]];
                        let u = sampler.displacement(x);
                        let next = [-u[0], -u[1], -u[2]];
                        let change: f64 = (0..3).map(|d| (next[d] - v[d]).powi(2)).sum();
                        v = next;
                        if change <= tolerance2 {
                            break;
                        }
                    }
                    for (d, plane) in planes.iter_mut().enumerate() {
                        plane[j * nk + k] = v[d] as f32;
                    }
                }
            }
        });
    Ok(output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::affine::IDENTITY;

    fn smooth_field(n: usize, amplitude: f64) -> Array4<f32> {
        Array4::from_shape_fn((3, n, n, n), |(d, i, j, k)| {
            let (x, y, z) = (i as f64, j as f64, k as f64);
            let t = std::f64::consts::PI / (n as f64 - 1.0);
            let v = match d {
                0 => (y * t).sin() * (z * t).sin(),
                1 => (x * t).sin() * (z * t * 2.0).sin(),
                _ => (x * t).sin() * (y * t).sin(),
            };
            (amplitude * v) as f32
        })
    }

    #[test]
    fn constant_field_and_outside_points() {
        let field = Array4::<f32>::from_elem((3, 4, 4, 4), 0.5);
        let view = field.view();
        let sampler = FieldSampler::new(&view, &IDENTITY).unwrap();
        assert_eq!(sampler.displacement([1.2, 3.4, 0.0]), [0.5; 3]);
        assert_eq!(sampler.displacement([-0.6, 0.0, 0.0]), [0.0; 3]);
        assert_eq!(sampler.displacement([3.49, 3.49, -0.5]), [0.5; 3]);
    }

    #[test]
    fn inverse_composed_with_forward_is_identity() {
        let n = 24;
        let field = smooth_field(n, 2.5);
        let mut affine = IDENTITY;
        affine[0][0] = 1.5;
        affine[1][3] = -4.0;
        let inverse = invert_field(field.view(), &affine, 50, 1e-6).unwrap();
        let forward_view = field.view();
        let forward = FieldSampler::new(&forward_view, &affine).unwrap();
        let inverse_view = inverse.view();
        let backward = FieldSampler::new(&inverse_view, &affine).unwrap();
        for i in 3..n - 3 {
            for j in 3..n - 3 {
                let q = affine::apply(&affine, [i as f64, j as f64, 10.0]);
                let v = backward.displacement(q);
                let x = [q[0] + v[0], q[1] + v[1], q[2] + v[2]];
                let u = forward.displacement(x);
                for d in 0..3 {
                    assert!((x[d] + u[d] - q[d]).abs() < 1e-3, "{i} {j} {d}");
                }
            }
        }
    }

    #[test]
    fn bad_fields_are_errors() {
        let field = Array4::<f32>::zeros((2, 4, 4, 4));
        assert!(matches!(
            invert_field(field.view(), &IDENTITY, 5, 0.0),
            Err(Error::Shape(_))
        ));
        let mut field = Array4::<f32>::zeros((3, 4, 4, 4));
        field[[0, 1, 1, 1]] = f32::NAN;
        assert!(invert_field(field.view(), &IDENTITY, 5, 0.0).is_err());
        let field = Array4::<f32>::zeros((3, 4, 4, 4));
        assert!(invert_field(field.view(), &IDENTITY, 0, 0.0).is_err());
    }

    #[test]
    fn non_finite_values_are_found_in_any_chunk() {
        // Several parallel chunks; the bad value in the last (partial) one.
        let mut field = Array4::<f32>::zeros((3, 40, 40, 50));
        assert!(check_field(&field.view(), "field").is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            field[[2, 39, 39, 49]] = bad;
            let error = check_field(&field.view(), "field").unwrap_err();
            assert!(error.to_string().contains("NaN or infinite"), "{error}");
        }
        let strided = field.slice(ndarray::s![.., .., .., ..;2]);
        let error = check_field(&strided, "field").unwrap_err();
        assert!(error.to_string().contains("C-contiguous"), "{error}");
    }
}
