//! Remapping label values through a lookup table, and the label-value queries
//! TorchIO's label transforms need (the sorted set of values, integrality).

use std::collections::HashSet;

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::{exact_voxel, flat, flat_mut, standard, LabelVoxel, ValueTable};
use crate::error::{Error, Result};
use crate::volume::zeroed;
use crate::volume::{check_mask_shape, check_not_empty};

/// Returns a copy of `volume` where every value equal to a key of `mapping`
/// becomes the paired value, but only where `mask` (if given) is nonzero.
///
/// Values are compared as TorchIO does (`data == old_label`), all against the
/// *input*, so `{1: 2, 2: 1}` swaps labels. `mask` has shape `(1, I, J, K)`
/// (shared by all channels) or `(C, I, J, K)`.
///
/// Fails if keys repeat or are NaN, if a new value cannot be stored in `T`
/// (e.g. 300 in a uint8 map, 1.5 in an integer map) or if shapes disagree.
pub fn remap<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    mapping: &[(f64, f64)],
    mask: Option<ArrayView4<'_, u8>>,
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    if let Some(mask) = &mask {
        check_mask_shape(volume.shape(), mask.shape())?;
    }
    let mut entries = Vec::with_capacity(mapping.len());
    for &(old, new) in mapping {
        entries.push((old, exact_voxel::<T>(new, "new label")?));
    }
    let table = ValueTable::new(&entries)?;
    let (channels, ni, nj, nk) = volume.dim();
    let plane_len = nj * nk;
    let standard_volume = standard(&volume);
    let input = flat(&standard_volume)?;
    let standard_mask = mask.as_ref().map(standard);
    let mask_data = standard_mask.as_ref().map(flat).transpose()?;
    let mask_channels = mask.as_ref().map_or(1, |m| m.dim().0);
    let mut output = zeroed((channels, ni, nj, nk));
    flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(p, plane)| {
            let source = &input[p * plane_len..(p + 1) * plane_len];
            match mask_data {
                None => {
                    for (o, &v) in plane.iter_mut().zip(source) {
                        *o = table.get_voxel(v).unwrap_or(v);
                    }
                }
                Some(mask) => {
                    let (c, i) = (p / ni, p % ni);
                    let mp = if mask_channels == 1 { i } else { c * ni + i };
                    let m = &mask[mp * plane_len..(mp + 1) * plane_len];
                    for ((o, &v), &keep) in plane.iter_mut().zip(source).zip(m) {
                        *o = if keep != 0 {
                            table.get_voxel(v).unwrap_or(v)
                        } else {
                            v
                        };
                    }
                }
            }
        });
    Ok(output)
}

/// The distinct values of `volume`, sorted ascending (as `torch.unique`).
///
/// Fails on NaN, which no label map should hold.
pub fn unique_values<T: LabelVoxel>(volume: ArrayView4<'_, T>) -> Result<Vec<f64>> {
    check_not_empty(&volume, "volume")?;
    let (_, _, nj, nk) = volume.dim();
    let standard = standard(&volume);
    let data = flat(&standard)?;
    let planes: Vec<Result<HashSet<u64>>> = data
        .par_chunks(nj * nk)
        .map(|plane| {
            let mut seen = HashSet::new();
            let mut last: Option<T> = None;
            for &v in plane {
                // Label maps are piecewise constant: skip runs cheaply.
                if last == Some(v) {
                    continue;
                }
                if v.is_nan() {
                    return Err(Error::InvalidArgument(
                        "label maps must not contain NaN".into(),
                    ));
                }
                last = Some(v);
                // +0.0 canonicalises -0.0, which compares equal to it.
                seen.insert((v.to_f64() + 0.0).to_bits());
            }
            Ok(seen)
        })
        .collect();
    let mut all = HashSet::new();
    for plane in planes {
        all.extend(plane?);
    }
    let mut values: Vec<f64> = all.into_iter().map(f64::from_bits).collect();
    values.sort_by(f64::total_cmp);
    Ok(values)
}

