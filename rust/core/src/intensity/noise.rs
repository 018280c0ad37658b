//! TorchIO's `Noise`: adds Gaussian noise `N(mean, std^2)` (or subtracts the
//! same noise, for the inverse) drawn from an explicit `u64` seed.
//!
//! The volume is cut into fixed chunks of [`CHUNK`] voxels (in C order); chunk
//! `c` draws from its own generator seeded by `(seed, c)` through SplitMix64,
//! so the noise is a function of the seed and the voxel index alone, identical
//! whatever the number of threads. The generator is eight interleaved
//! xoshiro128++ streams (Blackman and Vigna), one per vector lane, and normal
//! deviates come from the Box-Muller transform in float32 (as cuRAND's
//! `curand_normal` computes them) with polynomial `log`, `sin` and `cos`: no
//! library calls and no 64-bit multiplies, so the whole loop vectorises.
//! Results are the same IEEE operations on every CPU.

use ndarray::{Array4, ArrayView4, ArrayViewMut4};
use rayon::prelude::*;

use super::bias_field::Float32Promotion;
use crate::error::{ensure, Error, Result};
use crate::regions::Regions;
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

/// Independent generator streams per chunk: one per 256-bit vector lane.
const LANES: usize = 8;

/// Steps computed together: independent chains of `log`, `sqrt` and
/// polynomials for the CPU to overlap (the values and their order are those
/// of one step at a time).
const INTERLEAVED: usize = 2;

/// Eight interleaved xoshiro128++ generators (32-bit outputs), state word `w`
/// of lane `l` at `state[w][l]` so that every step is lane-wise vector code.
#[derive(Debug, Clone)]
struct Xoshiro128x8 {
    state: [[u32; LANES]; 4],
}

impl Xoshiro128x8 {
    /// The generators of chunk `chunk` of the noise with seed `seed`.
    fn for_chunk(seed: u64, chunk: u64) -> Self {
        let mut seeder = SplitMix64::for_chunk(seed, chunk);
        let lanes: [[u32; 4]; LANES] = std::array::from_fn(|_| {
            let (a, b) = (seeder.next_u64(), seeder.next_u64());
            let words = [a as u32, (a >> 32) as u32, b as u32, (b >> 32) as u32];
            // An all-zero state would only ever produce zeros.
            if words == [0; 4] {
                [1, 0, 0, 0]
            } else {
                words
            }
        });
        let state = std::array::from_fn(|w| std::array::from_fn(|l| lanes[l][w]));
        Self { state }
    }

    /// The next 32 random bits of every lane.
    #[inline(always)]
    fn next(&mut self) -> [u32; LANES] {
        let [s0, s1, s2, s3] = &mut self.state;
        let mut out = [0u32; LANES];
        for l in 0..LANES {
            out[l] = s0[l].wrapping_add(s3[l]).rotate_left(7).wrapping_add(s0[l]);
            let t = s1[l] << 9;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(11);
        }
        out
    }
}

/// Natural logarithm of `u` in `(0, 1]` (a positive normal float), to a few
/// float32 ulps: `u = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`, then the
/// series of `2 atanh(s)`, `s = (m - 1) / (m + 1)`, `|s| <= 0.172`.
#[inline(always)]
fn ln_unit(u: f32) -> f32 {
    let bits = u.to_bits();
    // Exponent and mantissa with integer bit operations only (vectorisable).
    let mut exponent = ((bits >> 23) as i32 - 127) as f32;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    m = if high { m * 0.5 } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    exponent * std::f32::consts::LN_2 + 2.0 * s * series
}

/// `(cos, sin)` of `2 pi t / 2^24` for a 24-bit integer `t`: the quadrant from
/// the top two bits, then Taylor series around the middle of the quadrant.
#[inline(always)]
fn cos_sin_turn(t: u32) -> (f32, f32) {
    let f = (t & 0x3F_FFFF) as i32 as f32 * (std::f32::consts::FRAC_PI_2 / (1u32 << 22) as f32)
        - std::f32::consts::FRAC_PI_4; // [-pi/4, pi/4)
    let f2 = f * f;
    let sin_f = f
        * (1.0
            + f2 * (-1.0 / 6.0
                + f2 * (1.0 / 120.0 + f2 * (-1.0 / 5040.0 + f2 * (1.0 / 362_880.0)))));
    let cos_f = 1.0
        + f2 * (-0.5
            + f2 * (1.0 / 24.0
                + f2 * (-1.0 / 720.0 + f2 * (1.0 / 40320.0 + f2 * (-1.0 / 3_628_800.0)))));
    // Angle of the quadrant's start plus pi/4 plus f.
    let half = std::f32::consts::FRAC_1_SQRT_2;
    let (c, s) = ((cos_f - sin_f) * half, (sin_f + cos_f) * half);
    // Quadrant q = top two bits: odd quadrants rotate by pi/2, the upper two by pi.
    let odd = (t >> 22) & 1 == 1;
    let sign = if (t >> 23) & 1 == 1 { -1.0 } else { 1.0 };
    let (c, s) = if odd { (-s, c) } else { (c, s) };
    (c * sign, s * sign)
}

