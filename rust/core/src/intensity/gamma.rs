//! TorchIO's `Gamma`: each channel is cast to float32 and raised to its own
//! power `gamma`; a channel with negative values gets the sign-preserving
//! `sign(x) |x|^gamma`. The inverse is TorchIO's approximation
//! `x * power(x, 1 - gamma)`.

use ndarray::{Array4, ArrayView4, Axis};
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// `torch.sign`: -1, 0 or 1 (NaN stays NaN).
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

/// TorchIO's `power`: `x^gamma`, or `sign(x) |x|^gamma` if the channel has
/// negative values (reference implementation with `powf`).
#[inline(always)]
fn power(x: f32, gamma: f32, has_negative: bool) -> f32 {
    if has_negative {
        sign(x) * x.abs().powf(gamma)
    } else {
        x.powf(gamma)
    }
}

/// `x^g` for positive normal finite `x`, as `exp2(g log2 x)` in float64 with
/// polynomial `log` and `exp2` (no library calls, so loops vectorise). The
/// float64 intermediate keeps the float32 result within an ulp of `powf`.
/// Callers recompute inputs outside its domain with [`power`].
#[inline(always)]
fn pow_positive(x: f32, g: f64) -> f32 {
    const SQRT2: f64 = std::f64::consts::SQRT_2;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: round to nearest
    const TWO52: f64 = 4_503_599_627_370_496.0; // 2^52
    let bits = (x as f64).to_bits();
    // Exponent and mantissa with integer bit operations only (vectorisable).
    let mut exponent = f64::from_bits((bits >> 52) | 0x4330_0000_0000_0000) - (TWO52 + 1023.0);
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let high = m > SQRT2;
    m = if high { m * 0.5 } else { m };
    exponent += if high { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0)))));
    let log2_x = exponent + 2.0 * s * series * std::f64::consts::LOG2_E;
    let y = g * log2_x;
    let n = (y + ROUND) - ROUND;
    let z = (y - n) * std::f64::consts::LN_2;
    let p = 1.0
        + z * (1.0
            + z * (0.5
                + z * (1.0 / 6.0
                    + z * (1.0 / 24.0
                        + z * (1.0 / 120.0 + z * (1.0 / 720.0 + z * (1.0 / 5040.0)))))));
    let n = n.clamp(-1000.0, 1000.0);
    // 2^n: the low bits of n + 1023 + 2^52 are the biased exponent.
    let scale = f64::from_bits((n + (TWO52 + 1023.0)).to_bits() << 52);
    (p * scale) as f32
}

/// Whether [`pow_positive`] is exact enough for `|x|` and `g`: `|x|` positive,
/// normal and finite, and the result far from float64 overflow.
#[inline(always)]
fn fast_domain(x: f32, g: f64) -> bool {
    let a = x.abs();
    (f32::MIN_POSITIVE..=f32::MAX).contains(&a) && g.abs() < 7.0
}

/// Voxels per block of [`power_slice_body`]: a block of `+0.0` is written at
/// once, and the fix-up pass runs on a block still in the L1 cache.
const BLOCK: usize = 16;

/// Computes `power` (or the inverse `x * power(x, 1 - gamma)`) of a slice.
#[inline(always)]
fn power_slice_body<T: Voxel>(
    input: &[T],
    out: &mut [f32],
    gamma: f32,
    has_negative: bool,
    invert: bool,
) {
    let exponent = if invert { 1.0 - gamma } else { gamma };
    // powf(+0, g > 0) is +0, and so are sign(+0) * 0 and +0 * 0: blocks of +0
    // (a brain's background) need no arithmetic at all.
    let zero_blocks = exponent > 0.0;
    let mut out_blocks = out.chunks_exact_mut(BLOCK);
    let mut in_blocks = input.chunks_exact(BLOCK);
    for (out, input) in (&mut out_blocks).zip(&mut in_blocks) {
        let mut bits = 0u32;
        for &v in input {
            bits |= (v.to_f64() as f32).to_bits();
        }
        if zero_blocks && bits == 0 {
            out.fill(0.0);
        } else {
            power_block(input, out, exponent, has_negative, invert);
        }
    }
    power_block(
        in_blocks.remainder(),
        out_blocks.into_remainder(),
        exponent,
        has_negative,
        invert,
    );
}

