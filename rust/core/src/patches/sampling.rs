//! Weighted sampling of patch centres from an unnormalised probability map.
//!
//! The map gives, for every voxel, the relative probability that a patch is
//! centred there. As in TorchIO, the centre of a patch of size `s` along an
//! axis is its voxel `s / 2` (integer division), so a patch whose corner is
//! `c` covers `c..c + s` and has its centre at `c + s / 2`. Voxels closer to
//! the border than that cannot be centres: the sampler only considers the box
//! `[s / 2, n - (s - 1) / 2)` along each axis, which is exactly what TorchIO's
//! border clearing leaves non-zero.
//!
//! Draws are inverse-CDF lookups of uniform numbers supplied by the caller
//! (randomness stays in PyTorch's generator). The cumulative sum runs in `f64`
//! with a fixed chunking (one chunk per `K` row of the box): each row's sum is
//! computed sequentially, rows are summed in order, so the result does not
//! depend on the number of threads. No full-size CDF is stored: a draw finds
//! its row by binary search over row prefix sums, then scans that row.

use ndarray::{s, ArrayView3};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Smallest uniform number used for a draw, as TorchIO does (float32 epsilon),
/// so that a draw of exactly 0 cannot select a voxel of zero probability.
pub const MIN_UNIFORM: f64 = f32::EPSILON as f64;

/// A probability voxel type: `f32`, `f64`, or `u8` (a binary mask of centres).
pub trait Probability: Copy + Send + Sync + 'static {
    /// Value as `f64`.
    fn as_f64(self) -> f64;
}

impl Probability for f32 {
    #[inline(always)]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Probability for u8 {
    #[inline(always)]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
}

impl Probability for f64 {
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// The sub-box of a map of spatial shape `shape` where a patch of
/// `patch_size` can be centred: `(first, end)` per axis.
pub fn centre_box(shape: [usize; 3], patch_size: [usize; 3]) -> Result<[(usize, usize); 3]> {
    let mut bounds = [(0, 0); 3];
    for axis in 0..3 {
        let size = patch_size[axis];
        if size == 0 {
            return Err(Error::InvalidArgument(format!(
                "patch size must be positive along every axis, got {patch_size:?}"
            )));
        }
        if size > shape[axis] {
            return Err(Error::Shape(format!(
                "patch size {patch_size:?} cannot be larger than image size {shape:?}"
            )));
        }
        bounds[axis] = (size / 2, shape[axis] - (size - 1) / 2);
    }
    Ok(bounds)
}

/// Validates a probability map: every value must be finite and non-negative.
fn validate<P: Probability>(map: &ArrayView3<'_, P>) -> Result<()> {
    let (ni, nj, nk) = map.dim();
    if ni * nj * nk == 0 {
        return Err(Error::Empty(format!(
            "probability map has shape {:?}, which holds no voxels",
            map.shape()
        )));
    }
    let bad = map
        .outer_iter()
        .into_par_iter()
        .map(|plane| {
            plane.iter().fold(0u8, |flags, &v| {
                let v = v.as_f64();
                flags | u8::from(v < 0.0) | (u8::from(!v.is_finite()) << 1)
            })
        })
        .reduce(|| 0, |a, b| a | b);
    if bad & 1 != 0 {
        return Err(Error::InvalidArgument(
            "negative values found in probability map".into(),
        ));
    }
    if bad & 2 != 0 {
        return Err(Error::InvalidArgument(
            "non-finite values (NaN or infinity) found in probability map".into(),
        ));
    }
    Ok(())
}

/// Row prefix sums of a probability map over its centre box: the part of the
/// inverse CDF that is computed once per map and shared by every draw.
#[derive(Debug, Clone)]
pub struct CentreTable {
    shape: [usize; 3],
    bounds: [(usize, usize); 3],
    prefix: Vec<f64>,
}

impl CentreTable {
    /// Validates `map` `(I, J, K)` and sums it row by row inside the box where
    /// a patch of `patch_size` can be centred.
    ///
    /// Errors: negative or non-finite values, a patch larger than the map, or
    /// ([`Error::Empty`]) no positive probability inside the centre box.
    pub fn new<P: Probability>(map: ArrayView3<'_, P>, patch_size: [usize; 3]) -> Result<Self> {
        validate(&map)?;
        let (ni, nj, nk) = map.dim();
        let bounds = centre_box([ni, nj, nk], patch_size)?;
        let [(i0, i1), (j0, j1), (k0, k1)] = bounds;
        let inner = map.slice(s![i0..i1, j0..j1, k0..k1]);
        let bj = j1 - j0;
        // Row sums, one row of K values per (i, j) of the box, each summed in order.
        let mut prefix = vec![0.0f64; (i1 - i0) * bj];
        prefix
            .par_chunks_mut(bj)
            .zip(inner.outer_iter().into_par_iter())
            .for_each(|(sums, plane)| {
                for (sum, row) in sums.iter_mut().zip(plane.rows()) {
                    *sum = row.iter().fold(0.0, |acc, &v| acc + v.as_f64());
                }
            });
        // Inclusive prefix over rows, in order: the fixed chunking of the CDF.
        let mut total = 0.0f64;
        for sum in prefix.iter_mut() {
            total += *sum;
            *sum = total;
        }
        if total <= 0.0 {
            return Err(Error::Empty(format!(
                "empty probability map: no voxel has positive probability after clearing \
                 the borders a patch of size {patch_size:?} cannot be centred on; voxels with \
                 positive probability might be near the image border: try padding the image \
                 by half the patch size {:?}",
                patch_size.map(|s| s / 2)
            )));
        }
        if !total.is_finite() {
            return Err(Error::InvalidArgument(
                "probabilities sum to infinity; rescale the probability map".into(),
            ));
        }
        Ok(Self {
            shape: [ni, nj, nk],
            bounds,
            prefix,
        })
    }

