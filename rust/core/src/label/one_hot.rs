//! One-hot encoding of a label map, `(1, I, J, K)` -> `(N, I, J, K)`, and its
//! inverse, the argmax over channels.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::{flat, flat_mut, standard, LabelVoxel};
use crate::error::{Error, Result};
use crate::volume::check_not_empty;
use crate::volume::zeroed;

/// Smallest and largest class index of a label map, as `torch.long()` would
/// compute them (floats truncated toward zero).
///
/// Fails if a value is NaN or infinite.
pub fn class_range<T: LabelVoxel>(labels: ArrayView4<'_, T>) -> Result<(i64, i64)> {
    check_not_empty(&labels, "labels")?;
    let standard = standard(&labels);
    let data = flat(&standard)?;
    let (_, _, nj, nk) = labels.dim();
    let planes: Vec<Result<(i64, i64)>> = data
        .par_chunks(nj * nk)
        .map(|plane| {
            let mut low = i64::MAX;
            let mut high = i64::MIN;
            for &value in plane {
                let Some(class) = value.class_index() else {
                    return Err(Error::InvalidArgument(format!(
                        "label maps must hold finite values, found {value:?}"
                    )));
                };
                low = low.min(class);
                high = high.max(class);
            }
            Ok((low, high))
        })
        .collect();
    let mut low = i64::MAX;
    let mut high = i64::MIN;
    for plane in planes {
        let (a, b) = plane?;
        low = low.min(a);
        high = high.max(b);
    }
    Ok((low, high))
}

/// One-hot encodes a single-channel label map, like TorchIO's `OneHot`.
///
/// `labels` has shape `(1, I, J, K)`; each value `v` (floats truncated toward
/// zero) becomes channel `v` of the output, of shape `(N, I, J, K)` and the
/// input's type, holding 1 there and 0 elsewhere. `num_classes = None` uses
/// `N = max + 1`.
///
/// Fails for a multichannel input, negative or non-finite values, values
/// `>= num_classes` and `num_classes == Some(0)`.
pub fn one_hot<T: LabelVoxel>(
    labels: ArrayView4<'_, T>,
    num_classes: Option<usize>,
) -> Result<Array4<T>> {
    check_not_empty(&labels, "labels")?;
    let (channels, ni, nj, nk) = labels.dim();
    if channels != 1 {
        return Err(Error::Shape(format!(
            "one-hot encoding needs a single-channel label map, got {channels} channels"
        )));
    }
    let (low, high) = class_range(labels)?;
    if low < 0 {
        return Err(Error::InvalidArgument(format!(
            "class values must be non-negative, found {low}"
        )));
    }
    let classes = match num_classes {
        Some(0) => {
            return Err(Error::InvalidArgument(
                "num_classes must be positive".into(),
            ))
        }
        Some(n) => {
            if high >= n as i64 {
                return Err(Error::InvalidArgument(format!(
                    "class values must be smaller than num_classes = {n}, found {high}"
                )));
            }
            n
        }
        None => usize::try_from(high + 1)
            .map_err(|_| Error::InvalidArgument(format!("class value {high} is too large")))?,
    };
    if classes.checked_mul(ni * nj * nk).is_none() {
        return Err(Error::InvalidArgument(format!(
            "{classes} classes overflow memory"
        )));
    }
    let standard = standard(&labels);
    let input = flat(&standard)?;
    let mut output = zeroed((classes, ni, nj, nk));
    let one = T::from_f64(1.0);
    let zero = T::from_f64(0.0);
    let plane_len = nj * nk;
    // One task per output (class, i) plane: each output voxel is written once.
    flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (class, i) = ((plane_index / ni) as i64, plane_index % ni);
            let source = &input[i * plane_len..(i + 1) * plane_len];
            for (o, &v) in plane.iter_mut().zip(source) {
                *o = if v.class_index() == Some(class) {
                    one
                } else {
                    zero
                };
            }
        });
    Ok(output)
}

