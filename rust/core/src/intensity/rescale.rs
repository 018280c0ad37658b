//! Voxel-wise intensity maps, one pass each, writing the output once:
//! min-max rescaling (TorchIO's `RescaleIntensity`), z-normalisation
//! (`ZNormalization`) and clamping (`Clamp`).

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// Parameters of [`rescale`]: input range mapped to the output range, after an
/// optional clip of the input values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescaleParams {
    pub in_min: f64,
    pub in_max: f64,
    pub out_min: f64,
    pub out_max: f64,
    /// Input values below this are raised to it before mapping (`None`: no clip).
    pub clip_min: Option<f64>,
    /// Input values above this are lowered to it before mapping (`None`: no clip).
    pub clip_max: Option<f64>,
}

/// Allocates a zero-filled output with the shape of `volume`.
fn allocate_like<T: Voxel, U: Voxel>(volume: &ArrayView4<'_, T>) -> Result<Array4<U>> {
    let shape = volume.dim();
    let len = volume.len();
    // Probe the allocation so an impossible size is an error, not an abort.
    let mut probe: Vec<U> = Vec::new();
    probe.try_reserve_exact(len).map_err(|_| {
        Error::InvalidArgument(format!("cannot allocate an output of shape {shape:?}"))
    })?;
    drop(probe);
    // `vec!` of a zero value uses a zeroed allocation: no extra pass over memory.
    Array4::from_shape_vec(shape, vec![U::default(); len])
        .map_err(|e| Error::Shape(format!("output of shape {shape:?}: {e}")))
}

/// Applies `f` to every voxel, one task per `J x K` plane.
fn map_planes<T: Voxel, U: Voxel>(
    volume: ArrayView4<'_, T>,
    f: impl Fn(T) -> U + Sync,
) -> Result<Array4<U>> {
    check_not_empty(&volume, "volume")?;
    let mut output = allocate_like::<T, U>(&volume)?;
    let (_, _, nj, nk) = volume.dim();
    let plane_len = nj * nk;
    let volume = volume.as_standard_layout();
    let (Some(input), Some(out)) = (volume.as_slice(), output.as_slice_mut()) else {
        return Err(Error::Shape(
            "standard-layout arrays are not contiguous".into(),
        ));
    };
    out.par_chunks_mut(plane_len)
        .zip(input.par_chunks(plane_len))
        .for_each(|(out, input)| {
            out.iter_mut().zip(input).for_each(|(o, &v)| *o = f(v));
        });
    Ok(output)
}

fn check_finite(value: f64, name: &str) -> Result<()> {
    ensure(value.is_finite(), || {
        format!("{name} must be finite, got {value}")
    })
}

/// Maps `[in_min, in_max]` linearly to `[out_min, out_max]` as float32,
/// after clipping input values to `[clip_min, clip_max]` when given.
///
/// The arithmetic reproduces TorchIO 1.2.1's float32 in-place sequence
/// (`x -= in_min; x /= in_max - in_min; x *= out_max - out_min; x += out_min`),
/// with the clip done in float64 like NumPy's `clip` with float64 bounds.
/// TorchIO clips to the percentile cut-offs, not to `in_min`/`in_max`: pass
/// `clip_min = in_min, clip_max = in_max` to bound the output to the output range.
/// NaN voxels stay NaN.
///
/// # Errors
/// `Error::InvalidArgument` for a non-finite or NaN parameter, `in_min >= in_max`,
/// ranges that overflow float32, or `clip_min > clip_max`; `Error::Empty` for an
/// empty volume.
pub fn rescale<T: Voxel>(volume: ArrayView4<'_, T>, params: &RescaleParams) -> Result<Array4<f32>> {
    let RescaleParams {
        in_min,
        in_max,
        out_min,
        out_max,
        clip_min,
        clip_max,
    } = *params;
    for (value, name) in [
        (in_min, "in_min"),
        (in_max, "in_max"),
        (out_min, "out_min"),
        (out_max, "out_max"),
    ] {
        check_finite(value, name)?;
    }
    ensure(in_min < in_max, || {
        format!("in_min ({in_min}) must be smaller than in_max ({in_max})")
    })?;
    let low = clip_min.unwrap_or(f64::NEG_INFINITY);
    let high = clip_max.unwrap_or(f64::INFINITY);
    ensure(!low.is_nan() && !high.is_nan(), || {
        format!("clip bounds must not be NaN, got ({low}, {high})")
    })?;
    ensure(low <= high, || {
        format!("clip_min ({low}) must not be larger than clip_max ({high})")
    })?;
    let in_min32 = in_min as f32;
    let in_range = (in_max - in_min) as f32;
    let out_range = (out_max - out_min) as f32;
    let out_min32 = out_min as f32;
    ensure(
        in_range.is_finite() && in_range > 0.0 && in_min32.is_finite(),
        || format!("input range ({in_min}, {in_max}) is not representable in float32"),
    )?;
    ensure(out_range.is_finite() && out_min32.is_finite(), || {
        format!("output range ({out_min}, {out_max}) is not representable in float32")
    })?;
    let clip = clip_min.is_some() || clip_max.is_some();
    map_planes(volume, move |v: T| {
        let mut x = v.to_f64() as f32;
        if clip {
            // NaN fails both comparisons and stays NaN, as with NumPy's clip.
            let wide = f64::from(x);
            if wide < low {
                x = low as f32;
            } else if wide > high {
                x = high as f32;
            }
        }
        let mut y = x - in_min32;
        y /= in_range;
        y *= out_range;
        y + out_min32
    })
}