    /// A table from prefix sums computed earlier by [`CentreTable::new`] for a
    /// map of spatial shape `shape` and `patch_size` (e.g. kept by a caller
    /// between draws).
    ///
    /// Errors: a patch larger than the map, prefix sums of the wrong length, or
    /// sums that are not non-decreasing with a positive finite total.
    pub fn from_prefix(
        shape: [usize; 3],
        patch_size: [usize; 3],
        prefix: Vec<f64>,
    ) -> Result<Self> {
        let bounds = centre_box(shape, patch_size)?;
        let rows = (bounds[0].1 - bounds[0].0) * (bounds[1].1 - bounds[1].0);
        if prefix.len() != rows {
            return Err(Error::Shape(format!(
                "the centre table holds {} rows but a map of shape {shape:?} with patch size \
                 {patch_size:?} has {rows}",
                prefix.len()
            )));
        }
        let ordered = prefix.windows(2).all(|w| w[0] <= w[1]);
        let total = prefix.last().copied().unwrap_or(0.0);
        if !(ordered && total > 0.0 && total.is_finite()) {
            return Err(Error::InvalidArgument(
                "the centre table must hold non-decreasing sums with a positive finite total"
                    .into(),
            ));
        }
        Ok(Self {
            shape,
            bounds,
            prefix,
        })
    }

    /// The inclusive row prefix sums, one per `(i, j)` row of the centre box.
    pub fn prefix(&self) -> &[f64] {
        &self.prefix
    }

