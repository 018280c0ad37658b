//! AVX2 kernels for resampling rows (x86-64), eight output voxels per step.
//!
//! A step is taken only when all eight input coordinates lie in the interior
//! (inside the volume and, for trilinear taps, below its last voxel), where no
//! clamping and no fill are needed; the kernels report which steps they took
//! in `done`, and the scalar row kernels of `rows` do the rest.
//!
//! Each operation mirrors the scalar path one for one (truncation of
//! non-negative coordinates, `f64` differences rounded once to `f32`, the
//! snapped nearest rounding, `a + (b - a) w` without fused multiply-adds), so
//! results are bit-identical to it and do not depend on the CPU.

use std::arch::x86_64::*;

use super::rows::{SNAP_OFFSET, SNAP_SCALE};

/// Voxels per vector step.
pub const LANES: usize = 8;

/// Whether this CPU runs the kernels of this module.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether a volume of `dims` suits the `i32` lanes: its offsets fit, and so
/// do the snapped coordinates `x 2^20` of nearest rounding.
pub fn fits(dims: [usize; 3]) -> bool {
    dims.iter().product::<usize>() < i32::MAX as usize && dims.iter().all(|&n| n < 2048)
}

/// The input volume's axes as the kernels see them.
#[derive(Clone, Copy)]
pub struct Geometry {
    /// Input `(I, J, K)`.
    pub dims: [usize; 3],
    /// Neighbour strides `(di, dj, dk)`, zero along flat axes.
    pub strides: [usize; 3],
    /// How far (in voxels) the taps of the row computed a few rows later lie
    /// from this row's, or 0 when unknown: lets the kernel prefetch them.
    pub prefetch: isize,
}

/// Offsets `(i nj + j) nk + k` of eight voxels.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn offsets(index: [__m256i; 3], dims: [usize; 3]) -> __m256i {
    let nj = _mm256_set1_epi32(dims[1] as i32);
    let nk = _mm256_set1_epi32(dims[2] as i32);
    let plane = _mm256_add_epi32(_mm256_mullo_epi32(index[0], nj), index[1]);
    _mm256_add_epi32(_mm256_mullo_epi32(plane, nk), index[2])
}

/// Lane mask (all bits) of `low <= x < high`, false for NaN.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn within(x: __m256d, low: __m256d, high: __m256d) -> __m256d {
    _mm256_and_pd(
        _mm256_cmp_pd::<_CMP_GE_OQ>(x, low),
        _mm256_cmp_pd::<_CMP_LT_OQ>(x, high),
    )
}

/// Eight coordinates `x[at..at + 8]` as two vectors.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn load8(x: &[f64], at: usize) -> (__m256d, __m256d) {
    let x = &x[at..at + LANES];
    // SAFETY: the slice holds the eight values read.
    unsafe {
        (
            _mm256_loadu_pd(x.as_ptr()),
            _mm256_loadu_pd(x.as_ptr().add(4)),
        )
    }
}

/// Trilinear taps of one axis for eight coordinates: the lower neighbours as
/// `i32` lanes, the weights of the upper ones rounded to `f32`, and whether
/// every coordinate is interior (`0 <= x < n - 1`; flat axes: index 0, weight 0).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn linear_axis(x: &[f64], at: usize, n: usize) -> (__m256i, __m256, bool) {
    if n == 1 {
        return (_mm256_setzero_si256(), _mm256_setzero_ps(), true);
    }
    let (lo, hi) = load8(x, at);
    let (zero, last) = (_mm256_setzero_pd(), _mm256_set1_pd((n - 1) as f64));
    let ok = _mm256_movemask_pd(_mm256_and_pd(
        within(lo, zero, last),
        within(hi, zero, last),
    ));
    // Non-negative: truncation is the floor.
    let (ilo, ihi) = (_mm256_cvttpd_epi32(lo), _mm256_cvttpd_epi32(hi));
    let wlo = _mm256_cvtpd_ps(_mm256_sub_pd(lo, _mm256_cvtepi32_pd(ilo)));
    let whi = _mm256_cvtpd_ps(_mm256_sub_pd(hi, _mm256_cvtepi32_pd(ihi)));
    (
        _mm256_set_m128i(ihi, ilo),
        _mm256_set_m128(whi, wlo),
        ok == 0b1111,
    )
}

