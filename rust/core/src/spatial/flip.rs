//! Flipping a `(C, I, J, K)` volume along any of its spatial axes.

use ndarray::{s, Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::stream::copy_streaming;
use crate::volume::{check_not_empty, zeroed, Voxel};

/// Returns a new C-order copy of `volume` reversed along the spatial `axes`.
///
/// `axes` are spatial axis indices in `0..3` (0 = I, 1 = J, 2 = K); repeated
/// axes are flipped once. One pass over the data: every output `K` row is
/// filled from the matching input row, so the work is a memory copy.
pub fn flip<T: Voxel>(volume: ArrayView4<'_, T>, axes: &[usize]) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    let mut flip_axis = [false; 3];
    for &axis in axes {
        if axis > 2 {
            return Err(Error::InvalidArgument(format!(
                "spatial axis must be 0, 1 or 2, got {axis}"
            )));
        }
        flip_axis[axis] = true;
    }
    let (c, ni, nj, nk) = volume.dim();
    let mut output = zeroed((c, ni, nj, nk));
    let plane_len = nj * nk;
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let copy_row = |row_out: &mut [T], row_in: ndarray::ArrayView1<'_, T>| match (
        row_in.as_slice(),
        flip_axis[2],
    ) {
        (Some(row_in), false) => row_out.copy_from_slice(row_in),
        (Some(row_in), true) => row_out
            .iter_mut()
            .zip(row_in.iter().rev())
            .for_each(|(o, &v)| *o = v),
        (None, false) => row_out
            .iter_mut()
            .zip(row_in.iter())
            .for_each(|(o, &v)| *o = v),
        (None, true) => row_out
            .iter_mut()
            .zip(row_in.iter().rev())
            .for_each(|(o, &v)| *o = v),
    };
    // One task per output (channel, i) plane of J x K voxels.
    out.par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (channel, i) = (plane_index / ni, plane_index % ni);
            let source_i = if flip_axis[0] { ni - 1 - i } else { i };
            let source = volume.slice(s![channel, source_i, .., ..]);
            if let (false, false, Some(whole)) = (flip_axis[1], flip_axis[2], source.as_slice()) {
                // The plane is unchanged: one contiguous copy.
                copy_streaming(plane, whole);
                return;
            }
            for (j, row_out) in plane.chunks_mut(nk).enumerate() {
                let source_j = if flip_axis[1] { nj - 1 - j } else { j };
                copy_row(row_out, source.row(source_j));
            }
        });
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn ramp(shape: (usize, usize, usize, usize)) -> Array4<f32> {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Array::from_iter((0..n).map(|v| v as f32))
            .into_shape_with_order(shape)
            .unwrap()
    }

    #[test]
    fn flip_matches_ndarray_reversed_slices() {
        let volume = ramp((2, 3, 4, 5));
        let flipped = flip(volume.view(), &[0, 2]).unwrap();
        let expected = volume.slice(s![.., ..;-1, .., ..;-1]).to_owned();
        assert_eq!(flipped, expected);
    }

    #[test]
    fn flipping_twice_is_identity_and_no_axes_copies() {
        let volume = ramp((1, 5, 2, 3));
        let once = flip(volume.view(), &[1]).unwrap();
        assert_ne!(once, volume);
        assert_eq!(flip(once.view(), &[1]).unwrap(), volume);
        assert_eq!(flip(volume.view(), &[]).unwrap(), volume);
    }

    #[test]
    fn bad_axis_and_empty_volume_are_errors() {
        let volume = ramp((1, 2, 2, 2));
        assert!(matches!(
            flip(volume.view(), &[3]),
            Err(Error::InvalidArgument(_))
        ));
        let empty = Array4::<f32>::zeros((1, 0, 2, 2));
        assert!(matches!(flip(empty.view(), &[0]), Err(Error::Empty(_))));
    }
}
