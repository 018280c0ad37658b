//! Binary contours, as SimpleITK's `BinaryContourImageFilter` draws them.
//!
//! A voxel equal to `foreground` stays `foreground` if at least one of its
//! neighbours inside the volume is not `foreground` (the outside of the volume
//! does not count as background) and becomes `background` otherwise. Every
//! other voxel keeps its value. Channels are independent.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::components::Connectivity;
use super::{flat, flat_mut, standard, LabelVoxel};
use crate::error::{Error, Result};
use crate::volume::check_not_empty;
use crate::volume::zeroed;

/// The contour of the `foreground` voxels of each channel (see the module docs).
///
/// With [`Connectivity::Face`] (SimpleITK's default) a foreground voxel is on
/// the contour when one of its 6 face neighbours is not foreground; with
/// [`Connectivity::Full`], one of its 26 neighbours.
///
/// Fails on empty volumes and NaN.
pub fn binary_contour<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    connectivity: Connectivity,
    foreground: T,
    background: T,
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    if foreground.is_nan() || background.is_nan() {
        return Err(Error::InvalidArgument(
            "foreground and background must not be NaN".into(),
        ));
    }
    let (channels, ni, nj, nk) = volume.dim();
    let plane_len = nj * nk;
    let standard = standard(&volume);
    let input = flat(&standard)?;
    let mut output = zeroed((channels, ni, nj, nk));
    let full = connectivity == Connectivity::Full;
    flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(p, plane_out)| {
            let i = p % ni;
            let plane = |q: usize| &input[q * plane_len..(q + 1) * plane_len];
            let planes = Planes {
                here: plane(p),
                before: (i > 0).then(|| plane(p - 1)),
                after: (i + 1 < ni).then(|| plane(p + 1)),
                nj,
                nk,
            };
            for (index, o) in plane_out.iter_mut().enumerate() {
                let v = planes.here[index];
                *o = if v != foreground {
                    v
                } else if planes.touches_other(index / nk, index % nk, full, foreground) {
                    foreground
                } else {
                    background
                };
            }
        });
    Ok(output)
}

/// A `J x K` plane and its neighbours along `I` (absent at the volume's faces).
struct Planes<'a, T> {
    here: &'a [T],
    before: Option<&'a [T]>,
    after: Option<&'a [T]>,
    nj: usize,
    nk: usize,
}

impl<T: LabelVoxel> Planes<'_, T> {
    /// Whether voxel `(j, k)` of `here` has a neighbour that is not `fg`.
    #[inline]
    fn touches_other(&self, j: usize, k: usize, full: bool, fg: T) -> bool {
        let nk = self.nk;
        let (j0, j1) = (j.saturating_sub(1), (j + 1).min(self.nj - 1));
        let (k0, k1) = (k.saturating_sub(1), (k + 1).min(nk - 1));
        if full {
            let in_plane = |plane: &[T]| {
                (j0..=j1).any(|jj| plane[jj * nk + k0..=jj * nk + k1].iter().any(|&v| v != fg))
            };
            in_plane(self.here)
                || self.before.is_some_and(in_plane)
                || self.after.is_some_and(in_plane)
        } else {
            let at = j * nk + k;
            let here = self.here;
            // At a face the index clamps to the voxel itself, which is `fg`.
            here[j0 * nk + k] != fg
                || here[j1 * nk + k] != fg
                || here[j * nk + k0] != fg
                || here[j * nk + k1] != fg
                || self.before.is_some_and(|plane| plane[at] != fg)
                || self.after.is_some_and(|plane| plane[at] != fg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array};

    #[test]
    fn cube_keeps_its_faces_and_loses_its_core() {
        let mut volume = Array4::<u8>::zeros((1, 5, 5, 5));
        volume.slice_mut(s![.., 1..4, 1..4, 1..4]).fill(1);
        let contour = binary_contour(volume.view(), Connectivity::Face, 1, 0).unwrap();
        assert_eq!(contour.sum(), 26);
        assert_eq!(contour[[0, 2, 2, 2]], 0);
    }

    #[test]
    fn outside_is_not_background_and_other_labels_are_kept() {
        let row = Array::from_vec(vec![1i64, 1, 1, 2, 2, 0])
            .into_shape_with_order((1, 1, 1, 6))
            .unwrap();
        let contour = binary_contour(row.view(), Connectivity::Face, 1, 0).unwrap();
        assert_eq!(contour.as_slice().unwrap(), &[0, 0, 1, 2, 2, 0]);
        let full = Array4::<f32>::ones((1, 4, 4, 4));
        assert_eq!(
            binary_contour(full.view(), Connectivity::Full, 1.0, 0.0)
                .unwrap()
                .sum(),
            0.0
        );
    }

    #[test]
    fn full_connectivity_marks_diagonal_contacts() {
        let mut volume = Array4::<u8>::ones((1, 3, 3, 3));
        volume[[0, 0, 0, 0]] = 0;
        let face = binary_contour(volume.view(), Connectivity::Face, 1, 0).unwrap();
        let full = binary_contour(volume.view(), Connectivity::Full, 1, 0).unwrap();
        assert_eq!(face.sum(), 3);
        assert_eq!(full.sum(), 7);
        assert_eq!(full[[0, 1, 1, 1]], 1);
    }
}