    /// Draws one centre per uniform number in `uniforms` (each in `[0, 1]`)
    /// from `map`, the map the table was built from.
    ///
    /// Returns the `(i, j, k)` centre voxel of each draw.
    ///
    /// Errors: a map of another shape than the table's, or a uniform number
    /// outside `[0, 1]`.
    pub fn draw<P: Probability>(
        &self,
        map: ArrayView3<'_, P>,
        uniforms: &[f64],
    ) -> Result<Vec<[usize; 3]>> {
        let [(i0, i1), (j0, j1), (k0, k1)] = self.bounds;
        let (ni, nj, nk) = map.dim();
        if [ni, nj, nk] != self.shape {
            return Err(Error::Shape(format!(
                "the centre table was not built for a map of shape {:?}",
                map.shape()
            )));
        }
        if let Some(u) = uniforms.iter().find(|u| !(0.0..=1.0).contains(*u)) {
            return Err(Error::InvalidArgument(format!(
                "uniform numbers must lie in [0, 1], got {u}"
            )));
        }
        let bj = j1 - j0;
        let rows = self.prefix.len();
        let total = self.prefix[rows - 1];
        let inner = map.slice(s![i0..i1, j0..j1, k0..k1]);
        let draw = |&u: &f64| -> [usize; 3] {
            let target = u.max(MIN_UNIFORM) * total;
            // First row whose inclusive prefix reaches the target.
            let row = self.prefix.partition_point(|&c| c < target).min(rows - 1);
            let mut acc = if row == 0 { 0.0 } else { self.prefix[row - 1] };
            let values = inner.slice(s![row / bj, row % bj, ..]);
            let mut chosen = None;
            let mut last_positive = None;
            for (k, &v) in values.iter().enumerate() {
                let v = v.as_f64();
                if v > 0.0 {
                    acc += v;
                    last_positive = Some(k);
                    if acc >= target {
                        chosen = Some(k);
                        break;
                    }
                }
            }
            // Rounding can leave the in-row running sum a hair below the row's
            // prefix: the target then falls on the row's last positive voxel.
            let k = chosen.or(last_positive).unwrap_or(0);
            [i0 + row / bj, j0 + row % bj, k0 + k]
        };
        Ok(uniforms.iter().map(draw).collect())
    }
}

/// Draws one patch centre per uniform number in `uniforms` (each in `[0, 1]`).
///
/// `map` is an unnormalised `(I, J, K)` probability map; `patch_size` the
/// `(pi, pj, pk)` patch size. Returns the `(i, j, k)` centre voxel of each
/// draw; the patch corner is `centre - patch_size / 2`. Callers drawing
/// repeatedly from one map build a [`CentreTable`] once instead.
///
/// Errors: those of [`CentreTable::new`] and [`CentreTable::draw`].
pub fn sample_centres<P: Probability>(
    map: ArrayView3<'_, P>,
    patch_size: [usize; 3],
    uniforms: &[f64],
) -> Result<Vec<[usize; 3]>> {
    CentreTable::new(map.view(), patch_size)?.draw(map, uniforms)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn centre_box_follows_integer_division_convention() {
        // Patch 4 on an axis of 7: centres 2..=5 (TorchIO clears 2 before, 1 after).
        assert_eq!(
            centre_box([7, 7, 7], [4, 1, 3]).unwrap(),
            [(2, 6), (0, 7), (1, 6)]
        );
        assert!(matches!(
            centre_box([3, 3, 3], [4, 1, 1]),
            Err(Error::Shape(_))
        ));
    }

    #[test]
    fn draws_follow_inverse_cdf_of_cleared_map() {
        // One-dimensional map along K; patch size 1 keeps every voxel.
        let mut map = Array3::<f64>::zeros((1, 1, 9));
        for (k, v) in [0.0, 0.0, 1.0, 1.0, 5.0, 2.0, 1.0, 1.0, 0.0]
            .iter()
            .enumerate()
        {
            map[[0, 0, k]] = *v;
        }
        // Cumulative: 0 0 1 2 7 9 10 11 11 (total 11).
        let uniforms = [
            0.0,
            1.0 / 11.0,
            1.5 / 11.0,
            2.0 / 11.0,
            6.9 / 11.0,
            7.5 / 11.0,
            1.0,
        ];
        let centres = sample_centres(map.view(), [1, 1, 1], &uniforms).unwrap();
        let ks: Vec<usize> = centres.iter().map(|c| c[2]).collect();
        assert_eq!(ks, vec![2, 2, 3, 3, 4, 5, 7]);
    }

    #[test]
    fn borders_are_never_drawn() {
        let map = Array3::<f32>::ones((6, 5, 4));
        let uniforms: Vec<f64> = (0..1000).map(|n| n as f64 / 1000.0).collect();
        let centres = sample_centres(map.view(), [3, 2, 4], &uniforms).unwrap();
        for c in centres {
            assert!((1..5).contains(&c[0]), "{c:?}");
            assert!((1..5).contains(&c[1]), "{c:?}");
            assert_eq!(c[2], 2);
        }
    }

    #[test]
    fn bad_maps_are_errors() {
        let mut map = Array3::<f64>::ones((4, 4, 4));
        map[[1, 1, 1]] = -1.0;
        assert!(matches!(
            sample_centres(map.view(), [1, 1, 1], &[0.5]),
            Err(Error::InvalidArgument(_))
        ));
        map[[1, 1, 1]] = f64::NAN;
        assert!(sample_centres(map.view(), [1, 1, 1], &[0.5]).is_err());
        // Only a border voxel is positive: empty after clearing.
        let mut border = Array3::<f64>::zeros((4, 4, 4));
        border[[0, 2, 2]] = 1.0;
        assert!(matches!(
            sample_centres(border.view(), [3, 3, 3], &[0.5]),
            Err(Error::Empty(_))
        ));
        assert!(sample_centres(border.view(), [1, 1, 1], &[1.5]).is_err());
        assert!(sample_centres(border.view(), [5, 1, 1], &[0.5]).is_err());
    }

    #[test]
    fn a_kept_table_draws_what_a_fresh_one_does() {
        let map = Array3::from_shape_fn((7, 6, 5), |(i, j, k)| ((i * 7 + j * 3 + k) % 4) as f32);
        let uniforms: Vec<f64> = (0..200).map(|n| n as f64 / 199.0).collect();
        let table = CentreTable::new(map.view(), [3, 2, 1]).unwrap();
        let kept = CentreTable::from_prefix([7, 6, 5], [3, 2, 1], table.prefix().to_vec()).unwrap();
        let expected = sample_centres(map.view(), [3, 2, 1], &uniforms).unwrap();
        assert_eq!(kept.draw(map.view(), &uniforms).unwrap(), expected);
        // Tables of the wrong size or order, and maps of another shape, are refused.
        assert!(CentreTable::from_prefix([7, 6, 5], [1, 1, 1], table.prefix().to_vec()).is_err());
        let mut shuffled = table.prefix().to_vec();
        shuffled.reverse();
        assert!(CentreTable::from_prefix([7, 6, 5], [3, 2, 1], shuffled).is_err());
        let other = Array3::<f32>::ones((4, 4, 4));
        assert!(kept.draw(other.view(), &[0.5]).is_err());
    }
}
