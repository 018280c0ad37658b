//! TorchIO's `Ghosting`: every `num_ghosts`-th plane of the centred spectrum
//! along `axis` is scaled by `1 - intensity`, the central planes are restored,
//! and the real part of the inverse FFT is returned as float32.
//!
//! The edit multiplies whole planes orthogonal to `axis`, i.e. it is a
//! multiplier `w(f_axis)` of the 3D spectrum that depends on one frequency
//! coordinate. `ifftn(w * fftn(x)) = ifft_axis(w * fft_axis(x))` because the
//! FFTs along the other axes commute with `w` and cancel, so one real 1D FFT
//! pair per line along `axis` gives TorchIO's result (two real lines share one
//! complex FFT, see [`SymmetricLineFilter`]).

use ndarray::{Array4, ArrayView4, Axis};

use super::fft::{filter_lines_along_axis, SpectralVoxel, SymmetricLineFilter};
use crate::error::{ensure, Error, Result};
use crate::volume::check_not_empty;

/// Weight of each shifted index along the ghosting axis (length `n`).
///
/// Shifted planes `0, num_ghosts, 2 * num_ghosts, ...` get `1 - intensity`;
/// the restored slab keeps weight 1: the central plane `n / 2` when `restore`
/// is `None`, otherwise `[n/2 - r/2, n/2 + r/2)` with
/// `r = round_half_even(restore * n)` (NumPy's `np.round`).
pub fn ghosting_weights(
    n: usize,
    num_ghosts: usize,
    intensity: f64,
    restore: Option<f64>,
) -> Result<Vec<f64>> {
    ensure(num_ghosts > 0, || {
        format!("num_ghosts must be positive, got {num_ghosts}")
    })?;
    ensure(intensity.is_finite(), || {
        format!("intensity must be finite, got {intensity}")
    })?;
    let mut weights = vec![1.0; n];
    for w in weights.iter_mut().step_by(num_ghosts) {
        *w = 1.0 - intensity;
    }
    let mid = n / 2;
    let (start, stop) = match restore {
        None => (mid, (mid + 1).min(n)),
        Some(fraction) => {
            ensure((0.0..=1.0).contains(&fraction), || {
                format!("restore must be in [0, 1], got {fraction}")
            })?;
            let size = (fraction * n as f64).round_ties_even() as usize;
            (mid - size / 2, mid + size / 2)
        }
    };
    weights[start..stop].iter_mut().for_each(|w| *w = 1.0);
    Ok(weights)
}

/// Adds ghosting to every channel of a `(C, I, J, K)` volume; returns float32.
///
/// `axis` is the spatial axis (0, 1 or 2) whose k-space planes are edited.
pub fn ghosting<T: SpectralVoxel>(
    volume: ArrayView4<'_, T>,
    num_ghosts: usize,
    axis: usize,
    intensity: f64,
    restore: Option<f64>,
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    if axis > 2 {
        return Err(Error::InvalidArgument(format!(
            "axis must be 0, 1 or 2, got {axis}"
        )));
    }
    let (c, ni, nj, nk) = volume.dim();
    let n = [ni, nj, nk][axis];
    let weights = ghosting_weights(n, num_ghosts, intensity, restore)?;
    let filter = SymmetricLineFilter::<T::F>::from_shifted_weights(&weights);
    let mut output = Array4::<f32>::zeros((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    for (channel, out_channel) in volume.axis_iter(Axis(0)).zip(out.chunks_mut(ni * nj * nk)) {
        filter_lines_along_axis(channel, axis, &filter, out_channel)?;
    }
    Ok(output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn weights_follow_torchio_plane_selection() {
        // n = 8, every 3rd shifted plane (0, 3, 6) scaled, centre 4 restored.
        let w = ghosting_weights(8, 3, 0.75, None).unwrap();
        assert_eq!(w, vec![0.25, 1.0, 1.0, 0.25, 1.0, 1.0, 0.25, 1.0]);
        // restore 0.5 of 8 planes: [4 - 2, 4 + 2) kept.
        let w = ghosting_weights(8, 2, 1.0, Some(0.5)).unwrap();
        assert_eq!(w, vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
        // restore 0 keeps nothing: the centre plane 4 is scaled too.
        let w = ghosting_weights(8, 4, 0.5, Some(0.0)).unwrap();
        assert_eq!(w[4], 0.5);
        assert!(ghosting_weights(8, 0, 0.5, None).is_err());
        assert!(ghosting_weights(8, 2, 0.5, Some(1.5)).is_err());
    }

    #[test]
    fn zero_intensity_is_identity_on_every_axis() {
        let volume = Array::from_shape_fn((2, 5, 6, 7), |(c, i, j, k)| {
            ((c * 13 + i * 7 + j * 3 + k) % 9) as f32 - 2.0
        });
        for axis in 0..3 {
            let out = ghosting(volume.view(), 3, axis, 0.0, None).unwrap();
            for (a, b) in out.iter().zip(volume.iter()) {
                assert!((a - b).abs() < 1e-5, "axis {axis}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let volume = Array4::<f32>::zeros((1, 2, 2, 2));
        assert!(ghosting(volume.view(), 2, 3, 0.5, None).is_err());
        let empty = Array4::<f32>::zeros((1, 0, 2, 2));
        assert!(matches!(
            ghosting(empty.view(), 2, 0, 0.5, None),
            Err(Error::Empty(_))
        ));
    }
}
