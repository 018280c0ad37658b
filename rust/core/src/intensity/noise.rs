//! TorchIO's `Noise`: adds Gaussian noise `N(mean, std^2)` (or subtracts the
//! same noise, for the inverse) drawn from an explicit `u64` seed.
//!
//! The volume is cut into fixed chunks of [`CHUNK`] voxels (in C order); chunk
//! `c` draws from its own SplitMix64 stream seeded by `(seed, c)`, so the noise
//! is a function of the seed and the voxel index alone, identical whatever
//! the number of threads. Normal deviates come from the Box-Muller transform
//! evaluated in float64 with polynomial `log`, `sin` and `cos` (no library
//! calls, so the loop vectorises), rounded to float32 like PyTorch's `randn`.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::bias_field::Float32Promotion;
use crate::error::{ensure, Error, Result};
use crate::volume::check_not_empty;

/// Voxels per independent random stream.
pub const CHUNK: usize = 4096;

/// The SplitMix64 generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream for chunk `chunk` of the noise with seed `seed`.
    pub fn for_chunk(seed: u64, chunk: u64) -> Self {
        // Mix the pair so that neighbouring seeds and chunks give unrelated
        // streams (a plain sum would make stream (s, c + 1) a shift of (s + 1, c)).
        let mut mixer = Self { state: seed };
        let key = mixer.next_u64();
        let mut mixer = Self {
            state: key ^ chunk.wrapping_mul(0xD1B5_4A32_D192_ED03),
        };
        Self {
            state: mixer.next_u64(),
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// 2^52, for exact integer <-> float64 conversions with bit operations.
const TWO52: f64 = 4_503_599_627_370_496.0;

/// Exact float64 value of an integer below 2^52, without a (scalar) cast.
#[inline(always)]
fn small_to_f64(v: u64) -> f64 {
    f64::from_bits(v | 0x4330_0000_0000_0000) - TWO52
}

/// Natural logarithm of `u` in `(0, 1]` (positive normal), to about 1e-15.
#[inline(always)]
fn ln_unit(u: f64) -> f64 {
    let bits = u.to_bits();
    // Exponent and mantissa with integer bit operations only (vectorisable).
    let mut exponent = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - (TWO52 + 1023.0);
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let high = m > std::f64::consts::SQRT_2;
    m = if high { m * 0.5 } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    exponent * std::f64::consts::LN_2 + 2.0 * s * series
}

/// `(cos, sin)` of `2 pi * t / 2^24` for a 24-bit integer `t`: quadrant from the
/// top two bits, then Taylor series around the middle of the quadrant.
#[inline(always)]
fn cos_sin_turn(t: u64) -> (f64, f64) {
    let f = small_to_f64(t & 0x3F_FFFF) * (std::f64::consts::FRAC_PI_2 / (1u64 << 22) as f64)
        - std::f64::consts::FRAC_PI_4; // [-pi/4, pi/4)
    let f2 = f * f;
    let sin_f = f
        * (1.0
            + f2 * (-1.0 / 6.0
                + f2 * (1.0 / 120.0
                    + f2 * (-1.0 / 5040.0
                        + f2 * (1.0 / 362_880.0
                            + f2 * (-1.0 / 39_916_800.0 + f2 * (1.0 / 6_227_020_800.0)))))));
    let cos_f = 1.0
        + f2 * (-0.5
            + f2 * (1.0 / 24.0
                + f2 * (-1.0 / 720.0
                    + f2 * (1.0 / 40320.0
                        + f2 * (-1.0 / 3_628_800.0
                            + f2 * (1.0 / 479_001_600.0 + f2 * (-1.0 / 87_178_291_200.0)))))));
    // Angle of the quadrant's start plus pi/4 plus f.
    let half = std::f64::consts::FRAC_1_SQRT_2;
    let (c, s) = ((cos_f - sin_f) * half, (sin_f + cos_f) * half);
    // Quadrant q = top two bits: odd quadrants rotate by pi/2, the upper two by pi.
    let odd = (t >> 22) & 1 == 1;
    let sign = if (t >> 23) & 1 == 1 { -1.0 } else { 1.0 };
    let (c, s) = if odd { (-s, c) } else { (c, s) };
    (c * sign, s * sign)
}

/// Two standard normal deviates from 64 random bits (Box-Muller): a 40-bit
/// uniform in `(0, 1]` for the radius and a 24-bit one for the angle.
#[inline(always)]
fn normal_pair(bits: u64) -> (f32, f32) {
    let u = small_to_f64((bits >> 24) + 1) * (1.0 / (1u64 << 40) as f64);
    let radius = (-2.0 * ln_unit(u)).sqrt();
    let (c, s) = cos_sin_turn(bits & 0xFF_FFFF);
    ((radius * c) as f32, (radius * s) as f32)
}

/// Fills `out` with the noise values `N(0, 1) * std + mean` of the chunk
/// `chunk` (float32, like `torch.randn(...) * std + mean`). `bits` is scratch.
pub fn fill_noise_chunk(
    out: &mut [f32],
    bits: &mut Vec<u64>,
    seed: u64,
    chunk: u64,
    mean: f32,
    std: f32,
) {
    let mut rng = SplitMix64::for_chunk(seed, chunk);
    bits.clear();
    bits.extend((0..out.len().div_ceil(2)).map(|_| rng.next_u64()));
    transform_bits(out, bits, mean, std);
}

/// Turns one 64-bit word per pair of voxels into `N(mean, std^2)` values.
#[inline(always)]
fn transform_bits_body(out: &mut [f32], bits: &[u64], mean: f32, std: f32) {
    let (pairs, rest) = out.split_at_mut(out.len() - out.len() % 2);
    for (pair, &b) in pairs.chunks_exact_mut(2).zip(bits.iter()) {
        let (a, c) = normal_pair(b);
        pair[0] = a * std + mean;
        pair[1] = c * std + mean;
    }
    if let (Some(last), Some(&b)) = (rest.first_mut(), bits.last()) {
        *last = normal_pair(b).0 * std + mean;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn transform_bits_avx512(out: &mut [f32], bits: &[u64], mean: f32, std: f32) {
    transform_bits_body(out, bits, mean, std)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_bits_avx2(out: &mut [f32], bits: &[u64], mean: f32, std: f32) {
    transform_bits_body(out, bits, mean, std)
}

/// [`transform_bits_body`] compiled for the widest vector unit the CPU has
/// (the arithmetic is the same IEEE operations, so results do not depend on it).
fn transform_bits(out: &mut [f32], bits: &[u64], mean: f32, std: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports every feature the function is compiled for.
            return unsafe { transform_bits_avx512(out, bits, mean, std) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { transform_bits_avx2(out, bits, mean, std) };
        }
    }
    transform_bits_body(out, bits, mean, std)
}

/// Adds (or, with `invert`, subtracts) seeded Gaussian noise to a `(C, I, J, K)`
/// volume. The output type follows PyTorch's promotion of `tensor + float32`:
/// float64 for float64 volumes, float32 otherwise.
pub fn add_noise<T: Float32Promotion>(
    volume: ArrayView4<'_, T>,
    mean: f64,
    std: f64,
    seed: u64,
    invert: bool,
) -> Result<Array4<T::Out>> {
    check_not_empty(&volume, "volume")?;
    ensure(mean.is_finite(), || {
        format!("mean must be finite, got {mean}")
    })?;
    ensure(std.is_finite() && std >= 0.0, || {
        format!("std must be finite and non-negative, got {std}")
    })?;
    let input = volume.as_standard_layout();
    let Some(data) = input.as_slice() else {
        return Err(Error::Shape("input could not be made contiguous".into()));
    };
    // Not zero-filled first: every element is written below, and zeroing would
    // be one more pass over a volume-sized buffer.
    let mut output = Array4::<T::Out>::uninit(volume.raw_dim());
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    let (mean, std) = (mean as f32, std as f32);
    out.par_chunks_mut(CHUNK)
        .zip(data.par_chunks(CHUNK))
        .enumerate()
        .for_each_init(
            || (vec![0f32; CHUNK], Vec::with_capacity(CHUNK / 2 + 1)),
            |(noise, bits), (chunk, (out_chunk, in_chunk))| {
                let noise = &mut noise[..out_chunk.len()];
                fill_noise_chunk(noise, bits, seed, chunk as u64, mean, std);
                for ((o, &v), &n) in out_chunk.iter_mut().zip(in_chunk).zip(noise.iter()) {
                    o.write(v.add_f32(if invert { -n } else { n }));
                }
            },
        );
    // SAFETY: the output and input chunks have the same lengths (both arrays
    // are contiguous with the same shape), so the loop above wrote every element.
    Ok(unsafe { output.assume_init() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn polynomial_functions_are_accurate() {
        for t in 1..2000u64 {
            let u = t as f64 / 2000.0;
            assert!((ln_unit(u) - u.ln()).abs() < 1e-12);
        }
        for t in (0..(1u64 << 24)).step_by(4099) {
            let angle = 2.0 * std::f64::consts::PI * t as f64 / (1u64 << 24) as f64;
            let (c, s) = cos_sin_turn(t);
            assert!((c - angle.cos()).abs() < 1e-12 && (s - angle.sin()).abs() < 1e-12);
        }
    }

    #[test]
    fn noise_has_requested_moments_and_is_seeded() {
        let volume = Array4::<f32>::zeros((1, 40, 50, 60));
        let a = add_noise(volume.view(), 1.5, 2.0, 7, false).unwrap();
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 1.5).abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "std {}", var.sqrt());
        let skew = a
            .iter()
            .map(|&v| ((v as f64 - mean) / var.sqrt()).powi(3))
            .sum::<f64>()
            / n;
        let kurt = a
            .iter()
            .map(|&v| ((v as f64 - mean) / var.sqrt()).powi(4))
            .sum::<f64>()
            / n;
        assert!(
            skew.abs() < 0.03 && (kurt - 3.0).abs() < 0.05,
            "{skew} {kurt}"
        );
        assert_eq!(a, add_noise(volume.view(), 1.5, 2.0, 7, false).unwrap());
        assert_ne!(a, add_noise(volume.view(), 1.5, 2.0, 8, false).unwrap());
    }

    #[test]
    fn every_voxel_gets_its_chunk_noise() {
        // Two whole chunks and a partial one of odd length: the output is not
        // zero-filled first, so each voxel must be written by its own chunk.
        let volume = Array4::<f32>::zeros((1, 3, 7, 2 * CHUNK / 21 + 5));
        assert_eq!(volume.len() % CHUNK % 2, 1);
        let out = add_noise(volume.view(), 0.25, 1.5, 99, false).unwrap();
        let values = out.as_slice().unwrap();
        let mut bits = Vec::new();
        for (chunk, slice) in values.chunks(CHUNK).enumerate() {
            let mut expected = vec![0f32; slice.len()];
            fill_noise_chunk(&mut expected, &mut bits, 99, chunk as u64, 0.25, 1.5);
            assert_eq!(slice, &expected[..], "chunk {chunk}");
        }
    }

    #[test]
    fn inverse_subtracts_the_same_noise() {
        let volume = Array::from_shape_fn((2, 3, 4, 5), |(c, i, j, k)| (c + i * j + k) as f64);
        let noisy = add_noise(volume.view(), 0.3, 0.5, 11, false).unwrap();
        let back = add_noise(noisy.view(), 0.3, 0.5, 11, true).unwrap();
        for (a, b) in back.iter().zip(volume.iter()) {
            assert!((a - b).abs() < 1e-6);
        }
        assert!(add_noise(volume.view(), 0.0, -1.0, 1, false).is_err());
    }
}
