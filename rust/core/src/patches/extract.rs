//! Copying rectangular regions (patches) out of a `(C, I, J, K)` volume.

use std::mem::MaybeUninit;

use crate::error::{Error, Result};
use crate::parallel::share_items;
use crate::stream::{can_stream_rows, RowStreamer};
use crate::volume::{check_not_empty, Voxel};
use ndarray::{s, Array4, Array5, ArrayView4, ArrayViewMut5};

/// Outputs from this size on are written with streaming stores: a batch of
/// patches this large is not in the caches when it is read back (by a model,
/// or an aggregator after it), so reading its lines for ownership before
/// overwriting them is wasted traffic. Smaller outputs (a patch a transform
/// reads next) are stored plainly, so that they stay cached.
const STREAM_OUTPUT_BYTES: usize = 8 << 20;

/// Checks that the region starting at `start` with extent `size` lies inside
/// a volume of spatial shape `shape` and is not empty.
fn check_region(shape: [usize; 3], start: [usize; 3], size: [usize; 3]) -> Result<()> {
    for axis in 0..3 {
        if size[axis] == 0 {
            return Err(Error::InvalidArgument(format!(
                "patch size must be positive along every axis, got {size:?}"
            )));
        }
        let end = start[axis].checked_add(size[axis]);
        if end.is_none_or(|end| end > shape[axis]) {
            return Err(Error::Shape(format!(
                "patch starting at {start:?} with size {size:?} does not fit in a volume \
                 of spatial shape {shape:?}"
            )));
        }
    }
    Ok(())
}

fn spatial_shape<T>(volume: &ArrayView4<'_, T>) -> [usize; 3] {
    let (_, ni, nj, nk) = volume.dim();
    [ni, nj, nk]
}

/// Fills `out` (`planes` consecutive `pj x pk` planes in C order) with the
/// region of `volume` at `starts[n]`, where plane `p` is `(n, channel, i)`.
///
/// Every element of `out` is written, so it may start uninitialised: a new
/// output is not zero-filled first (one pass over memory the copy then
/// overwrites).
fn fill_planes<T: Voxel>(
    volume: &ArrayView4<'_, T>,
    starts: &[[usize; 3]],
    size: [usize; 3],
    out: &mut [MaybeUninit<T>],
) -> Result<()> {
    let channels = volume.dim().0;
    let plane_len = size[1] * size[2];
    let stream = std::mem::size_of_val(out) >= STREAM_OUTPUT_BYTES
        && can_stream_rows(out, size[2] * std::mem::size_of::<T>());
    // One task per output (patch, channel, i) plane of pj x pk voxels.
    let planes: Vec<&mut [MaybeUninit<T>]> = out.chunks_mut(plane_len).collect();
    share_items(planes, |plane_index, plane| {
        let i = plane_index % size[0];
        let channel = (plane_index / size[0]) % channels;
        let start = starts[plane_index / (size[0] * channels)];
        let source = volume.slice(s![
            channel,
            start[0] + i,
            start[1]..start[1] + size[1],
            start[2]..start[2] + size[2]
        ]);
        let mut streamer = stream.then(RowStreamer::new);
        for (row_out, row_in) in plane.chunks_mut(size[2]).zip(source.rows()) {
            match (row_in.as_slice(), streamer.as_mut()) {
                (Some(inp), Some(streamer)) => {
                    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the
                    // row is written whole, as initialised values.
                    let inp = unsafe {
                        std::slice::from_raw_parts(inp.as_ptr().cast::<MaybeUninit<T>>(), inp.len())
                    };
                    streamer.copy(row_out, inp);
                }
                (Some(inp), None) => row_out.iter_mut().zip(inp).for_each(|(o, &v)| {
                    o.write(v);
                }),
                (None, _) => row_out.iter_mut().zip(row_in.iter()).for_each(|(o, &v)| {
                    o.write(v);
                }),
            }
        }
    })
}

/// Returns a new C-order copy of the region `(:, start + [0, size))` of `volume`.
///
/// `start` and `size` are `(i, j, k)` triplets; the region must lie inside
/// the volume and be non-empty.
pub fn extract_patch<T: Voxel>(
    volume: ArrayView4<'_, T>,
    start: [usize; 3],
    size: [usize; 3],
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    check_region(spatial_shape(&volume), start, size)?;
    let channels = volume.dim().0;
    let mut output = Array4::uninit((channels, size[0], size[1], size[2]));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    fill_planes(&volume, &[start], size, out)?;
    // SAFETY: `fill_planes` writes every element of the contiguous output.
    Ok(unsafe { output.assume_init() })
}

