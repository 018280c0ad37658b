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

/// Voxels per parallel task.
const PARALLEL_CHUNK: usize = 1 << 16;
/// Voxels mapped together: the bin search runs breakpoint by breakpoint over
/// a whole block, which vectorises, instead of voxel by voxel.
const BLOCK: usize = 64;

/// The lines of every bin and the breakpoints between them.
struct Lines<'a> {
    breakpoints: &'a [f64],
    slopes: &'a [f64],
    intercepts: &'a [f64],
}

impl Lines<'_> {
    /// Maps the values `x` (at most [`BLOCK`]) into `out` (same length).
    ///
    /// The bins are counted breakpoint by breakpoint over the whole block
    /// (compare-and-add lanes, which vectorise), then each value takes the
    /// line of its bin. NaN passes no test but belongs to the last bin.
    #[inline(always)]
    fn map_block(&self, x: &[f64], out: &mut [std::mem::MaybeUninit<f32>]) {
        let n = x.len().min(out.len());
        let mut bins = [0u64; BLOCK];
        for &at in self.breakpoints {
            for (bin, &x) in bins[..n].iter_mut().zip(x) {
                *bin += u64::from(at <= x);
            }
        }
        let last = self.slopes.len() - 1;
        for ((o, &x), &bin) in out[..n].iter_mut().zip(x).zip(&bins) {
            let bin = if x.is_nan() {
                last
            } else {
                (bin as usize).min(last)
            };
            o.write((self.slopes[bin] * x + self.intercepts[bin]) as f32);
        }
    }

    /// Maps `source` into `out` (same length), block by block.
    #[inline(always)]
    fn map<T: Voxel>(&self, source: &[T], out: &mut [std::mem::MaybeUninit<f32>]) {
        let mut x = [0.0f64; BLOCK];
        for (out, source) in out.chunks_mut(BLOCK).zip(source.chunks(BLOCK)) {
            let x = &mut x[..source.len()];
            for (x, &v) in x.iter_mut().zip(source) {
                *x = v.to_f64() as f32 as f64;
            }
            self.map_block(x, out);
        }
    }

    /// [`Lines::map`] compiled with AVX2 (four-lane compares and conversions).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn map_avx2<T: Voxel>(&self, source: &[T], out: &mut [std::mem::MaybeUninit<f32>]) {
        self.map(source, out)
    }
}

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
    let mut output = Array4::<f32>::uninit((channels, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let table = Lines {
        breakpoints,
        slopes,
        intercepts,
    };
    out.par_chunks_mut(PARALLEL_CHUNK)
        .zip(input.par_chunks(PARALLEL_CHUNK))
        .for_each(|(out, source)| {
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { table.map_avx2(source, out) };
                return;
            }
            table.map(source, out);
        });
    // SAFETY: the output and input chunks have the same lengths (both are
    // contiguous with the same number of elements) and `map_block` writes
    // every element of each block.
    let output = unsafe { output.assume_init() };
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
