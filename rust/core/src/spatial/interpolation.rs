//! Interpolation modes and their per-axis building blocks, with SimpleITK's
//! semantics (`ResampleImageFilter` + `*InterpolateImageFunction`):
//!
//! * a continuous index `x` along an axis of `n` voxels is inside the image iff
//!   `-0.5 <= x < n - 0.5` (ITK's `IsInsideBuffer`); outside, the fill value is used;
//! * nearest rounds half up (`floor(x + 0.5)`, ITK's `RoundHalfIntegerUp`);
//! * linear clamps the two neighbours to `[0, n - 1]` (so the half voxel past
//!   the first and last centres repeats the edge value);
//! * cubic B-spline interpolates coefficients obtained with Unser's exact
//!   causal/anticausal prefilter under whole-sample mirror boundaries, like
//!   `BSplineDecompositionImageFilter` + `BSplineInterpolateImageFunction` (order 3).
//!
//! Axes of length 1 are "flat": their coordinate is ignored (index 0, always
//! inside), so 2D images `(C, W, H, 1)` are never interpolated across the
//! singleton axis.

use ndarray::{Array3, ArrayView3, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::Voxel;

/// How voxel values are computed at non-grid positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    /// Nearest neighbour (ITK rounding: half up).
    Nearest,
    /// Trilinear.
    Linear,
    /// Cubic B-spline with prefilter (`'bspline'`, alias `'cubic'`).
    BSpline,
    /// Partial-volume label interpolation: each label's indicator is
    /// interpolated linearly and the label with the largest weight wins.
    Label,
}

impl Interpolation {
    /// Parses a lower-case name: `nearest`, `linear`, `bspline`, `cubic`, `label`.
    pub fn from_name(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "nearest" => Ok(Self::Nearest),
            "linear" => Ok(Self::Linear),
            "bspline" | "cubic" => Ok(Self::BSpline),
            "label" => Ok(Self::Label),
            other => Err(Error::InvalidArgument(format!(
                "unknown interpolation {other:?}; expected one of 'nearest', 'linear', \
                 'bspline', 'cubic', 'label'"
            ))),
        }
    }
}

/// Rounds a continuous index to a multiple of 2^-32 voxel (exact in binary).
///
/// Grids whose centres fall exactly half-way between input voxels (e.g. 1.2 mm
/// to 1 mm) put many samples on rounding ties and on the `n - 0.5` border; the
/// few ulps by which two ways of computing the same index differ would decide
/// them arbitrarily. Snapping makes exact ties exact, so they resolve as in
/// SimpleITK (half up; the border excluded). The grid is fine enough to keep
/// real offsets from a tie, such as those of spacings stored in float32 (1.1 mm
/// is 1.10000002 mm in a NIfTI header, which moves indices by about 1e-7):
/// SimpleITK rounds those by the side they fall on, and so does this.
#[inline(always)]
pub fn snap(x: f64) -> f64 {
    fast_floor(x * SNAP_SCALE + 0.5) * (1.0 / SNAP_SCALE)
}

/// Scale `2^32` of [`snap`]: indices are snapped to multiples of its inverse.
pub const SNAP_SCALE: f64 = 4_294_967_296.0;

/// `log2` of [`SNAP_SCALE`].
pub const SNAP_SHIFT: u32 = 32;

/// `floor(x)` without a libm call (baseline x86-64 has no rounding
/// instruction, and `f64::floor` is not inlined there). Exact for |x| < 2^52;
/// NaN maps to 0 and values beyond the `i64` range saturate, which callers
/// reject beforehand through the inside test or tolerate (coordinates only).
#[inline(always)]
pub fn fast_floor(x: f64) -> f64 {
    let truncated = x as i64 as f64;
    if truncated > x {
        truncated - 1.0
    } else {
        truncated
    }
}

/// Whether the continuous index `x` lies inside an axis of `n` voxels
/// (`-0.5 <= x < n - 0.5`; NaN is outside). Flat axes (`n == 1`) accept everything.
#[inline(always)]
pub fn inside(x: f64, n: usize) -> bool {
    n == 1 || (x >= -0.5 && x < n as f64 - 0.5)
}

/// Nearest index along an axis of `n` voxels for an inside coordinate.
#[inline(always)]
pub fn nearest_index(x: f64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let i = fast_floor(x + 0.5);
    // Inside coordinates round to 0..n-1; the clamp only guards rounding noise.
    i.clamp(0.0, (n - 1) as f64) as usize
}

/// The two linear neighbours `(i0, i1)` and the weight `w` of `i1` for an
/// inside coordinate, with the coordinate clamped to `[0, n - 1]`.
#[inline(always)]
pub fn linear_neighbours(x: f64, n: usize) -> (usize, usize, f64) {
    if n == 1 {
        return (0, 0, 0.0);
    }
    let last = (n - 1) as f64;
    let xc = x.clamp(0.0, last);
    let base = fast_floor(xc);
    let i0 = base as usize;
    let w = xc - base;
    let i1 = if i0 + 1 < n { i0 + 1 } else { i0 };
    (i0, i1, w)
}