/// Copies `N` patches of one `size` from `volume` into one `(N, C, pi, pj, pk)` array.
///
/// `starts` holds the `(i, j, k)` corner of each patch; every region is
/// bounds-checked before anything is copied.
pub fn extract_patches<T: Voxel>(
    volume: ArrayView4<'_, T>,
    starts: &[[usize; 3]],
    size: [usize; 3],
) -> Result<Array5<T>> {
    check_not_empty(&volume, "volume")?;
    if size.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "patch size must be positive along every axis, got {size:?}"
        )));
    }
    let shape = spatial_shape(&volume);
    for &start in starts {
        check_region(shape, start, size)?;
    }
    let channels = volume.dim().0;
    let mut output = Array5::uninit((starts.len(), channels, size[0], size[1], size[2]));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    fill_planes(&volume, starts, size, out)?;
    // SAFETY: `fill_planes` writes every element of the contiguous output.
    Ok(unsafe { output.assume_init() })
}

/// Copies `N` patches of one `size` from `volume` into `out`, an existing
/// C-contiguous `(N, C, pi, pj, pk)` array.
///
/// Same as [`extract_patches`], for a caller that recycles its batch buffers:
/// memory already in use fills several times faster than freshly allocated
/// pages, which fault in on their first write.
///
/// Errors: `out` of another shape or not contiguous, or a region outside the
/// volume (checked before anything is written).
pub fn extract_patches_into<T: Voxel>(
    volume: ArrayView4<'_, T>,
    starts: &[[usize; 3]],
    size: [usize; 3],
    mut out: ArrayViewMut5<'_, T>,
) -> Result<()> {
    check_not_empty(&volume, "volume")?;
    let shape = spatial_shape(&volume);
    for &start in starts {
        check_region(shape, start, size)?;
    }
    if starts.is_empty() && size.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "patch size must be positive along every axis, got {size:?}"
        )));
    }
    let expected = (starts.len(), volume.dim().0, size[0], size[1], size[2]);
    if out.dim() != expected {
        return Err(Error::Shape(format!(
            "out must have shape {expected:?}, got {:?}",
            out.shape()
        )));
    }
    let Some(slice) = out.as_slice_mut() else {
        return Err(Error::Shape("out must be C-contiguous".into()));
    };
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and `fill_planes` only
    // writes initialised values, so the slice stays initialised throughout.
    let slice = unsafe {
        std::slice::from_raw_parts_mut(slice.as_mut_ptr().cast::<MaybeUninit<T>>(), slice.len())
    };
    fill_planes(&volume, starts, size, slice)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn ramp(shape: (usize, usize, usize, usize)) -> Array4<i32> {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Array::from_iter((0..n as i32).map(|v| v * 3 - 7))
            .into_shape_with_order(shape)
            .unwrap()
    }

    /// The region of `volume` a patch at `start` with extent `size` copies.
    fn region<T>(
        volume: &Array4<T>,
        start: [usize; 3],
        size: [usize; 3],
    ) -> ndarray::ArrayView4<'_, T> {
        volume.slice(s![
            ..,
            start[0]..start[0] + size[0],
            start[1]..start[1] + size[1],
            start[2]..start[2] + size[2]
        ])
    }

    #[test]
    fn patch_equals_slice() {
        let volume = ramp((2, 7, 6, 5));
        let patch = extract_patch(volume.view(), [1, 2, 0], [4, 3, 5]).unwrap();
        assert_eq!(patch, volume.slice(s![.., 1..5, 2..5, 0..5]));
        let whole = extract_patch(volume.view(), [0, 0, 0], [7, 6, 5]).unwrap();
        assert_eq!(whole, volume);
    }

    #[test]
    fn batched_patches_equal_slices() {
        let volume = ramp((3, 9, 8, 7));
        let starts = [[0, 0, 0], [5, 4, 3], [2, 6, 1], [5, 4, 3]];
        let patches = extract_patches(volume.view(), &starts, [4, 2, 4]).unwrap();
        assert_eq!(patches.dim(), (4, 3, 4, 2, 4));
        for (n, start) in starts.iter().enumerate() {
            assert_eq!(
                patches.slice(s![n, .., .., .., ..]),
                region(&volume, *start, [4, 2, 4])
            );
        }
        let none = extract_patches(volume.view(), &[], [1, 1, 1]).unwrap();
        assert_eq!(none.dim(), (0, 3, 1, 1, 1));
    }

    #[test]
    fn patches_into_a_buffer_equal_new_patches() {
        let volume = ramp((2, 9, 8, 7));
        let starts = [[0, 0, 0], [5, 4, 3], [2, 6, 1]];
        let expected = extract_patches(volume.view(), &starts, [4, 2, 4]).unwrap();
        let mut out = Array5::<i32>::from_elem((3, 2, 4, 2, 4), 99);
        extract_patches_into(volume.view(), &starts, [4, 2, 4], out.view_mut()).unwrap();
        assert_eq!(out, expected);
        let mut wrong = Array5::<i32>::zeros((2, 2, 4, 2, 4));
        assert!(matches!(
            extract_patches_into(volume.view(), &starts, [4, 2, 4], wrong.view_mut()),
            Err(Error::Shape(_))
        ));
        let mut transposed = Array5::<i32>::zeros((4, 2, 4, 2, 3));
        let view = transposed.view_mut().reversed_axes();
        assert!(matches!(
            extract_patches_into(volume.view(), &starts, [4, 2, 4], view),
            Err(Error::Shape(_))
        ));
        let outside = [[6, 0, 0]];
        let mut one = Array5::<i32>::zeros((1, 2, 4, 2, 4));
        assert!(extract_patches_into(volume.view(), &outside, [4, 2, 4], one.view_mut()).is_err());
    }

    #[test]
    fn batches_above_the_streaming_size_equal_slices() {
        // Five 2-channel 64^3 float patches (10.5 MB, streamed: 256-byte rows)
        // and 63^3 ones (rows of 252 bytes, not whole 16-byte units: plain).
        let volume = ramp((2, 70, 70, 70)).mapv(|v| v as f32);
        let starts = [[0, 0, 0], [6, 6, 6], [3, 0, 5], [1, 6, 2], [6, 6, 6]];
        for edge in [64, 63] {
            let size = [edge, edge, edge];
            let patches = extract_patches(volume.view(), &starts, size).unwrap();
            let mut into = Array5::<f32>::from_elem(patches.dim(), -1.0);
            extract_patches_into(volume.view(), &starts, size, into.view_mut()).unwrap();
            for (n, start) in starts.iter().enumerate() {
                let expected = region(&volume, *start, size);
                assert_eq!(patches.slice(s![n, .., .., .., ..]), expected);
                assert_eq!(into.slice(s![n, .., .., .., ..]), expected);
            }
        }
        // 16-bit voxels in rows of 96 bytes.
        let volume = ramp((1, 200, 60, 60)).mapv(|v| v as i16);
        let starts: Vec<[usize; 3]> = (0..40).map(|n| [n * 3, n % 13, n % 11]).collect();
        let patches = extract_patches(volume.view(), &starts, [80, 47, 48]).unwrap();
        assert!(patches.len() * 2 >= STREAM_OUTPUT_BYTES);
        for (n, start) in starts.iter().enumerate() {
            assert_eq!(
                patches.slice(s![n, .., .., .., ..]),
                region(&volume, *start, [80, 47, 48])
            );
        }
    }

    #[test]
    fn non_contiguous_input_is_copied_right() {
        let volume = ramp((2, 6, 6, 6));
        let strided = volume.slice(s![.., ..;2, .., ..;-1]);
        let patch = extract_patch(strided, [1, 1, 1], [2, 3, 4]).unwrap();
        assert_eq!(patch, strided.slice(s![.., 1..3, 1..4, 1..5]));
    }

    #[test]
    fn out_of_bounds_and_empty_are_errors() {
        let volume = ramp((1, 4, 4, 4));
        assert!(matches!(
            extract_patch(volume.view(), [1, 0, 0], [4, 1, 1]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            extract_patch(volume.view(), [usize::MAX, 0, 0], [4, 1, 1]),
            Err(Error::Shape(_))
        ));
        assert!(matches!(
            extract_patch(volume.view(), [0, 0, 0], [0, 1, 1]),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            extract_patches(volume.view(), &[[0, 0, 0], [0, 0, 3]], [2, 2, 2]),
            Err(Error::Shape(_))
        ));
        let empty = Array4::<i32>::zeros((0, 4, 4, 4));
        assert!(matches!(
            extract_patch(empty.view(), [0, 0, 0], [1, 1, 1]),
            Err(Error::Empty(_))
        ));
    }
}