/// Returns `(x - mean) / std` as float32, in float32 arithmetic like TorchIO's
/// in-place `ZNormalization`.
///
/// # Errors
/// `Error::InvalidArgument` for a non-finite mean or std, or a std that is not
/// positive in float32; `Error::Empty` for an empty volume.
pub fn z_normalize<T: Voxel>(
    volume: ArrayView4<'_, T>,
    mean: f64,
    std: f64,
) -> Result<Array4<f32>> {
    check_finite(mean, "mean")?;
    check_finite(std, "std")?;
    let (mean32, std32) = (mean as f32, std as f32);
    ensure(
        std32 > 0.0 && mean32.is_finite() && std32.is_finite(),
        || {
            format!("std must be positive and mean and std representable in float32, got mean {mean}, std {std}")
        },
    )?;
    map_planes(volume, move |v: T| (v.to_f64() as f32 - mean32) / std32)
}

/// Converts a clamp bound to the voxel type: integer volumes round the lower
/// bound up and the upper bound down (the integers inside the interval) and
/// saturate at the type's range.
fn bound<T: Voxel>(value: f64, lower: bool) -> T {
    if T::IS_FLOAT {
        T::from_f64(value)
    } else if lower {
        T::from_f64(value.ceil())
    } else {
        T::from_f64(value.floor())
    }
}

/// Clips every voxel to `[min, max]` (either optional), keeping the dtype.
///
/// Like `torch.clamp` and `numpy.clip`, the result is `min(max(x, min), max)`,
/// so `min > max` sets every voxel to `max`, and NaN voxels stay NaN.
///
/// # Errors
/// `Error::InvalidArgument` for a NaN bound; `Error::Empty` for an empty volume.
pub fn clamp<T: Voxel>(
    volume: ArrayView4<'_, T>,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<Array4<T>> {
    for (value, name) in [(min, "min"), (max, "max")] {
        if let Some(value) = value {
            ensure(!value.is_nan(), || format!("clamp {name} must not be NaN"))?;
        }
    }
    let low: Option<T> = min.map(|v| bound(v, true));
    let high: Option<T> = max.map(|v| bound(v, false));
    map_planes(volume, move |v: T| {
        let mut x = v;
        if let Some(low) = low {
            if x < low {
                x = low;
            }
        }
        if let Some(high) = high {
            if x > high {
                x = high;
            }
        }
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn volume() -> Array4<f32> {
        Array::from_iter((0..24).map(|v| v as f32 - 4.0))
            .into_shape_with_order((2, 3, 2, 2))
            .unwrap()
    }

    fn params(in_min: f64, in_max: f64, clip: Option<(f64, f64)>) -> RescaleParams {
        RescaleParams {
            in_min,
            in_max,
            out_min: -1.0,
            out_max: 1.0,
            clip_min: clip.map(|c| c.0),
            clip_max: clip.map(|c| c.1),
        }
    }

    #[test]
    fn rescale_maps_range_and_clips_before_mapping() {
        let v = volume();
        let out = rescale(v.view(), &params(-4.0, 19.0, None)).unwrap();
        assert_eq!(out[[0, 0, 0, 0]], -1.0);
        assert_eq!(out[[1, 2, 1, 1]], 1.0);
        // Without a clip values outside the input range leave the output range.
        let out = rescale(v.view(), &params(0.0, 10.0, None)).unwrap();
        assert_eq!(out[[0, 0, 0, 0]], -1.8);
        let out = rescale(v.view(), &params(0.0, 10.0, Some((0.0, 10.0)))).unwrap();
        assert_eq!(out[[0, 0, 0, 0]], -1.0);
        assert_eq!(out[[1, 2, 1, 1]], 1.0);
        assert_eq!(out[[0, 1, 1, 1]], ((3.0f32 - 0.0) / 10.0) * 2.0 - 1.0);
    }

    #[test]
    fn z_normalize_and_clamp() {
        let v = volume();
        let out = z_normalize(v.view(), 2.0, 4.0).unwrap();
        assert_eq!(out[[0, 0, 0, 0]], -1.5);
        let ints = Array4::from_shape_vec((1, 1, 1, 5), vec![-3i16, -1, 0, 2, 7]).unwrap();
        let out = clamp(ints.view(), Some(-1.5), Some(2.5)).unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), [-1, -1, 0, 2, 2]);
        let out = clamp(ints.view(), None, Some(1e9)).unwrap();
        assert_eq!(out, ints);
        let out = clamp(v.view(), Some(3.0), Some(1.0)).unwrap();
        assert!(out.iter().all(|&x| x == 1.0));
        let mut nan = v.clone();
        nan[[0, 0, 0, 1]] = f32::NAN;
        assert!(clamp(nan.view(), Some(0.0), None).unwrap()[[0, 0, 0, 1]].is_nan());
    }

    #[test]
    fn invalid_parameters_are_errors() {
        let v = volume();
        let v = v.view();
        for p in [
            params(f64::NAN, 1.0, None),
            params(1.0, 1.0, None),
            params(2.0, 1.0, None),
            params(0.0, 1.0, Some((2.0, 1.0))),
            params(0.0, 1.0, Some((f64::NAN, 1.0))),
            params(-3e38, 3e38, None),
        ] {
            assert!(
                matches!(rescale(v, &p), Err(Error::InvalidArgument(_))),
                "{p:?}"
            );
        }
        assert!(matches!(
            z_normalize(v, 0.0, 0.0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            z_normalize(v, f64::NAN, 1.0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            z_normalize(v, 0.0, 1e-60),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            clamp(v, Some(f64::NAN), None),
            Err(Error::InvalidArgument(_))
        ));
        let empty = Array4::<u8>::zeros((1, 0, 1, 1));
        assert!(matches!(
            clamp(empty.view(), None, None),
            Err(Error::Empty(_))
        ));
    }
}
