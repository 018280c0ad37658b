//! TorchIO's `Motion` k-space assembly: the centred spectrum is cut into
//! contiguous segments along the last axis (K), each segment is taken from the
//! spectrum of a different image (the original or a rigidly moved copy), and
//! the real part of the inverse FFT is returned as float32.
//!
//! Choosing segments along K is a multiplication of each image's 3D spectrum
//! by an indicator that depends on the K frequency only, so (as for ghosting)
//! the FFTs along I and J cancel: each output row is
//! `Re(ifft(sum_v w_v * fft(row_v)))`; with real symmetric weights two rows
//! share each complex FFT (real and imaginary parts). The rigid resampling of the moved images is done
//! beforehand by the spatial warp kernel.

use ndarray::{s, Array4, ArrayView4};
use num_complex::Complex;
use rayon::prelude::*;
use rustfft::num_traits::Zero;

use super::fft::{load_pair, symmetric_weights, PairPlans, Real, SpectralVoxel};
use crate::affine::Matrix4;
use crate::error::{Error, Result};
use crate::spatial::interpolation::Interpolation;
use crate::spatial::warp::{warp, Grid, Step};
use crate::volume::{check_not_empty, check_same_shape};

/// Assembles TorchIO's motion-corrupted image.
///
/// * `original`: the `(C, I, J, K)` input (source index 0).
/// * `moved`: rigidly resampled copies, float32, same shape (source indices
///   `1..=moved.len()`).
/// * `segment_ends`: end (exclusive, in shifted K indices) of each segment;
///   segment `s` covers `[segment_ends[s - 1], segment_ends[s])` with an
///   implicit start 0; non-decreasing, the last one equal to K.
/// * `segment_sources`: the source image of each segment.
pub fn motion<T: SpectralVoxel>(
    original: ArrayView4<'_, T>,
    moved: &[ArrayView4<'_, f32>],
    segment_ends: &[usize],
    segment_sources: &[usize],
) -> Result<Array4<f32>> {
    check_not_empty(&original, "volume")?;
    for m in moved {
        check_same_shape(original.shape(), m.shape(), "moved image and volume")?;
    }
    let (c, ni, nj, nk) = original.dim();
    if segment_ends.is_empty() || segment_ends.len() != segment_sources.len() {
        return Err(Error::InvalidArgument(format!(
            "need one source per segment, got {} segment ends and {} sources",
            segment_ends.len(),
            segment_sources.len()
        )));
    }
    if segment_ends.windows(2).any(|w| w[0] > w[1]) || segment_ends.last() != Some(&nk) {
        return Err(Error::InvalidArgument(format!(
            "segment ends must be non-decreasing and end at the last axis length {nk}, got {segment_ends:?}"
        )));
    }
    if let Some(&bad) = segment_sources.iter().find(|&&v| v > moved.len()) {
        return Err(Error::InvalidArgument(format!(
            "segment source {bad} does not exist ({} images)",
            moved.len() + 1
        )));
    }
    // Weight of every source over the shifted K indices.
    let num_sources = moved.len() + 1;
    let mut shifted_weights = vec![vec![0.0f64; nk]; num_sources];
    let mut start = 0;
    for (&end, &source) in segment_ends.iter().zip(segment_sources) {
        shifted_weights[source][start..end]
            .iter_mut()
            .for_each(|w| *w = 1.0);
        start = end;
    }
    // (source, symmetric weights) of the sources that contribute.
    let sources: Vec<(usize, Vec<T::F>)> = shifted_weights
        .iter()
        .enumerate()
        .filter(|(_, w)| w.iter().any(|&v| v != 0.0))
        .map(|(v, w)| {
            let weights = symmetric_weights(w)
                .into_iter()
                .map(T::F::real_from_f64)
                .collect();
            (v, weights)
        })
        .collect();
    let plans = PairPlans::<T::F>::new(nk);
    let mut output = Array4::<f32>::zeros((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    // One task per (channel, i) plane; rows j and j + 1 share complex FFTs
    // (real and imaginary parts), which the real symmetric weights keep apart.
    out.par_chunks_mut(nj * nk).enumerate().for_each_init(
        || plans.workspace(),
        |work, (plane_index, plane_out)| {
            let (channel, i) = (plane_index / ni, plane_index % ni);
            for j in (0..nj).step_by(2) {
                let paired = j + 1 < nj;
                work.accumulator
                    .iter_mut()
                    .for_each(|a| *a = Complex::zero());
                for (source, weights) in &sources {
                    if *source == 0 {
                        let plane = original.slice(s![channel, i, .., ..]);
                        load_pair(
                            &mut work.buffer,
                            plane.row(j),
                            paired.then(|| plane.row(j + 1)),
                        );
                    } else {
                        let plane = moved[source - 1].slice(s![channel, i, .., ..]);
                        let first = plane.row(j);
                        for (value, &v) in work.buffer.iter_mut().zip(first.iter()) {
                            *value = Complex::new(T::F::real_from_f64(v as f64), T::F::zero());
                        }
                        if paired {
                            for (value, &v) in work.buffer.iter_mut().zip(plane.row(j + 1).iter()) {
                                value.im = T::F::real_from_f64(v as f64);
                            }
                        }
                    }
                    plans.forward(&mut work.buffer, &mut work.scratch);
                    work.accumulator
                        .iter_mut()
                        .zip(&work.buffer)
                        .zip(weights)
                        .for_each(|((a, &x), &w)| *a = *a + x * w);
                }
                plans.inverse_normalized(&mut work.accumulator, &mut work.scratch);
                for (o, v) in plane_out[j * nk..(j + 1) * nk]
                    .iter_mut()
                    .zip(&work.accumulator)
                {
                    *o = v.re.real_to_f32();
                }
                if paired {
                    let row = &mut plane_out[(j + 1) * nk..(j + 2) * nk];
                    for (o, v) in row.iter_mut().zip(&work.accumulator) {
                        *o = v.im.real_to_f32();
                    }
                }
            }
        },
    );
    Ok(output)
}

/// TorchIO's `Motion` on a `(C, I, J, K)` volume with voxel -> world
/// (RAS) `affine`: each of `transforms` (world -> world 4x4 matrices mapping
/// output points to input points, as given to a resampler) produces a
/// float32 copy of the volume resampled on its own grid with
/// `interpolation`, outside points taking the channel's minimum; then the
/// k-space segments are assembled by [`motion`] (source 0 is the volume,
/// source `m + 1` the copy moved by `transforms[m]`).
pub fn motion_rigid<T: SpectralVoxel>(
    volume: ArrayView4<'_, T>,
    affine: &Matrix4,
    transforms: &[Matrix4],
    interpolation: Interpolation,
    segment_ends: &[usize],
    segment_sources: &[usize],
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    let (_, ni, nj, nk) = volume.dim();
    let minima: Vec<f64> = volume
        .outer_iter()
        .map(|channel| {
            channel
                .iter()
                .map(|v| v.to_f64())
                .filter(|v| !v.is_nan())
                .fold(f64::INFINITY, f64::min)
        })
        .map(|m| if m.is_finite() { m } else { 0.0 })
        .collect();
    let as_f32 = T::as_f32_volume(volume.view());
    let grid = Grid {
        shape: [ni, nj, nk],
        affine: *affine,
    };
    // Copies no segment uses are never read: skip their resampling.
    let moved: Vec<Option<Array4<f32>>> = transforms
        .iter()
        .enumerate()
        .map(|(index, m)| {
            if segment_sources.contains(&(index + 1)) {
                warp(
                    as_f32.view(),
                    affine,
                    &grid,
                    &[Step::Affine(*m)],
                    interpolation,
                    &minima,
                )
                .map(Some)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_>>()?;
    let views: Vec<ArrayView4<'_, f32>> = moved
        .iter()
        .map(|m| m.as_ref().map_or_else(|| as_f32.view(), |m| m.view()))
        .collect();
    motion(volume, &views, segment_ends, segment_sources)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn one_segment_from_the_original_is_identity() {
        let volume = Array::from_shape_fn((1, 3, 4, 5), |(_, i, j, k)| (i * 20 + j * 5 + k) as f64);
        let out = motion(volume.view(), &[], &[5], &[0]).unwrap();
        for (a, b) in out.iter().zip(volume.iter()) {
            assert!((*a as f64 - b).abs() < 1e-4);
        }
    }

    #[test]
    fn identical_moved_copies_give_the_original() {
        let volume = Array::from_shape_fn((2, 3, 4, 6), |(c, i, j, k)| {
            ((c + i * 7 + j * 3 + k * 5) % 11) as f32
        });
        let copy = volume.clone();
        let out = motion(
            volume.view(),
            &[copy.view(), copy.view()],
            &[2, 4, 6],
            &[1, 0, 2],
        )
        .unwrap();
        for (a, b) in out.iter().zip(volume.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn malformed_segments_are_errors() {
        let volume = Array4::<f32>::zeros((1, 2, 2, 4));
        assert!(motion(volume.view(), &[], &[3], &[0]).is_err());
        assert!(motion(volume.view(), &[], &[3, 2, 4], &[0, 0, 0]).is_err());
        assert!(motion(volume.view(), &[], &[4], &[1]).is_err());
        let other = Array4::<f32>::zeros((1, 2, 2, 3));
        assert!(motion(volume.view(), &[other.view()], &[2, 4], &[1, 0]).is_err());
    }
}
