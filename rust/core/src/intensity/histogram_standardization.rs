//! Histogram standardization (Nyúl and Udupa): the piecewise-linear intensity
//! map through landmarks that TorchIO's `HistogramStandardization` applies.
//!
//! TorchIO computes percentiles of the (masked) image, turns consecutive pairs
//! of (image percentile, trained landmark) into lines, and maps every voxel
//! with the line of its bin, `np.digitize`-style: `bin = #{b : b <= x}` over
//! the interior breakpoints, so values beyond the first and last breakpoints
//! are extrapolated by the outer lines. The small per-image tables come from
//! Python; this kernel does the per-voxel work.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// Maps every voxel `x` (first cast to float32, as TorchIO does) to
/// `slopes[b] * x + intercepts[b]` in float64, stored as float32, where
/// `b` is the number of `breakpoints` that are `<= x` (`np.digitize(x,
/// breakpoints, right=False)`; NaN falls in the last bin).
///
/// Fails unless `breakpoints` is non-decreasing and free of NaN and there is
/// one more slope and intercept than breakpoints.
pub fn piecewise_linear<T: Voxel>(
    volume: ArrayView4<'_, T>,
    breakpoints: &[f64],
    slopes: &[f64],
    intercepts: &[f64],
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    let bins = breakpoints.len() + 1;
    if slopes.len() != bins || intercepts.len() != bins {
        return Err(Error::InvalidArgument(format!(
            "{} breakpoints need {bins} slopes and intercepts, got {} and {}",
            breakpoints.len(),
            slopes.len(),
            intercepts.len()
        )));
    }
    if breakpoints.iter().any(|b| b.is_nan()) || breakpoints.windows(2).any(|w| w[1] < w[0]) {
        return Err(Error::InvalidArgument(format!(
            "breakpoints must be non-decreasing numbers, got {breakpoints:?}"
        )));
    }
    let (channels, ni, nj, nk) = volume.dim();
    let standard = volume.as_standard_layout();
    let Some(input) = standard.as_slice() else {
        return Err(Error::Shape(
            "standard-layout volume is not contiguous".into(),
        ));
    };
    let mut output = Array4::<f32>::zeros((channels, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let plane_len = nj * nk;
    out.par_chunks_mut(plane_len)
        .zip(input.par_chunks(plane_len))
        .for_each(|(plane, source)| {
            for (o, &v) in plane.iter_mut().zip(source) {
                let x = v.to_f64() as f32 as f64;
                // Branch-free count of the breakpoints <= x (a handful of them);
                // NaN compares false everywhere but belongs to the last bin.
                let bin = if x.is_nan() {
                    bins - 1
                } else {
                    breakpoints.iter().map(|&b| usize::from(b <= x)).sum()
                };
                *o = (slopes[bin] * x + intercepts[bin]) as f32;
            }
        });
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn maps_each_bin_with_its_line_and_extrapolates() {
        let volume = Array::from_vec(vec![-1.0f64, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, f64::NAN])
            .into_shape_with_order((1, 1, 2, 4))
            .unwrap();
        // Lines: bin 0 (x < 0): 2x; bin 1 (0 <= x < 1): x + 10; bin 2 (1 <= x): -x.
        let out = piecewise_linear(
            volume.view(),
            &[0.0, 1.0],
            &[2.0, 1.0, -1.0],
            &[0.0, 10.0, 0.0],
        )
        .unwrap();
        let values: Vec<f32> = out.iter().copied().collect();
        assert_eq!(&values[..7], &[-2.0, 10.0, 10.5, -1.0, -1.5, -2.0, -3.0]);
        assert!(values[7].is_nan());
    }

    #[test]
    fn repeated_breakpoints_skip_empty_bins() {
        let volume = Array::from_vec(vec![0.0f32, 1.0, 2.0])
            .into_shape_with_order((1, 1, 1, 3))
            .unwrap();
        let out = piecewise_linear(
            volume.view(),
            &[1.0, 1.0],
            &[1.0, 5.0, 3.0],
            &[0.0, 0.0, 0.0],
        )
        .unwrap();
        assert_eq!(out.as_slice().unwrap(), &[0.0, 3.0, 6.0]);
    }

    #[test]
    fn bad_tables_are_errors() {
        let volume = Array4::<u8>::zeros((1, 1, 1, 2));
        assert!(piecewise_linear(volume.view(), &[1.0, 0.0], &[0.0; 3], &[0.0; 3]).is_err());
        assert!(piecewise_linear(volume.view(), &[f64::NAN], &[0.0; 2], &[0.0; 2]).is_err());
        assert!(piecewise_linear(volume.view(), &[0.0], &[0.0; 3], &[0.0; 2]).is_err());
    }
}