/// [`power_slice_body`] on one block (any length), `exponent` already
/// `1 - gamma` for the inverse.
#[inline(always)]
fn power_block<T: Voxel>(
    input: &[T],
    out: &mut [f32],
    exponent: f32,
    has_negative: bool,
    invert: bool,
) {
    let g = exponent as f64;
    // Branch-free pass over every voxel, then exact recomputation of the few
    // outside the fast domain (zeros, subnormals, infinities, NaN, negatives
    // of a channel treated as non-negative).
    for (o, &v) in out.iter_mut().zip(input) {
        let x = v.to_f64() as f32;
        let magnitude = pow_positive(x.abs(), g);
        let signed = if has_negative && x < 0.0 {
            -magnitude
        } else {
            magnitude
        };
        *o = if invert { x * signed } else { signed };
    }
    for (o, &v) in out.iter_mut().zip(input) {
        let x = v.to_f64() as f32;
        if !fast_domain(x, g) || (!has_negative && x < 0.0) {
            // The common case, +0 with a positive exponent (see above).
            if x.to_bits() == 0 && exponent > 0.0 {
                *o = 0.0;
                continue;
            }
            *o = exact_power(x, exponent, has_negative, invert);
        }
    }
}

/// [`power`] (or its inverse form) for one voxel outside the fast domain.
///
/// Never inlined: `powf` is a speculatable intrinsic to LLVM, which would
/// otherwise vectorise the recomputation loop by calling it for every voxel
/// and selecting, doubling the cost of the whole transform.
#[inline(never)]
fn exact_power(x: f32, exponent: f32, has_negative: bool, invert: bool) -> f32 {
    if invert {
        x * power(x, exponent, has_negative)
    } else {
        power(x, exponent, has_negative)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2,fma")]
unsafe fn power_slice_avx512<T: Voxel>(
    input: &[T],
    out: &mut [f32],
    gamma: f32,
    has_negative: bool,
    invert: bool,
) {
    power_slice_body(input, out, gamma, has_negative, invert)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn power_slice_avx2<T: Voxel>(
    input: &[T],
    out: &mut [f32],
    gamma: f32,
    has_negative: bool,
    invert: bool,
) {
    power_slice_body(input, out, gamma, has_negative, invert)
}

/// [`power_slice_body`] compiled for the widest vector unit the CPU has.
fn power_slice<T: Voxel>(
    input: &[T],
    out: &mut [f32],
    gamma: f32,
    has_negative: bool,
    invert: bool,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports every feature the function is compiled for.
            return unsafe { power_slice_avx512(input, out, gamma, has_negative, invert) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { power_slice_avx2(input, out, gamma, has_negative, invert) };
        }
    }
    power_slice_body(input, out, gamma, has_negative, invert)
}

/// Flag of [`sign_flags`]: some value is negative.
const NEGATIVE: u32 = 1;
/// Flag of [`sign_flags`]: some value is NaN.
const NAN: u32 = 2;

/// [`NEGATIVE`] and [`NAN`] flags of `values`, with branch-free lanes (vectorises).
fn sign_flags<T: Voxel>(values: &[T]) -> u32 {
    let mut lanes = [0u32; BLOCK];
    let mut blocks = values.chunks_exact(BLOCK);
    for block in &mut blocks {
        for (lane, &v) in lanes.iter_mut().zip(block) {
            let x = v.to_f64() as f32;
            *lane |= u32::from(x < 0.0) | (u32::from(x.is_nan()) << 1);
        }
    }
    let mut flags = lanes.iter().fold(0, |a, &b| a | b);
    for &v in blocks.remainder() {
        let x = v.to_f64() as f32;
        flags |= u32::from(x < 0.0) | (u32::from(x.is_nan()) << 1);
    }
    flags
}

/// Applies one gamma per channel to a `(C, I, J, K)` volume; returns float32.
pub fn gamma<T: Voxel>(
    volume: ArrayView4<'_, T>,
    gammas: &[f64],
    invert: bool,
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    let (c, ni, nj, nk) = volume.dim();
    if gammas.len() != c {
        return Err(Error::Shape(format!(
            "need one gamma per channel ({c}), got {}",
            gammas.len()
        )));
    }
    ensure(gammas.iter().all(|g| g.is_finite()), || {
        format!("gamma values must be finite, got {gammas:?}")
    })?;
    let plane_len = nj * nk;
    let mut output = Array4::<f32>::zeros((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    for ((channel, out_channel), &g) in volume
        .axis_iter(Axis(0))
        .zip(out.chunks_mut(ni * plane_len))
        .zip(gammas)
    {
        // torch.min propagates NaN, so `min < 0` is false when the channel
        // has NaN: the channel is negative iff it has a negative and no NaN.
        let flags = channel
            .axis_iter(Axis(0))
            .into_par_iter()
            .map(|plane| match plane.as_slice() {
                Some(values) => sign_flags(values),
                None => sign_flags(&plane.iter().copied().collect::<Vec<T>>()),
            })
            .reduce(|| 0, |a, b| a | b);
        let has_negative = flags & NAN == 0 && flags & NEGATIVE != 0;
        let g = g as f32;
        out_channel
            .par_chunks_mut(plane_len)
            .zip(channel.axis_iter(Axis(0)).into_par_iter())
            .for_each(|(plane_out, plane)| match plane.as_slice() {
                Some(input) => power_slice(input, plane_out, g, has_negative, invert),
                None => {
                    let input: Vec<T> = plane.iter().copied().collect();
                    power_slice(&input, plane_out, g, has_negative, invert);
                }
            });
    }
    Ok(output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn fast_power_matches_powf() {
        let mut worst = 0.0f64;
        for &g in &[0.3f32, 0.74, 1.0, 1.35, 2.0, 3.7, -0.5] {
            for t in 0..20000 {
                let x = 1e-30f32 * 1.0047f32.powi(t);
                if !x.is_finite() {
                    break;
                }
                let exact = (x as f64).powf(g as f64);
                if exact > f32::MAX as f64 || exact < f32::MIN_POSITIVE as f64 {
                    continue;
                }
                let fast = pow_positive(x, g as f64) as f64;
                worst = worst.max(((fast - exact) / exact).abs());
            }
        }
        assert!(worst < 1.2e-7, "worst relative error {worst}");
    }

    #[test]
    fn special_values_follow_powf() {
        let volume = Array::from_shape_vec(
            (1, 1, 1, 5),
            vec![0.0f32, f32::INFINITY, f32::NAN, 1e-40, 2.0],
        )
        .unwrap();
        let out = gamma(volume.view(), &[0.5], false).unwrap();
        assert_eq!(out[[0, 0, 0, 0]], 0.0);
        assert_eq!(out[[0, 0, 0, 1]], f32::INFINITY);
        assert!(out[[0, 0, 0, 2]].is_nan());
        assert_eq!(out[[0, 0, 0, 3]], 1e-40f32.powf(0.5));
        assert!((out[[0, 0, 0, 4]] - 2f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn zero_blocks_and_flags_match_the_per_voxel_rule() {
        // Runs of +0 (skipped blocks), -0, NaN and negatives at block edges.
        let mut values: Vec<f32> = (0..200)
            .map(|t| {
                if (20..90).contains(&t) {
                    0.0
                } else {
                    t as f32 * 0.37
                }
            })
            .collect();
        values[95] = -0.0;
        values[150] = 1e-42;
        for (g, invert) in [
            (0.5f32, false),
            (1.7, false),
            (-0.4, false),
            (0.6, true),
            (1.0, true),
        ] {
            let volume = Array::from_shape_vec((1, 2, 4, 25), values.clone()).unwrap();
            let out = gamma(volume.view(), &[f64::from(g)], invert).unwrap();
            let e = if invert { 1.0 - g } else { g };
            for (&x, &y) in values.iter().zip(out.iter()) {
                let want = exact_power(x, e, false, invert);
                assert!(
                    y.to_bits() == want.to_bits() || ((y - want) / want).abs() < 2e-7,
                    "x {x} g {g} invert {invert}: {y} vs {want}"
                );
            }
        }
        let mut negative = values.clone();
        negative[7] = -3.0;
        assert_eq!(sign_flags(&negative), NEGATIVE);
        negative[190] = f32::NAN;
        assert_eq!(sign_flags(&negative), NEGATIVE | NAN);
        // With NaN the channel is not treated as signed (torch.min is NaN).
        let volume = Array::from_shape_vec((1, 2, 4, 25), negative).unwrap();
        let out = gamma(volume.view(), &[0.5], false).unwrap();
        assert!(out[[0, 0, 0, 7]].is_nan());
    }

    #[test]
    fn gamma_per_channel_and_sign_preserving() {
        let volume =
            Array::from_shape_vec((2, 1, 1, 3), vec![0.0f32, 4.0, 9.0, -4.0, 0.0, 9.0]).unwrap();
        let out = gamma(volume.view(), &[0.5, 0.5], false).unwrap();
        assert_eq!(out.as_slice().unwrap(), &[0.0, 2.0, 3.0, -2.0, 0.0, 3.0]);
        let back = gamma(out.view(), &[2.0, 2.0], false).unwrap();
        assert_eq!(back.as_slice().unwrap(), &[0.0, 4.0, 9.0, -4.0, 0.0, 9.0]);
        // Inverse x * x^(1 - gamma) with gamma 2 on 3 is 3 * 3^-1 = 1.
        let inv = gamma(volume.view(), &[2.0, 1.0], true).unwrap();
        assert!((inv[[0, 0, 0, 2]] - 1.0).abs() < 1e-6);
        assert!(gamma(volume.view(), &[1.0], false).is_err());
    }
}