/// `a + (b - a) w` lane by lane.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn lerp(a: __m256, b: __m256, w: __m256) -> __m256 {
    _mm256_add_ps(a, _mm256_mul_ps(_mm256_sub_ps(b, a), w))
}

/// Linear interpolation between the voxels at `offset` and `offset + dk`.
///
/// # Safety
/// Every lane of `offset` and `offset + dk` must index into the buffer at `base`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn lerp_pair(base: *const f32, offset: __m256i, dk: __m256i, w: __m256) -> __m256 {
    // SAFETY: the caller guarantees both offsets are in bounds.
    let (a, b) = unsafe {
        (
            _mm256_i32gather_ps::<4>(base, offset),
            _mm256_i32gather_ps::<4>(base, _mm256_add_epi32(offset, dk)),
        )
    };
    lerp(a, b, w)
}

/// Linear interpolation between the voxels at `lanes[n] + shift` and the
/// next one along K, for the eight lanes: each pair is one 64-bit load, and
/// the pairs are de-interleaved with shuffles (fewer micro-operations than two gathers).
///
/// # Safety
/// Every `lanes[n] + shift` and the voxel after it must lie in the buffer.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn lerp_adjacent(base: *const f32, lanes: &[i32; LANES], shift: usize, w: __m256) -> __m256 {
    // SAFETY: the caller guarantees that both voxels of every pair are in
    // bounds; unaligned 64-bit loads are allowed.
    let at = |n: usize| unsafe { base.add(lanes[n] as usize + shift).cast::<f64>() };
    // SAFETY: as above.
    let (a, b) = unsafe {
        let q01 = _mm_loadh_pd(_mm_load_sd(at(0)), at(1));
        let q23 = _mm_loadh_pd(_mm_load_sd(at(2)), at(3));
        let q45 = _mm_loadh_pd(_mm_load_sd(at(4)), at(5));
        let q67 = _mm_loadh_pd(_mm_load_sd(at(6)), at(7));
        let low = _mm256_castpd_ps(_mm256_set_m128d(q45, q01));
        let high = _mm256_castpd_ps(_mm256_set_m128d(q67, q23));
        (
            _mm256_shuffle_ps::<0b10_00_10_00>(low, high),
            _mm256_shuffle_ps::<0b11_01_11_01>(low, high),
        )
    };
    lerp(a, b, w)
}

/// Asks for the cache lines a later row will read: those `ahead` voxels past
/// the first and last lanes of `offset`, in both planes of the taps.
///
/// Rows tilted through input planes (a rotation about J) read short pieces of
/// many planes, which the hardware prefetchers do not follow.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn prefetch_rows(base: *const f32, offset: __m256i, di: usize, ahead: isize) {
    let first = _mm256_extract_epi32::<0>(offset) as isize + ahead;
    let last = _mm256_extract_epi32::<7>(offset) as isize + ahead;
    for at in [first, last, first + di as isize, last + di as isize] {
        // A prefetch is a hint that never faults, and `wrapping_offset` forms
        // the address without claiming that it lies in the buffer. (Older
        // compilers declare the intrinsic unsafe; newer ones call it safe.)
        #[allow(unused_unsafe)]
        // SAFETY: see above; nothing is read or written.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_offset(at).cast())
        };
    }
}