/// Whether every value is integral by TorchIO's test `x == x.float().round()`
/// (always true for integer types). NaN is not integral.
pub fn all_integral<T: LabelVoxel>(volume: ArrayView4<'_, T>) -> Result<bool> {
    check_not_empty(&volume, "volume")?;
    if !T::IS_FLOAT {
        return Ok(true);
    }
    let (_, _, nj, nk) = volume.dim();
    let standard = standard(&volume);
    let data = flat(&standard)?;
    Ok(data
        .par_chunks(nj * nk)
        .all(|plane| plane.iter().all(|v| v.is_torch_integral())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn row<T: Clone>(values: &[T]) -> Array4<T> {
        Array::from_vec(values.to_vec())
            .into_shape_with_order((1, 1, 1, values.len()))
            .unwrap()
    }

    #[test]
    fn remap_uses_the_input_values_simultaneously() {
        let map = row(&[0i64, 1, 2, 3, 4]);
        let out = remap(
            map.view(),
            &[(1.0, 2.0), (2.0, 1.0), (3.0, 1.0), (4.0, 7.0)],
            None,
        )
        .unwrap();
        assert_eq!(out, row(&[0i64, 2, 1, 1, 7]));
    }

    #[test]
    fn remap_only_inside_the_mask_and_per_channel_masks() {
        let map = Array::from_vec(vec![1u8, 1, 1, 1, 2, 2])
            .into_shape_with_order((2, 1, 1, 3))
            .unwrap();
        let shared = row(&[1u8, 0, 1]);
        let out = remap(map.view(), &[(1.0, 5.0), (2.0, 6.0)], Some(shared.view())).unwrap();
        assert_eq!(out.as_slice().unwrap(), &[5, 1, 5, 5, 2, 6]);
        let per_channel = Array::from_vec(vec![0u8, 0, 1, 1, 1, 0])
            .into_shape_with_order((2, 1, 1, 3))
            .unwrap();
        let out = remap(
            map.view(),
            &[(1.0, 5.0), (2.0, 6.0)],
            Some(per_channel.view()),
        )
        .unwrap();
        assert_eq!(out.as_slice().unwrap(), &[1, 1, 5, 5, 6, 2]);
    }

    #[test]
    fn remap_float_maps_and_wide_keys() {
        let map = row(&[0.0f32, 2.5, 1e7, 3.0]);
        let out = remap(map.view(), &[(2.5, 1.0), (1e7, 2.0)], None).unwrap();
        assert_eq!(out, row(&[0.0f32, 1.0, 2.0, 3.0]));
    }

    #[test]
    fn remap_rejects_unstorable_values_and_bad_masks() {
        let map = row(&[0u8, 1]);
        assert!(remap(map.view(), &[(1.0, 300.0)], None).is_err());
        assert!(remap(map.view(), &[(1.0, 1.5)], None).is_err());
        assert!(remap(map.view(), &[(1.0, 2.0), (1.0, 3.0)], None).is_err());
        let mask = row(&[1u8, 1, 1]);
        assert!(matches!(
            remap(map.view(), &[(1.0, 2.0)], Some(mask.view())),
            Err(Error::Shape(_))
        ));
    }

    #[test]
    fn unique_values_are_sorted_and_distinct() {
        let map = Array::from_vec(vec![5i16, 5, -3, 0, 5, 7, 0, -3])
            .into_shape_with_order((2, 2, 1, 2))
            .unwrap();
        assert_eq!(
            unique_values(map.view()).unwrap(),
            vec![-3.0, 0.0, 5.0, 7.0]
        );
        let floats = row(&[-0.0f32, 0.0, 1.5]);
        assert_eq!(unique_values(floats.view()).unwrap(), vec![0.0, 1.5]);
        assert!(unique_values(row(&[f32::NAN]).view()).is_err());
    }

    #[test]
    fn integrality_follows_torch() {
        assert!(all_integral(row(&[1i64, -4]).view()).unwrap());
        assert!(all_integral(row(&[1.0f32, -4.0]).view()).unwrap());
        assert!(!all_integral(row(&[1.0f32, 0.5]).view()).unwrap());
        assert!(!all_integral(row(&[f64::NAN]).view()).unwrap());
    }
}
