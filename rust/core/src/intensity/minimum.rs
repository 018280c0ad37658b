//! Per-channel minimum of a volume, the fill value of TorchIO's affine and
//! elastic transforms (`default_pad_value='minimum'`).
//!
//! A plain reduction, but one every augmented subject pays for: NumPy's
//! `min` runs on one thread (about 2 ms for a 1 mm brain), during which the
//! warp's threads wait. Here each thread scans a contiguous piece of a
//! channel with sixteen independent lanes, which the compiler turns into
//! vector `min`s.

use ndarray::ArrayView4;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// Values per task: large enough that scheduling costs nothing, small enough
/// that every thread gets a share of a 1 mm brain.
const TASK: usize = 1 << 20;

/// Independent accumulators, so the loop has no dependency chain and vectorises.
const LANES: usize = 16;

/// Minimum of every channel of a `(C, I, J, K)` volume, as `f64`; NaN for a
/// channel holding a NaN (as NumPy's and torch's `min`).
///
/// # Errors
/// `Error::Empty` for a volume without voxels.
pub fn channel_minima<T: Voxel>(volume: ArrayView4<'_, T>) -> Result<Vec<f64>> {
    check_not_empty(&volume, "volume")?;
    let volume = volume.as_standard_layout();
    let Some(data) = volume.as_slice() else {
        return Err(Error::Shape(
            "standard-layout volume is not contiguous".into(),
        ));
    };
    let channel_len = data.len() / volume.dim().0;
    Ok(data
        .chunks_exact(channel_len)
        .map(|channel| {
            let parts: Vec<(T, bool)> = channel.par_chunks(TASK).map(minimum).collect();
            if parts.iter().any(|&(_, nan)| nan) {
                return f64::NAN;
            }
            parts
                .into_iter()
                .map(|(value, _)| value)
                .reduce(smaller)
                .map_or(f64::NAN, Voxel::to_f64)
        })
        .collect())
}

/// The smaller of two values (`b` when they are unordered; NaN is tracked apart).
#[inline(always)]
fn smaller<T: Voxel>(a: T, b: T) -> T {
    if a < b {
        a
    } else {
        b
    }
}

/// Minimum of a non-empty slice and whether it holds a NaN (the minimum is
/// meaningless then: the caller reports NaN).
fn minimum<T: Voxel>(values: &[T]) -> (T, bool) {
    let mut lanes = [values[0]; LANES];
    let mut nan = [false; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for ((lane, flag), &value) in lanes.iter_mut().zip(&mut nan).zip(chunk) {
            // `value != value` only for NaN (always false for integers).
            #[allow(clippy::eq_op)]
            let is_nan = value != value;
            *flag |= is_nan;
            *lane = smaller(value, *lane);
        }
    }
    let mut least = lanes.into_iter().reduce(smaller).unwrap_or(values[0]);
    let mut has_nan = nan.contains(&true);
    for &value in chunks.remainder() {
        #[allow(clippy::eq_op)]
        let is_nan = value != value;
        has_nan |= is_nan;
        least = smaller(value, least);
    }
    (least, has_nan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array4;

    fn naive(values: &[f32]) -> f64 {
        if values.iter().any(|v| v.is_nan()) {
            return f64::NAN;
        }
        values.iter().fold(f32::INFINITY, |a, &b| a.min(b)) as f64
    }

    #[test]
    fn matches_a_naive_scan_per_channel() {
        // Three channels, an odd length (remainders), the minimum at varied places.
        let shape = (3, 7, 11, 13);
        let volume = Array4::from_shape_fn(shape, |(c, i, j, k)| {
            let x = ((c * 31 + i * 17 + j * 7 + k * 3) % 97) as f32 - 40.0;
            if (c, i, j, k) == (1, 6, 10, 12) {
                -1000.0
            } else {
                x * (c as f32 + 1.0)
            }
        });
        let minima = channel_minima(volume.view()).unwrap();
        for (c, &m) in minima.iter().enumerate() {
            let channel: Vec<f32> = volume
                .index_axis(ndarray::Axis(0), c)
                .iter()
                .copied()
                .collect();
            assert_eq!(m, naive(&channel), "channel {c}");
        }
        assert_eq!(minima[1], -1000.0);
    }

    #[test]
    fn a_nan_makes_only_its_channel_nan() {
        let mut volume = Array4::<f32>::ones((2, 4, 5, 40));
        volume[[0, 0, 0, 0]] = f32::NAN; // first value: the lanes' seed
        volume[[1, 3, 4, 39]] = -2.0;
        let minima = channel_minima(volume.view()).unwrap();
        assert!(minima[0].is_nan());
        assert_eq!(minima[1], -2.0);
    }

    #[test]
    fn integer_volumes_and_permuted_views() {
        let volume = Array4::from_shape_fn((2, 3, 4, 50), |(c, i, j, k)| {
            (i as i16 * 100 + j as i16 * 10 + k as i16) - c as i16 * 500
        });
        let minima = channel_minima(volume.view()).unwrap();
        assert_eq!(minima, [0.0, -500.0]);
        // Spatial axes permuted (not in standard layout): same channels, same minima.
        let permuted = volume.view().permuted_axes([0, 3, 1, 2]);
        assert!(!permuted.is_standard_layout());
        assert_eq!(channel_minima(permuted).unwrap(), [0.0, -500.0]);
    }

    #[test]
    fn an_empty_volume_is_an_error() {
        let volume = Array4::<u8>::zeros((1, 0, 3, 3));
        assert!(matches!(
            channel_minima(volume.view()),
            Err(Error::Empty(_))
        ));
    }
}