/// Trilinear interpolation of one `f32` channel along a row.
///
/// For each step of [`LANES`] points (see [`steps`]) whose coordinates are
/// all interior, writes `out` and sets `done`; so it does for steps whose
/// points all lie outside the volume (by the snapped inside test of
/// [`outside_mask`]), which get `fill`. Other points get `done = false` and
/// are left to the caller. Returns whether every point is done.
///
/// # Safety
/// The CPU must support AVX2 and FMA, `geometry.dims` must pass [`fits`] and
/// describe `data`, and `x`, `out` and `done` must have the same length.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn linear_f32(
    data: &[f32],
    x: [&[f64]; 3],
    geometry: &Geometry,
    fill: f32,
    out: &mut [f32],
    done: &mut [bool],
) -> bool {
    let [ni, nj, nk] = geometry.dims;
    let [di, dj, dk] = geometry.strides.map(|s| _mm256_set1_epi32(s as i32));
    let [si, sj, sk] = geometry.strides;
    let base = data.as_ptr();
    let n = out.len();
    if data.len() < ni * nj * nk || x.iter().any(|axis| axis.len() < n) || done.len() < n {
        done.fill(false);
        return false;
    }
    let mut lanes = [0i32; LANES];
    let mut all_done = n >= LANES;
    for at in steps(n) {
        let (i, wa, oi) = linear_axis(x[0], at, ni);
        let (j, wb, oj) = linear_axis(x[1], at, nj);
        let (k, wc, ok) = linear_axis(x[2], at, nk);
        let row = &mut out[at..at + LANES];
        if oi && oj && ok {
            let o = offsets([i, j, k], geometry.dims);
            if geometry.prefetch != 0 {
                prefetch_rows(base, o, si, geometry.prefetch);
            }
            // SAFETY (both arms): interior points have every neighbour inside
            // the volume `data` holds (`0 <= i <= n - 2` on each active axis).
            let (c00, c01, c10, c11) = if sk == 1 {
                // SAFETY: `lanes` holds the eight values written.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), o) };
                unsafe {
                    (
                        lerp_adjacent(base, &lanes, 0, wc),
                        lerp_adjacent(base, &lanes, sj, wc),
                        lerp_adjacent(base, &lanes, si, wc),
                        lerp_adjacent(base, &lanes, si + sj, wc),
                    )
                }
            } else {
                let (o_j, o_i) = (_mm256_add_epi32(o, dj), _mm256_add_epi32(o, di));
                let o_ij = _mm256_add_epi32(o_i, dj);
                unsafe {
                    (
                        lerp_pair(base, o, dk, wc),
                        lerp_pair(base, o_j, dk, wc),
                        lerp_pair(base, o_i, dk, wc),
                        lerp_pair(base, o_ij, dk, wc),
                    )
                }
            };
            let value = lerp(lerp(c00, c01, wb), lerp(c10, c11, wb), wa);
            // SAFETY: the slice holds the eight values written.
            unsafe { _mm256_storeu_ps(row.as_mut_ptr(), value) };
            done[at..at + LANES].fill(true);
        } else if outside_mask(x, at, geometry.dims) == ALL_LANES {
            row.fill(fill);
            done[at..at + LANES].fill(true);
        } else {
            done[at..at + LANES].fill(false);
            all_done = false;
        }
    }
    all_done
}

/// Starts of the vector steps along a row of `n` points: every multiple of
/// [`LANES`] that fits, then, if points remain, one last step ending at `n`
/// (it overlaps the one before; the overlapping points get the same values
/// again). Rows shorter than one step have none.
fn steps(n: usize) -> impl Iterator<Item = usize> {
    let whole = n / LANES;
    // `then`, not `then_some`: `n - LANES` must not be evaluated for short rows.
    let last = (!n.is_multiple_of(LANES) && whole > 0).then(|| n - LANES);
    (0..whole).map(|step| step * LANES).chain(last)
}

/// Every lane of a mask of [`LANES`] bits.
const ALL_LANES: u32 = (1 << LANES) - 1;

/// Lanes (bit `n` for point `at + n`) whose coordinates lie outside the
/// volume by the inside test of the scalar kernels: on some axis of more
/// than one voxel, `x 2^20 + 2^19 + 1/2` is negative, at least `n 2^20`, or
/// NaN (the snapped form of `-1/2 <= x < n - 1/2`).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn outside_mask(x: [&[f64]; 3], at: usize, dims: [usize; 3]) -> u32 {
    let (scale, bias) = (_mm256_set1_pd(SNAP_SCALE), _mm256_set1_pd(SNAP_OFFSET));
    let zero = _mm256_setzero_pd();
    let mut inside = ALL_LANES;
    for (axis, &n) in x.iter().zip(&dims) {
        if n == 1 {
            continue;
        }
        let limit = _mm256_set1_pd(n as f64 * SNAP_SCALE);
        let (lo, hi) = load8(axis, at);
        let lo = _mm256_add_pd(_mm256_mul_pd(lo, scale), bias);
        let hi = _mm256_add_pd(_mm256_mul_pd(hi, scale), bias);
        let low = _mm256_movemask_pd(within(lo, zero, limit)) as u32;
        let high = _mm256_movemask_pd(within(hi, zero, limit)) as u32;
        inside &= low | (high << 4);
    }
    !inside & ALL_LANES
}