/// Mirrors an integer index into `0..n` with whole-sample symmetry
/// (`-1 -> 1`, `n -> n - 2`), periodic with period `2 (n - 1)`.
#[inline(always)]
pub fn mirror_index(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let mut r = i.rem_euclid(period);
    if r >= n as i64 {
        r = period - r;
    }
    r as usize
}

/// Cubic B-spline weights of the four support points `floor(x) - 1 ..= floor(x) + 2`
/// for fractional part `t` (ITK's `SetInterpolationWeights`, order 3).
#[inline(always)]
pub fn cubic_weights(t: f64) -> [f64; 4] {
    let w3 = t * t * t / 6.0;
    let w0 = 1.0 / 6.0 + 0.5 * t * (t - 1.0) - w3;
    let w2 = t + w0 - 2.0 * w3;
    let w1 = 1.0 - w0 - w2 - w3;
    [w0, w1, w2, w3]
}

/// Mirrored support indices and weights of cubic B-spline interpolation at `x`
/// along an axis of `n` coefficients.
#[inline(always)]
pub fn bspline_support(x: f64, n: usize) -> ([usize; 4], [f64; 4]) {
    if n == 1 {
        return ([0; 4], [1.0, 0.0, 0.0, 0.0]);
    }
    let base = fast_floor(x);
    let weights = cubic_weights(x - base);
    let start = base as i64 - 1;
    let mut indices = [0usize; 4];
    for (m, index) in indices.iter_mut().enumerate() {
        *index = mirror_index(start + m as i64, n);
    }
    (indices, weights)
}

/// The pole of the cubic B-spline prefilter, `sqrt(3) - 2`.
pub const CUBIC_POLE: f64 = -0.267_949_192_431_122_7;

/// Tolerance of ITK's truncated causal initialisation.
const PREFILTER_TOLERANCE: f64 = 1e-10;

/// Turns samples into cubic B-spline coefficients in place (Unser 1993, with
/// ITK's whole-sample mirror initialisation). Lines of length 1 are unchanged.
pub fn prefilter_line(c: &mut [f64]) {
    let n = c.len();
    if n < 2 {
        return;
    }
    let z = CUBIC_POLE;
    let gain = (1.0 - z) * (1.0 - 1.0 / z);
    c.iter_mut().for_each(|v| *v *= gain);
    // Causal initialisation: sum over the mirrored signal, truncated once the
    // pole's powers fall below the tolerance.
    let horizon = (PREFILTER_TOLERANCE.ln() / z.abs().ln()).ceil() as usize;
    let mut zn = z;
    if horizon < n {
        let mut sum = c[0];
        for value in c.iter().take(horizon).skip(1) {
            sum += zn * value;
            zn *= z;
        }
        c[0] = sum;
    } else {
        let iz = 1.0 / z;
        let mut z2n = z.powi(n as i32 - 1);
        let mut sum = c[0] + z2n * c[n - 1];
        z2n = z2n * z2n * iz;
        for value in c.iter().take(n - 1).skip(1) {
            sum += (zn + z2n) * value;
            zn *= z;
            z2n *= iz;
        }
        c[0] = sum / (1.0 - zn * zn);
    }
    for i in 1..n {
        c[i] += z * c[i - 1];
    }
    c[n - 1] = (z / (z * z - 1.0)) * (z * c[n - 2] + c[n - 1]);
    for i in (0..n - 1).rev() {
        c[i] = z * (c[i + 1] - c[i]);
    }
}

/// Storage type of B-spline coefficients: `f32` for `f32` images (no float64
/// volume on float32 data), `f64` otherwise.
pub trait Coefficient: Copy + Send + Sync + Default + 'static {
    /// Converts from the `f64` line buffer.
    fn from_f64(value: f64) -> Self;
    /// Converts to `f64` for accumulation.
    fn to_f64(self) -> f64;
}

