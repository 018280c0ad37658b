//! Swapping pairs of patches inside a volume (TorchIO's `Swap`, used for
//! context restoration in self-supervised learning).

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// Returns a copy of `volume` in which, for each `(a, b)` of `locations` in
/// order, the patches of `patch_size` voxels starting at spatial indices `a`
/// and `b` exchange their contents (in every channel).
///
/// Each swap reads both patches before writing either, so a later swap sees the
/// result of the earlier ones and swapping the same list in reverse order
/// undoes it. When two patches overlap, `b` first receives the old `a` and
/// then `a` receives the old `b` (the overlap ends up holding old `b`); for
/// non-overlapping patches this equals TorchIO, whose result for overlapping
/// ones depends on how torch vectorises an aliased copy.
///
/// Fails if a patch does not fit inside the volume.
pub fn swap_patches<T: Voxel>(
    volume: ArrayView4<'_, T>,
    patch_size: [usize; 3],
    locations: &[([usize; 3], [usize; 3])],
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    let (channels, ni, nj, nk) = volume.dim();
    let shape = [ni, nj, nk];
    for (index, (a, b)) in locations.iter().enumerate() {
        for corner in [a, b] {
            for axis in 0..3 {
                let end = corner[axis].checked_add(patch_size[axis]);
                if end.is_none_or(|end| end > shape[axis]) {
                    return Err(Error::InvalidArgument(format!(
                        "swap {index}: a patch of size {patch_size:?} at {corner:?} does not fit in a volume of spatial shape {shape:?}"
                    )));
                }
            }
        }
    }
    let standard = volume.as_standard_layout();
    let Some(input) = standard.as_slice() else {
        return Err(Error::Shape(
            "standard-layout volume is not contiguous".into(),
        ));
    };
    // Zero pages from the allocator, filled by one parallel copy.
    let mut output = Array4::<T>::from_elem((channels, ni, nj, nk), T::default());
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let plane_len = nj * nk;
    out.par_chunks_mut(plane_len)
        .zip(input.par_chunks(plane_len))
        .for_each(|(o, i)| o.copy_from_slice(i));
    let [pi, pj, pk] = patch_size;
    let patch_len = channels * pi * pj * pk;
    if patch_len == 0 {
        return Ok(output);
    }
    let mut old_a = Vec::with_capacity(patch_len);
    let mut old_b = Vec::with_capacity(patch_len);
    // Offsets of the K rows of a patch starting at `corner`, in C order.
    let rows = |corner: [usize; 3]| {
        (0..channels).flat_map(move |c| {
            (0..pi).flat_map(move |di| {
                (0..pj).map(move |dj| {
                    ((c * ni + corner[0] + di) * nj + corner[1] + dj) * nk + corner[2]
                })
            })
        })
    };
    for (a, b) in locations {
        old_a.clear();
        old_b.clear();
        for start in rows(*a) {
            old_a.extend_from_slice(&out[start..start + pk]);
        }
        for start in rows(*b) {
            old_b.extend_from_slice(&out[start..start + pk]);
        }
        for (start, chunk) in rows(*b).zip(old_a.chunks_exact(pk)) {
            out[start..start + pk].copy_from_slice(chunk);
        }
        for (start, chunk) in rows(*a).zip(old_b.chunks_exact(pk)) {
            out[start..start + pk].copy_from_slice(chunk);
        }
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array};

    fn ramp() -> Array4<i32> {
        Array::from_shape_fn((2, 6, 7, 8), |(c, i, j, k)| {
            (((c * 6 + i) * 7 + j) * 8 + k) as i32
        })
    }

    #[test]
    fn disjoint_patches_exchange_contents() {
        let volume = ramp();
        let a = [0, 1, 2];
        let b = [3, 4, 5];
        let out = swap_patches(volume.view(), [3, 2, 3], &[(a, b)]).unwrap();
        let patch_a = s![.., 0..3, 1..3, 2..5];
        let patch_b = s![.., 3..6, 4..6, 5..8];
        assert_eq!(out.slice(patch_a), volume.slice(patch_b));
        assert_eq!(out.slice(patch_b), volume.slice(patch_a));
        let mut restored = out.clone();
        restored.slice_mut(patch_a).assign(&volume.slice(patch_a));
        restored.slice_mut(patch_b).assign(&volume.slice(patch_b));
        assert_eq!(restored, volume);
    }

    #[test]
    fn reversed_list_undoes_disjoint_swaps() {
        let volume = ramp();
        let swaps = [
            ([0, 0, 0], [3, 0, 4]),
            ([1, 2, 0], [1, 5, 3]),
            ([3, 0, 4], [0, 4, 0]),
        ];
        let out = swap_patches(volume.view(), [2, 2, 4], &swaps).unwrap();
        assert_ne!(out, volume);
        let reversed: Vec<_> = swaps.iter().rev().copied().collect();
        assert_eq!(
            swap_patches(out.view(), [2, 2, 4], &reversed).unwrap(),
            volume
        );
    }

    #[test]
    fn overlapping_patches_read_before_writing() {
        let row = Array::from_shape_fn((1, 1, 1, 10), |(_, _, _, k)| k as u8);
        let out = swap_patches(row.view(), [1, 1, 4], &[([0, 0, 0], [0, 0, 2])]).unwrap();
        // b (2..6) := old a (0..4); then a (0..4) := old b (2..6).
        assert_eq!(out.as_slice().unwrap(), &[2, 3, 4, 5, 2, 3, 6, 7, 8, 9]);
    }

    #[test]
    fn patches_outside_the_volume_are_errors() {
        let volume = ramp();
        assert!(swap_patches(volume.view(), [3, 3, 3], &[([4, 0, 0], [0, 0, 0])]).is_err());
        assert!(swap_patches(volume.view(), [7, 1, 1], &[([0, 0, 0], [0, 0, 0])]).is_err());
        assert!(
            swap_patches(volume.view(), [1, 1, 1], &[([0, 0, usize::MAX], [0, 0, 0])]).is_err()
        );
        assert_eq!(
            swap_patches(volume.view(), [0, 2, 2], &[([0, 0, 0], [5, 0, 0])]).unwrap(),
            volume
        );
    }
}