/// Snapped nearest indices of one axis for eight coordinates
/// (`trunc(x 2^20 + 2^19 + 1/2) >> 20`, index 0 on flat axes) and whether
/// every coordinate is inside (`0 <= x 2^20 + 2^19 + 1/2 < n 2^20`).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn nearest_axis(x: &[f64], at: usize, n: usize) -> (__m256i, bool) {
    if n == 1 {
        return (_mm256_setzero_si256(), true);
    }
    let (zero, limit) = (_mm256_setzero_pd(), _mm256_set1_pd(n as f64 * SNAP_SCALE));
    let (scale, bias) = (_mm256_set1_pd(SNAP_SCALE), _mm256_set1_pd(SNAP_OFFSET));
    let (lo, hi) = load8(x, at);
    let lo = _mm256_add_pd(_mm256_mul_pd(lo, scale), bias);
    let hi = _mm256_add_pd(_mm256_mul_pd(hi, scale), bias);
    let ok = _mm256_movemask_pd(_mm256_and_pd(
        within(lo, zero, limit),
        within(hi, zero, limit),
    ));
    let both = _mm256_set_m128i(_mm256_cvttpd_epi32(hi), _mm256_cvttpd_epi32(lo));
    (_mm256_srli_epi32::<20>(both), ok == 0b1111)
}

/// Nearest-neighbour taps along a row: input offsets and validity.
///
/// For each step of [`LANES`] inside points (see [`steps`]), writes
/// `offsets`, sets `valid` and `done`; steps whose points are all outside get
/// offset 0, `valid = false` and `done`; other points get `done = false`.
/// Returns whether every point is done.
///
/// # Safety
/// The CPU must support AVX2 and FMA, `dims` must pass [`fits`], and `x`,
/// `offsets`, `valid` and `done` must have the same length.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn nearest_taps(
    x: [&[f64]; 3],
    dims: [usize; 3],
    offsets_out: &mut [usize],
    valid: &mut [bool],
    done: &mut [bool],
) -> bool {
    let n = offsets_out.len();
    let mut lanes = [0u32; LANES];
    let mut all_done = n >= LANES;
    for at in steps(n) {
        let (i, oi) = nearest_axis(x[0], at, dims[0]);
        let (j, oj) = nearest_axis(x[1], at, dims[1]);
        let (k, ok) = nearest_axis(x[2], at, dims[2]);
        let step = at..at + LANES;
        if oi && oj && ok {
            // SAFETY: `lanes` holds the eight values written.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), offsets([i, j, k], dims)) };
            for (offset, &lane) in offsets_out[step.clone()].iter_mut().zip(&lanes) {
                *offset = lane as usize;
            }
            valid[step.clone()].fill(true);
            done[step].fill(true);
        } else if outside_mask(x, at, dims) == ALL_LANES {
            offsets_out[step.clone()].fill(0);
            valid[step.clone()].fill(false);
            done[step].fill(true);
        } else {
            done[step].fill(false);
            all_done = false;
        }
    }
    all_done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_cover_every_point_of_a_row_once_or_twice() {
        assert_eq!(
            steps(5).count(),
            0,
            "a short row is left to the scalar path"
        );
        assert_eq!(steps(16).collect::<Vec<_>>(), [0, 8]);
        assert_eq!(steps(21).collect::<Vec<_>>(), [0, 8, 13]);
        for n in 8..40 {
            let mut covered = vec![0; n];
            for at in steps(n) {
                assert!(at + LANES <= n);
                covered[at..at + LANES].iter_mut().for_each(|c| *c += 1);
            }
            assert!(covered.iter().all(|&c| c == 1 || c == 2), "row of {n}");
        }
    }
}