/// Two standard normal deviates (Box-Muller) from two 32-bit words: the
/// radius from a uniform in `(0, 1)` of 31 bits (deviates up to 6.6 sigma),
/// the angle from 24 bits.
#[inline(always)]
fn normal_pair(radius_bits: u32, angle_bits: u32) -> (f32, f32) {
    let u = ((radius_bits >> 1) as i32 as f32 + 0.5) * (1.0 / (1u64 << 31) as f32);
    let radius = (-2.0 * ln_unit(u)).sqrt();
    let (c, s) = cos_sin_turn(angle_bits >> 8);
    (radius * c, radius * s)
}

/// Fills `out` (at most [`CHUNK`] values) with the noise values
/// `N(0, 1) * std + mean` of chunk `chunk` (float32, like
/// `torch.randn(...) * std + mean`).
pub fn fill_noise_chunk(out: &mut [f32], seed: u64, chunk: u64, mean: f32, std: f32) {
    let mut rng = Xoshiro128x8::for_chunk(seed, chunk);
    transform(out, &mut rng, mean, std);
}

/// Writes one step of [`LANES`] pairs into `values` (`2 LANES` of them): the
/// cosine deviates, then the sine deviates. A function rather than a closure,
/// so that it is compiled with its caller's target features.
#[inline(always)]
fn draw_step(rng: &mut Xoshiro128x8, values: &mut [f32], mean: f32, std: f32) {
    let (radius, angle) = (rng.next(), rng.next());
    let (first, second) = values.split_at_mut(LANES);
    for l in 0..LANES {
        let (a, b) = normal_pair(radius[l], angle[l]);
        first[l] = a * std + mean;
        second[l] = b * std + mean;
    }
}

/// Draws `out.len()` values, [`LANES`] pairs at a time (the cosine deviates
/// of a step, then its sine deviates).
#[inline(always)]
fn transform_body(out: &mut [f32], rng: &mut Xoshiro128x8, mean: f32, std: f32) {
    // Groups of steps, then whole steps, straight into `out`; the last
    // partial step through a buffer.
    let mut groups = out.chunks_exact_mut(2 * LANES * INTERLEAVED);
    for values in &mut groups {
        // In the order of one step at a time: radius then angle words.
        let mut words = [[0u32; LANES]; 2 * INTERLEAVED];
        for w in words.iter_mut() {
            *w = rng.next();
        }
        let mut deviates = [0f32; 2 * LANES * INTERLEAVED];
        for l in 0..LANES {
            for step in 0..INTERLEAVED {
                let (a, b) = normal_pair(words[2 * step][l], words[2 * step + 1][l]);
                deviates[2 * LANES * step + l] = a;
                deviates[2 * LANES * step + LANES + l] = b;
            }
        }
        for (v, d) in values.iter_mut().zip(deviates) {
            *v = d * std + mean;
        }
    }
    let mut steps = groups.into_remainder().chunks_exact_mut(2 * LANES);
    for values in &mut steps {
        draw_step(rng, values, mean, std);
    }
    let rest = steps.into_remainder();
    if !rest.is_empty() {
        let mut step = [0f32; 2 * LANES];
        draw_step(rng, &mut step, mean, std);
        rest.copy_from_slice(&step[..rest.len()]);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_avx2(out: &mut [f32], rng: &mut Xoshiro128x8, mean: f32, std: f32) {
    transform_body(out, rng, mean, std)
}

/// [`transform_body`] compiled with AVX2 where the CPU has it (the arithmetic
/// is the same IEEE operations, without fused multiply-adds, so results do
/// not depend on it).
fn transform(out: &mut [f32], rng: &mut Xoshiro128x8, mean: f32, std: f32) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports every feature the function is compiled for.
        return unsafe { transform_avx2(out, rng, mean, std) };
    }
    transform_body(out, rng, mean, std)
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
    check_moments(mean, std)?;
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
            || vec![0f32; CHUNK],
            |noise, (chunk, (out_chunk, in_chunk))| {
                let noise = &mut noise[..out_chunk.len()];
                fill_noise_chunk(noise, seed, chunk as u64, mean, std);
                for ((o, &v), &n) in out_chunk.iter_mut().zip(in_chunk).zip(noise.iter()) {
                    o.write(v.add_f32(if invert { -n } else { n }));
                }
            },
        );
    // SAFETY: the output and input chunks have the same lengths (both arrays
    // are contiguous with the same shape), so the loop above wrote every element.
    Ok(unsafe { output.assume_init() })
}