/// Index of the largest channel of every voxel, `(C, I, J, K)` -> `(1, I, J, K)`
/// int64, like `torch.argmax(dim=0, keepdim=True)`: the first maximum wins and
/// NaN counts as larger than any number.
///
/// With `zero_max_as = Some(v)`, voxels whose maximum equals 0 get `v` instead
/// (TorchIO marks voxels of a partial-volume map without any label with -1).
pub fn argmax<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    zero_max_as: Option<i64>,
) -> Result<Array4<i64>> {
    check_not_empty(&volume, "volume")?;
    let (channels, ni, nj, nk) = volume.dim();
    let plane_len = nj * nk;
    let standard = standard(&volume);
    let input = flat(&standard)?;
    let channel_len = ni * plane_len;
    let mut output = Array4::<i64>::zeros((1, ni, nj, nk));
    let zero = T::from_f64(0.0);
    flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each_init(
            || Vec::<T>::with_capacity(plane_len),
            |best, (i, indices)| {
                let plane = |channel: usize| {
                    let start = channel * channel_len + i * plane_len;
                    &input[start..start + plane_len]
                };
                best.clear();
                best.extend_from_slice(plane(0));
                for channel in 1..channels {
                    for ((index, b), &v) in
                        indices.iter_mut().zip(best.iter_mut()).zip(plane(channel))
                    {
                        if !b.is_nan() && (v.is_nan() || v > *b) {
                            *b = v;
                            *index = channel as i64;
                        }
                    }
                }
                if let Some(marker) = zero_max_as {
                    for (index, &b) in indices.iter_mut().zip(best.iter()) {
                        if b == zero {
                            *index = marker;
                        }
                    }
                }
            },
        );
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Axis};

    fn labels(values: &[i32], shape: (usize, usize, usize)) -> Array4<i32> {
        Array::from_vec(values.to_vec())
            .into_shape_with_order((1, shape.0, shape.1, shape.2))
            .unwrap()
    }

    #[test]
    fn one_hot_places_ones_in_the_label_channel() {
        let map = labels(&[0, 2, 1, 2, 0, 0], (1, 2, 3));
        let encoded = one_hot(map.view(), None).unwrap();
        assert_eq!(encoded.dim(), (3, 1, 2, 3));
        for class in 0..3 {
            for (e, &v) in encoded.index_axis(Axis(0), class).iter().zip(map.iter()) {
                assert_eq!(*e, i32::from(v == class as i32));
            }
        }
        let back = argmax(encoded.view(), None).unwrap();
        assert_eq!(back.mapv(|v| v as i32), map);
    }

    #[test]
    fn one_hot_respects_num_classes_and_truncates_floats() {
        let map = Array::from_vec(vec![0.9f32, 1.2, 2.99, -0.5])
            .into_shape_with_order((1, 1, 1, 4))
            .unwrap();
        let encoded = one_hot(map.view(), Some(5)).unwrap();
        assert_eq!(encoded.dim(), (5, 1, 1, 4));
        let classes: Vec<i64> = argmax(encoded.view(), None).unwrap().into_iter().collect();
        assert_eq!(classes, vec![0, 1, 2, 0]);
        assert_eq!(encoded.sum(), 4.0);
    }

    #[test]
    fn one_hot_rejects_bad_labels() {
        let map = labels(&[0, 3], (1, 1, 2));
        assert!(matches!(
            one_hot(map.view(), Some(3)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            one_hot(map.view(), Some(0)),
            Err(Error::InvalidArgument(_))
        ));
        let negative = labels(&[0, -1], (1, 1, 2));
        assert!(one_hot(negative.view(), None).is_err());
        let nan = Array4::from_elem((1, 1, 1, 2), f64::NAN);
        assert!(one_hot(nan.view(), None).is_err());
        let two_channels = Array4::<u8>::zeros((2, 1, 1, 2));
        assert!(matches!(
            one_hot(two_channels.view(), None),
            Err(Error::Shape(_))
        ));
        let empty = Array4::<u8>::zeros((1, 0, 1, 2));
        assert!(matches!(one_hot(empty.view(), None), Err(Error::Empty(_))));
    }

    #[test]
    fn argmax_takes_first_maximum_and_nan_and_marks_empty_voxels() {
        let volume = Array::from_vec(vec![
            0.0f32,
            0.2,
            0.5,
            f32::NAN, //
            0.0,
            0.7,
            0.5,
            1.0, //
            0.0,
            0.1,
            0.1,
            f32::NAN,
        ])
        .into_shape_with_order((3, 1, 1, 4))
        .unwrap();
        let plain: Vec<i64> = argmax(volume.view(), None).unwrap().into_iter().collect();
        assert_eq!(plain, vec![0, 1, 0, 0]);
        let marked: Vec<i64> = argmax(volume.view(), Some(-1))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(marked, vec![-1, 1, 0, 0]);
    }
}
