//! TorchIO's `Spike`: for each spike position, `intensity * max|k|` is added
//! to (or, inverted, subtracted from) the centred spectrum, where `max|k|` is
//! the maximum magnitude of the spectrum *as modified by the previous spikes*;
//! the output is the real part of the inverse FFT, as float32.
//!
//! The inverse FFT of a spectrum plus a few real delta spikes is the input
//! plus a sum of complex exponentials, so the output is computed analytically:
//! `y = x + sum_s (a_s / N) cos(2 pi f_s . t / n)`. No FFT is needed except
//! for `max|k|`: for a non-negative image it is the DC term `sum(x)` (the
//! triangle inequality bounds every other magnitude by it); otherwise a
//! real-to-complex 3D FFT finds it.

use ndarray::{s, Array4, ArrayView3, ArrayView4, Axis};
use num_complex::Complex;
use rayon::prelude::*;

use super::fft::{shifted_to_frequency, top_spectrum_magnitudes, SpectralVoxel};
use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// `exp(sign * 2 pi i * f * t / n)` for `t` in `0..n`, with the phase reduced
/// modulo `n` in integers first, so large products lose no precision.
fn phasors(frequency: usize, n: usize, sign: f64) -> Vec<Complex<f64>> {
    (0..n)
        .map(|t| {
            let reduced = ((frequency as u128 * t as u128) % n as u128) as f64;
            let angle = sign * 2.0 * std::f64::consts::PI * reduced / n as f64;
            Complex::new(angle.cos(), angle.sin())
        })
        .collect()
}

/// One coefficient of the unshifted 3D DFT of `channel`, in float64, by a
/// direct sum (independent of the thread count: one partial sum per plane,
/// added in order).
pub fn dft_coefficient<T: Voxel>(
    channel: ArrayView3<'_, T>,
    frequency: [usize; 3],
) -> Complex<f64> {
    let (ni, nj, nk) = channel.dim();
    let e_i = phasors(frequency[0], ni, -1.0);
    let e_j = phasors(frequency[1], nj, -1.0);
    let e_k = phasors(frequency[2], nk, -1.0);
    let planes: Vec<Complex<f64>> = (0..ni)
        .into_par_iter()
        .map(|i| {
            let mut plane_sum = Complex::new(0.0, 0.0);
            for (j, e_jj) in e_j.iter().enumerate() {
                let row = channel.slice(s![i, j, ..]);
                let mut row_sum = Complex::new(0.0, 0.0);
                for (&v, e) in row.iter().zip(&e_k) {
                    row_sum += e * v.to_f64();
                }
                plane_sum += row_sum * e_jj;
            }
            plane_sum * e_i[i]
        })
        .collect();
    planes
        .into_iter()
        .fold(Complex::new(0.0, 0.0), |acc, p| acc + p)
}

/// Sum of a channel in float64 (fixed per-plane partial sums, each in eight
/// interleaved lanes so the additions pipeline) and whether every voxel is
/// non-negative (false if any is NaN).
fn sum_and_non_negative<T: Voxel>(channel: ArrayView3<'_, T>) -> (f64, bool) {
    let planes: Vec<(f64, bool)> = channel
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|plane| {
            let mut sums = [0.0f64; 8];
            let mut non_negative = true;
            let mut add = |sum: &mut f64, v: T| {
                let v = v.to_f64();
                *sum += v;
                non_negative &= v >= 0.0;
            };
            match plane.as_slice() {
                Some(values) => {
                    let mut chunks = values.chunks_exact(8);
                    for chunk in &mut chunks {
                        for (sum, &v) in sums.iter_mut().zip(chunk) {
                            add(sum, v);
                        }
                    }
                    for &v in chunks.remainder() {
                        add(&mut sums[0], v);
                    }
                }
                None => plane.iter().for_each(|&v| add(&mut sums[0], v)),
            }
            (sums.iter().sum(), non_negative)
        })
        .collect();
    planes
        .iter()
        .fold((0.0, true), |(s, n), &(ps, pn)| (s + ps, n && pn))
}