impl Coefficient for f32 {
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Coefficient for f64 {
    #[inline(always)]
    fn from_f64(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// Filters every lane of `coefficients` along `axis` in place; lanes are
/// processed in parallel, one task per index of the other outer axis.
fn prefilter_axis<C: Coefficient>(coefficients: &mut Array3<C>, axis: usize) {
    let n = coefficients.len_of(Axis(axis));
    if n < 2 {
        return;
    }
    // Parallel over I planes unless filtering along I, then over J planes.
    let outer = if axis == 0 { 1 } else { 0 };
    coefficients
        .axis_iter_mut(Axis(outer))
        .into_par_iter()
        .for_each_init(
            || vec![0.0f64; n],
            |line, mut plane| {
                let lane_axis = if axis > outer { axis - 1 } else { axis };
                for mut lane in plane.lanes_mut(Axis(lane_axis)) {
                    for (dst, src) in line.iter_mut().zip(lane.iter()) {
                        *dst = src.to_f64();
                    }
                    prefilter_line(line);
                    for (dst, src) in lane.iter_mut().zip(line.iter()) {
                        *dst = C::from_f64(*src);
                    }
                }
            },
        );
}

/// Cubic B-spline coefficients of one `(I, J, K)` channel (separable prefilter
/// along the three axes; flat axes untouched).
pub fn bspline_coefficients<T: Voxel, C: Coefficient>(channel: ArrayView3<'_, T>) -> Array3<C> {
    let mut coefficients = channel.mapv(|v| C::from_f64(v.to_f64()));
    for axis in [2, 1, 0] {
        prefilter_axis(&mut coefficients, axis);
    }
    coefficients
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::needless_range_loop)]
mod tests {
    use super::*;

    /// Evaluates the spline with coefficients `c` at integer `k` (mirror boundaries).
    fn at_integer(c: &[f64], k: usize) -> f64 {
        let n = c.len();
        let left = c[mirror_index(k as i64 - 1, n)];
        let right = c[mirror_index(k as i64 + 1, n)];
        (left + 4.0 * c[k] + right) / 6.0
    }

    #[test]
    fn prefilter_interpolates_samples_exactly() {
        for n in [2usize, 3, 5, 17, 40] {
            let data: Vec<f64> = (0..n).map(|i| ((i * 7919) % 13) as f64 - 4.5).collect();
            let mut c = data.clone();
            prefilter_line(&mut c);
            for k in 0..n {
                assert!(
                    (at_integer(&c, k) - data[k]).abs() < 1e-9,
                    "n={n} k={k}: {} vs {}",
                    at_integer(&c, k),
                    data[k]
                );
            }
        }
    }

    #[test]
    fn prefilter_of_constant_and_linear_signals() {
        // A constant is its own spline; a ramp's coefficients equal its samples
        // away from the mirror boundary (B-splines reproduce polynomials).
        let mut c = vec![3.5; 30];
        prefilter_line(&mut c);
        assert!(c.iter().all(|v| (v - 3.5).abs() < 1e-8));
        let mut ramp: Vec<f64> = (0..60).map(|i| i as f64).collect();
        prefilter_line(&mut ramp);
        for (i, v) in ramp.iter().enumerate().take(45).skip(15) {
            assert!((v - i as f64).abs() < 1e-6, "{i}: {v}");
        }
    }

    #[test]
    fn prefilter_of_unit_impulse_decays_with_the_pole() {
        // Far from the borders, the coefficients of a unit impulse are the
        // impulse response of 6 / (z^-1 + 4 + z), in closed form
        // c[k] = -6 z / (1 - z^2) * z^|k| = sqrt(3) * z^|k|.
        let n = 101;
        let mut c = vec![0.0; n];
        c[50] = 1.0;
        prefilter_line(&mut c);
        let z = CUBIC_POLE;
        let c0 = 3.0f64.sqrt();
        for offset in 0..10i32 {
            let expected = c0 * z.powi(offset);
            assert!((c[(50 + offset) as usize] - expected).abs() < 1e-9);
            assert!((c[(50 - offset) as usize] - expected).abs() < 1e-9);
        }
    }

    #[test]
    fn weights_nearest_and_mirror() {
        for t in [0.0, 0.25, 0.5, 0.99] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        assert_eq!(cubic_weights(0.0)[3], 0.0);
        assert_eq!(nearest_index(2.5, 10), 3);
        assert_eq!(nearest_index(2.4999, 10), 2);
        assert_eq!(nearest_index(-0.5, 10), 0);
        assert_eq!(mirror_index(-1, 5), 1);
        assert_eq!(mirror_index(5, 5), 3);
        assert_eq!(mirror_index(-9, 5), 1);
        assert!(inside(-0.5, 4) && !inside(3.5, 4) && !inside(f64::NAN, 4));
        assert!(inside(7.0, 1));
        for x in [-2.5, -1.0, -0.2, 0.0, 0.7, 3.0, 1e9 + 0.5] {
            assert_eq!(fast_floor(x), x.floor());
        }
        assert_eq!(snap(2.5 - 1e-12), 2.5);
        assert_eq!(linear_neighbours(-0.3, 4), (0, 1, 0.0));
        assert_eq!(linear_neighbours(3.2, 4), (3, 3, 0.0));
        assert_eq!(
            Interpolation::from_name("Cubic").unwrap(),
            Interpolation::BSpline
        );
        assert!(Interpolation::from_name("sinc").is_err());
    }
}