fn check_moments(mean: f64, std: f64) -> Result<()> {
    ensure(mean.is_finite(), || {
        format!("mean must be finite, got {mean}")
    })?;
    ensure(std.is_finite() && std >= 0.0, || {
        format!("std must be finite and non-negative, got {std}")
    })
}

/// [`add_noise`] in place, on the voxels that `regions` covers only: each of
/// them gets the bits [`add_noise`] gives it, the others are left as they
/// are. For float volumes, whose type the noise keeps.
///
/// Only the random streams (chunks) that reach a covered voxel are drawn, and
/// each only up to its last voxel in the plane at hand.
///
/// # Errors
/// Those of [`add_noise`], `regions` of another spatial shape, or a volume
/// that is not contiguous.
pub fn add_noise_in_regions<T: Float32Promotion<Out = T>>(
    mut volume: ArrayViewMut4<'_, T>,
    mean: f64,
    std: f64,
    seed: u64,
    invert: bool,
    regions: &Regions,
) -> Result<()> {
    check_not_empty(&volume.view(), "volume")?;
    check_moments(mean, std)?;
    let (_, ni, nj, nk) = volume.dim();
    ensure(regions.shape() == [ni, nj, nk], || {
        format!(
            "regions of a {:?} grid given for a volume of spatial shape {:?}",
            regions.shape(),
            [ni, nj, nk]
        )
    })?;
    let Some(data) = volume.as_slice_mut() else {
        return Err(Error::Shape("volume must be C-contiguous".into()));
    };
    let (mean, std) = (mean as f32, std as f32);
    let plane_len = nj * nk;
    data.par_chunks_mut(plane_len).enumerate().for_each_init(
        || vec![0f32; CHUNK],
        |noise, (plane, values)| {
            let i = plane % ni;
            if regions.plane_is_empty(i) {
                return;
            }
            let base = plane * plane_len;
            // The chunk whose values `noise` holds, and how many.
            let mut drawn: Option<(usize, usize)> = None;
            for j in 0..nj {
                for &[k0, k1] in regions.row(i, j) {
                    let (mut at, end) = (base + j * nk + k0, base + j * nk + k1);
                    while at < end {
                        let chunk = at / CHUNK;
                        let chunk_start = chunk * CHUNK;
                        let stop = end.min(chunk_start + CHUNK);
                        if !matches!(drawn, Some((c, n)) if c == chunk && chunk_start + n >= stop) {
                            // Up to the plane's end: later runs of this plane may need more.
                            let n = (chunk_start + CHUNK).min(base + plane_len) - chunk_start;
                            fill_noise_chunk(&mut noise[..n], seed, chunk as u64, mean, std);
                            drawn = Some((chunk, n));
                        }
                        let offsets = at - chunk_start..stop - chunk_start;
                        for (v, &n) in values[at - base..stop - base]
                            .iter_mut()
                            .zip(&noise[offsets])
                        {
                            *v = v.add_f32(if invert { -n } else { n });
                        }
                        at = stop;
                    }
                }
            }
        },
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn polynomial_functions_are_accurate() {
        for t in 1..20_000u32 {
            let u = t as f32 / 20_000.0;
            let exact = (u as f64).ln();
            let error = (ln_unit(u) as f64 - exact).abs();
            assert!(error <= 2e-7 * exact.abs().max(1.0), "ln {u}: {error}");
        }
        // Down to the smallest uniform the radius draws.
        let tiny = 0.5f32 / (1u64 << 31) as f32;
        assert!((ln_unit(tiny) as f64 - (tiny as f64).ln()).abs() < 1e-5);
        for t in (0..(1u32 << 24)).step_by(4099) {
            let angle = 2.0 * std::f64::consts::PI * t as f64 / (1u64 << 24) as f64;
            let (c, s) = cos_sin_turn(t);
            assert!((c as f64 - angle.cos()).abs() < 3e-7, "cos {t}");
            assert!((s as f64 - angle.sin()).abs() < 3e-7, "sin {t}");
        }
    }

    #[test]
    fn deviates_follow_the_normal_distribution() {
        // Probability mass within 0.5, 1, 2 and 3 sigma, and beyond 5.
        let volume = Array4::<f32>::zeros((1, 100, 100, 100));
        let noise = add_noise(volume.view(), 0.0, 1.0, 3, false).unwrap();
        let n = noise.len() as f64;
        let within = |z: f32| noise.iter().filter(|v| v.abs() < z).count() as f64 / n;
        let expected = [
            (0.5, 0.382_924_9),
            (1.0, 0.682_689_5),
            (2.0, 0.954_499_7),
            (3.0, 0.997_300_2),
        ];
        for (z, p) in expected {
            let sigma = (p * (1.0 - p) / n).sqrt();
            let measured = within(z);
            assert!(
                (measured - p).abs() < 5.0 * sigma,
                "P(|z| < {z}) = {measured}, not {p}"
            );
        }
        // About 7 of a million values lie beyond 4.5 sigma: the tail exists.
        let beyond = noise.iter().filter(|v| v.abs() > 4.5).count();
        assert!(
            (1..=30).contains(&beyond),
            "{beyond} values beyond 4.5 sigma"
        );
        // Neighbouring voxels (lanes, cosine and sine deviates) are uncorrelated.
        let values = noise.as_slice().unwrap();
        for lag in [1, 8, 16] {
            let r = values
                .iter()
                .zip(&values[lag..])
                .map(|(&a, &b)| (a * b) as f64)
                .sum::<f64>()
                / n;
            assert!(r.abs() < 5.0 / n.sqrt(), "lag {lag}: correlation {r}");
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
    fn interleaved_steps_draw_the_values_of_single_steps() {
        for len in [1, 15, 16, 17, 31, 32, 33, 48, 100, CHUNK - 1, CHUNK] {
            let mut ours = vec![0f32; len];
            fill_noise_chunk(&mut ours, 21, 4, 0.5, 3.0);
            let mut rng = Xoshiro128x8::for_chunk(21, 4);
            let mut single = vec![0f32; len.div_ceil(2 * LANES) * 2 * LANES];
            for step in single.chunks_exact_mut(2 * LANES) {
                draw_step(&mut rng, step, 0.5, 3.0);
            }
            assert_eq!(ours, single[..len], "{len}");
        }
    }

    #[test]
    fn every_voxel_gets_its_chunk_noise() {
        // Two whole chunks and a partial one of odd length: the output is not
        // zero-filled first, so each voxel must be written by its own chunk.
        let volume = Array4::<f32>::zeros((1, 3, 7, 2 * CHUNK / 21 + 5));
        assert_eq!(volume.len() % CHUNK % 2, 1);
        let out = add_noise(volume.view(), 0.25, 1.5, 99, false).unwrap();
        let values = out.as_slice().unwrap();
        for (chunk, slice) in values.chunks(CHUNK).enumerate() {
            let mut expected = vec![0f32; slice.len()];
            fill_noise_chunk(&mut expected, 99, chunk as u64, 0.25, 1.5);
            assert_eq!(slice, &expected[..], "chunk {chunk}");
        }
    }

    #[test]
    fn noise_in_regions_equals_the_whole_noise_there() {
        // Runs that cross chunk boundaries and planes; several channels.
        let shape = (2, 9, 31, 47);
        let volume = Array::from_shape_fn(shape, |(c, i, j, k)| (c + i * j + k) as f32 * 0.5);
        let boxes = [
            [0, 0, 0, 4, 10, 20],
            [2, 5, 10, 9, 31, 47],
            [3, 20, 0, 6, 25, 47],
        ];
        let regions = Regions::from_boxes([9, 31, 47], &boxes).unwrap();
        for invert in [false, true] {
            let whole = add_noise(volume.view(), 0.5, 2.0, 5, invert).unwrap();
            let mut partial = volume.clone();
            add_noise_in_regions(partial.view_mut(), 0.5, 2.0, 5, invert, &regions).unwrap();
            for ((c, i, j, k), &value) in partial.indexed_iter() {
                let expected = if regions.contains(i, j, k) {
                    whole[(c, i, j, k)]
                } else {
                    volume[(c, i, j, k)]
                };
                assert_eq!(value.to_bits(), expected.to_bits(), "{c} {i} {j} {k}");
            }
        }
        let doubles = volume.mapv(f64::from);
        let whole = add_noise(doubles.view(), 0.0, 1.0, 9, false).unwrap();
        let mut partial = doubles.clone();
        add_noise_in_regions(partial.view_mut(), 0.0, 1.0, 9, false, &regions).unwrap();
        assert_eq!(partial[(1, 3, 22, 40)], whole[(1, 3, 22, 40)]);
        assert_eq!(partial[(1, 0, 30, 0)], doubles[(1, 0, 30, 0)]);
        let other = Regions::from_boxes([9, 31, 46], &[]).unwrap();
        assert!(add_noise_in_regions(partial.view_mut(), 0.0, 1.0, 9, false, &other).is_err());
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