/// The spike amplitudes TorchIO adds, in order: `intensity * max|k|` with
/// `max|k|` taken over the spectrum as modified by the previous spikes;
/// negated when `invert` is set. `frequencies` are unshifted.
pub fn spike_amplitudes<T: SpectralVoxel>(
    channel: ArrayView3<'_, T>,
    frequencies: &[[usize; 3]],
    intensity: f64,
    invert: bool,
) -> Result<Vec<f64>> {
    if frequencies.is_empty() {
        return Ok(vec![]);
    }
    let sign = if invert { -1.0 } else { 1.0 };
    let (sum, non_negative) = sum_and_non_negative(channel);
    let dc = [0usize; 3];
    let touches_dc = frequencies.contains(&dc);
    // Largest magnitudes with positions, enough to find the maximum over the
    // frequencies no spike has touched.
    let top = if non_negative && !(touches_dc && frequencies.len() > 1) {
        vec![(sum.abs(), dc)]
    } else {
        top_spectrum_magnitudes(channel, frequencies.len() + 1)?
    };
    let max_untouched = |touched: &[[usize; 3]]| -> f64 {
        top.iter()
            .find(|(_, p)| !touched.contains(p))
            .map_or(0.0, |&(m, _)| m)
    };
    if frequencies.len() == 1 {
        let max = top.first().map_or(0.0, |&(m, _)| m);
        return Ok(vec![sign * intensity * max]);
    }
    let mut touched: Vec<[usize; 3]> = vec![];
    let mut values: Vec<Complex<f64>> = vec![];
    let mut amplitudes = Vec::with_capacity(frequencies.len());
    for &f in frequencies {
        let mut max = max_untouched(&touched);
        for v in &values {
            let magnitude = v.norm();
            if magnitude > max || magnitude.is_nan() {
                max = magnitude;
            }
        }
        let amplitude = sign * intensity * max;
        amplitudes.push(amplitude);
        match touched.iter().position(|p| *p == f) {
            Some(index) => values[index].re += amplitude,
            None => {
                touched.push(f);
                values.push(dft_coefficient(channel, f) + amplitude);
            }
        }
    }
    Ok(amplitudes)
}

/// Adds spikes to every channel of a `(C, I, J, K)` volume; returns float32.
///
/// `positions` are indices into the *shifted* spectrum (TorchIO's
/// `floor(position * shape)` for positions in `[0, 1)`), one `[i, j, k]` per
/// spike, applied in order; `invert` subtracts instead of adding.
pub fn spike<T: SpectralVoxel>(
    volume: ArrayView4<'_, T>,
    positions: &[[usize; 3]],
    intensity: f64,
    invert: bool,
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    ensure(intensity.is_finite(), || {
        format!("intensity must be finite, got {intensity}")
    })?;
    let (c, ni, nj, nk) = volume.dim();
    let shape = [ni, nj, nk];
    for p in positions {
        if p.iter().zip(&shape).any(|(&index, &n)| index >= n) {
            return Err(Error::InvalidArgument(format!(
                "spike position {p:?} is outside the spectrum of shape {shape:?}"
            )));
        }
    }
    let frequencies: Vec<[usize; 3]> = positions
        .iter()
        .map(|p| {
            [
                shifted_to_frequency(p[0], ni),
                shifted_to_frequency(p[1], nj),
                shifted_to_frequency(p[2], nk),
            ]
        })
        .collect();
    let count = (ni * nj * nk) as f64;
    let mut output = Array4::<f32>::uninit((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    // Real and imaginary parts of each spike's exponential along K.
    let e_k: Vec<(Vec<f64>, Vec<f64>)> = frequencies
        .iter()
        .map(|f| {
            phasors(f[2], nk, 1.0)
                .into_iter()
                .map(|e| (e.re, e.im))
                .unzip()
        })
        .collect();
    for (channel, out_channel) in volume.axis_iter(Axis(0)).zip(out.chunks_mut(ni * nj * nk)) {
        let amplitudes: Vec<f64> = spike_amplitudes(channel, &frequencies, intensity, invert)?
            .into_iter()
            .map(|a| a / count)
            .collect();
        out_channel
            .par_chunks_mut(nj * nk)
            .enumerate()
            .for_each_init(
                || vec![0.0f64; nk],
                |row_sum, (i, plane_out)| {
                    for (j, row_out) in plane_out.chunks_mut(nk).enumerate() {
                        let row = channel.slice(s![i, j, ..]);
                        match row.as_slice() {
                            Some(values) => row_sum
                                .iter_mut()
                                .zip(values)
                                .for_each(|(s, &v)| *s = v.to_f64()),
                            None => row_sum
                                .iter_mut()
                                .zip(row.iter())
                                .for_each(|(s, &v)| *s = v.to_f64()),
                        }
                        // Each spike's exponential starts the row at a phase set
                        // by (i, j), then turns along K; spikes are added in order.
                        for ((f, &a), (e_re, e_im)) in frequencies.iter().zip(&amplitudes).zip(&e_k)
                        {
                            let ri = ((f[0] as u128 * i as u128) % ni as u128) as f64 / ni as f64;
                            let rj = ((f[1] as u128 * j as u128) % nj as u128) as f64 / nj as f64;
                            let angle = 2.0 * std::f64::consts::PI * (ri + rj);
                            let (start_re, start_im) = (angle.cos() * a, angle.sin() * a);
                            for ((s, &er), &ei) in row_sum.iter_mut().zip(e_re).zip(e_im) {
                                *s += start_re * er - start_im * ei;
                            }
                        }
                        for (o, &s) in row_out.iter_mut().zip(row_sum.iter()) {
                            o.write(s as f32);
                        }
                    }
                },
            );
    }
    // SAFETY: the channels' planes partition the output and every row of
    // every plane was written above.
    Ok(unsafe { output.assume_init() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn dft_coefficient_of_constant_is_sum_at_dc_only() {
        let x = Array::from_elem((3, 4, 5), 2.0f32);
        let dc = dft_coefficient(x.view(), [0, 0, 0]);
        assert!((dc.re - 120.0).abs() < 1e-9 && dc.im.abs() < 1e-9);
        let other = dft_coefficient(x.view(), [1, 2, 3]);
        assert!(other.norm() < 1e-9);
    }

    #[test]
    fn single_spike_on_constant_image_adds_one_cosine() {
        // Constant image: max|k| = sum = N * c; the spike adds
        // intensity * c * cos(2 pi f.t / n).
        let volume = Array::from_elem((1, 4, 4, 6), 1.5f32);
        let out = spike(volume.view(), &[[2, 3, 4]], 0.5, false).unwrap();
        // shifted (2, 3, 4) -> frequencies (0, 1, 1)
        for ((_, i, j, k), &v) in out.indexed_iter() {
            let _ = i;
            let angle = 2.0 * std::f64::consts::PI * (j as f64 / 4.0 + k as f64 / 6.0);
            let expected = 1.5 + 0.5 * 1.5 * angle.cos();
            assert!((v as f64 - expected).abs() < 1e-5, "{v} vs {expected}");
        }
    }

    #[test]
    fn strided_input_and_thread_count_do_not_change_the_result() {
        let volume = Array::from_shape_fn((2, 5, 6, 7), |(c, i, j, k)| {
            ((c * 5 + i * 7 + j * 3 + k * 11) % 13) as f32 - 4.0
        });
        let positions = [[1, 2, 3], [4, 0, 6], [1, 2, 3]];
        let run = |threads: usize, view: ArrayView4<'_, f32>| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| spike(view, &positions, 0.7, false).unwrap())
        };
        let reference = run(1, volume.view());
        assert_eq!(reference, run(3, volume.view()));
        // The same values through a non-contiguous view (reversed K).
        let mut reversed = Array4::<f32>::zeros((2, 5, 6, 7));
        reversed.assign(&volume.slice(s![.., .., .., ..;-1]));
        let strided = run(2, reversed.slice(s![.., .., .., ..;-1]));
        for (a, b) in strided.iter().zip(reference.iter()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn positions_outside_the_spectrum_are_errors() {
        let volume = Array4::<f32>::zeros((1, 2, 2, 2));
        assert!(spike(volume.view(), &[[2, 0, 0]], 1.0, false).is_err());
        assert!(spike(volume.view(), &[[0, 0, 0]], f64::NAN, false).is_err());
    }
}
