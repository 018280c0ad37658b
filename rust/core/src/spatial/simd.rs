//! AVX2 kernels for resampling rows (x86-64), eight output voxels per step.
//!
//! Every step of a row of at least eight points goes through these kernels:
//! coordinates are clamped into the volume exactly as the scalar kernels of
//! `rows` clamp them (so every tap is in bounds), and points outside the
//! volume then take the fill. Rows shorter than one step are left to the
//! scalar kernels.
//!
//! Each operation mirrors the scalar path one for one (clamping, truncation
//! of non-negative coordinates, `f64` differences rounded once to `f32`, the
//! snapped inside test and nearest rounding, `a + (b - a) w` without fused
//! multiply-adds), so results are bit-identical to it and do not depend on
//! the CPU.

use std::arch::x86_64::*;

use super::background::RowExtents;
use super::interpolation::SNAP_SCALE;
use super::rows::SNAP_OFFSET;

/// Voxels per vector step.
pub const LANES: usize = 8;

/// Whether this CPU runs the kernels of this module.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether a volume of `dims` suits the `i32` lanes: its offsets and indices fit.
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

/// Trilinear taps of one axis for eight coordinates, as the scalar kernel
/// computes them: `x` clamped to `[0, n - 1]` (NaN to 0), the lower
/// neighbour (at most `n - 2`) as `i32` lanes, the weight of the upper one
/// rounded to `f32`, and whether every coordinate already lay in `[0, n - 1]`
/// (so is inside the volume). Flat axes: index 0, weight 0, inside.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn linear_axis(x: &[f64], at: usize, n: usize) -> (__m256i, __m256, bool) {
    if n == 1 {
        return (_mm256_setzero_si256(), _mm256_setzero_ps(), true);
    }
    let (lo, hi) = load8(x, at);
    let zero = _mm256_setzero_pd();
    let last = _mm256_set1_pd((n - 1) as f64);
    let below_last = _mm256_set1_pd((n - 2) as f64);
    let taps = |x: __m256d| {
        // `max` returns its second operand (0) for NaN, like `f64::max`.
        let clamped = _mm256_min_pd(_mm256_max_pd(x, zero), last);
        // Non-negative: truncation is the floor.
        let floor = _mm256_cvtepi32_pd(_mm256_cvttpd_epi32(clamped));
        let base = _mm256_min_pd(floor, below_last);
        let weight = _mm256_cvtpd_ps(_mm256_sub_pd(clamped, base));
        let unchanged = _mm256_cmp_pd::<_CMP_EQ_OQ>(x, clamped);
        (_mm256_cvttpd_epi32(base), weight, unchanged)
    };
    let (ilo, wlo, ulo) = taps(lo);
    let (ihi, whi, uhi) = taps(hi);
    let unchanged = _mm256_movemask_pd(_mm256_and_pd(ulo, uhi));
    (
        _mm256_set_m128i(ihi, ilo),
        _mm256_set_m128(whi, wlo),
        unchanged == 0b1111,
    )
}

/// All bits of the lanes of `bits` (bit `n` for lane `n`), as a float mask.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn lane_mask(bits: u32) -> __m256 {
    let select = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), select);
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, select))
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
        // `wrapping_offset` forms the address without claiming that it lies
        // in the buffer; the hint never faults.
        crate::stream::prefetch(base.wrapping_offset(at).cast());
    }
}

/// The smallest and largest of eight lanes that are monotone (first and
/// last lane bound the others).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn monotone_range(lanes: __m256i) -> [i32; 2] {
    let (first, last) = (
        _mm256_extract_epi32::<0>(lanes),
        _mm256_extract_epi32::<7>(lanes),
    );
    [first.min(last), first.max(last)]
}

/// Trilinear interpolation of one `f32` channel along a row: every step of
/// [`LANES`] points (see [`steps`]) is written, points outside the volume
/// (by the snapped inside test of [`inside_mask`]) with `fill`. Returns
/// whether the row was written, which it is unless it is shorter than one
/// step.
///
/// With `background`, the extents of this channel, steps whose taps all
/// read the background get its value without being gathered. They are only
/// valid for rows whose coordinates are affine in the row position, so that
/// the lower neighbours of a step's first and last points bound all others.
///
/// # Safety
/// The CPU must support AVX2 and FMA, `geometry.dims` must pass [`fits`] and
/// describe `data`, and `x` must hold at least `out.len()` points per axis.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn linear_f32(
    data: &[f32],
    x: [&[f64]; 3],
    geometry: &Geometry,
    background: Option<&RowExtents>,
    fill: f32,
    out: &mut [f32],
) -> bool {
    let [ni, nj, nk] = geometry.dims;
    let [di, dj, dk] = geometry.strides.map(|s| _mm256_set1_epi32(s as i32));
    let [si, sj, sk] = geometry.strides;
    let base = data.as_ptr();
    let n = out.len();
    if n < LANES || data.len() < ni * nj * nk || x.iter().any(|axis| axis.len() < n) {
        return false;
    }
    let fill_lanes = _mm256_set1_ps(fill);
    // Whether each axis has an upper neighbour (flat axes do not).
    let upper = geometry.strides.map(|s| i32::from(s != 0));
    let mut lanes = [0i32; LANES];
    for at in steps(n) {
        let (i, wa, in_i) = linear_axis(x[0], at, ni);
        let (j, wb, in_j) = linear_axis(x[1], at, nj);
        let (k, wc, in_k) = linear_axis(x[2], at, nk);
        let row = &mut out[at..at + LANES];
        let inside = if in_i && in_j && in_k {
            ALL_LANES
        } else {
            inside_mask(x, at, geometry.dims)
        };
        if inside == 0 {
            row.fill(fill);
            continue;
        }
        if let Some(background) = background {
            let (ri, rj, rk) = (monotone_range(i), monotone_range(j), monotone_range(k));
            if background.covers(ri, rj, rk, upper) {
                let mut value = _mm256_set1_ps(background.value);
                if inside != ALL_LANES {
                    value = _mm256_blendv_ps(fill_lanes, value, lane_mask(inside));
                }
                // SAFETY: the slice holds the eight values written.
                unsafe { _mm256_storeu_ps(row.as_mut_ptr(), value) };
                continue;
            }
        }
        let o = offsets([i, j, k], geometry.dims);
        if geometry.prefetch != 0 {
            prefetch_rows(base, o, si, geometry.prefetch);
        }
        // SAFETY (both arms): clamped lower neighbours are at most `n - 2`
        // on every axis of more than one voxel (stride 0 on flat ones), so
        // every tap lies in the volume `data` holds.
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
        let mut value = lerp(lerp(c00, c01, wb), lerp(c10, c11, wb), wa);
        if inside != ALL_LANES {
            value = _mm256_blendv_ps(fill_lanes, value, lane_mask(inside));
        }
        // SAFETY: the slice holds the eight values written.
        unsafe { _mm256_storeu_ps(row.as_mut_ptr(), value) };
    }
    true
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

/// Lanes (bit `n` for point `at + n`) whose coordinates lie inside the
/// volume by the inside test of the scalar kernels: on every axis of more
/// than one voxel, `0 <= x S + S / 2 + 1/2 < n S` with `S` = [`SNAP_SCALE`]
/// (the snapped form of `-1/2 <= x < n - 1/2`; false for NaN).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn inside_mask(x: [&[f64]; 3], at: usize, dims: [usize; 3]) -> u32 {
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
    inside
}

/// Snapped nearest indices of one axis for eight coordinates, as the scalar
/// kernel computes them (`t = x S + S / 2 + 1/2` with `S` = [`SNAP_SCALE`],
/// clamped to `[0, n S - 1]`, NaN to 0, then `floor(t / S)`; index 0 on flat
/// axes), and the lanes (bit `n` for lane `n`) inside on this axis (`0 <= t < n S`).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn nearest_axis(x: &[f64], at: usize, n: usize) -> (__m256i, u32) {
    if n == 1 {
        return (_mm256_setzero_si256(), ALL_LANES);
    }
    let zero = _mm256_setzero_pd();
    let limit = _mm256_set1_pd(n as f64 * SNAP_SCALE);
    let below_limit = _mm256_set1_pd(n as f64 * SNAP_SCALE - 1.0);
    let (scale, bias) = (_mm256_set1_pd(SNAP_SCALE), _mm256_set1_pd(SNAP_OFFSET));
    let inverse_scale = _mm256_set1_pd(1.0 / SNAP_SCALE);
    let (lo, hi) = load8(x, at);
    let index = |x: __m256d| {
        let t = _mm256_add_pd(_mm256_mul_pd(x, scale), bias);
        let inside = _mm256_movemask_pd(within(t, zero, limit)) as u32;
        // `max` returns its second operand (0) for NaN, like `f64::max`.
        let clamped = _mm256_min_pd(_mm256_max_pd(t, zero), below_limit);
        // `floor(t / S)` (S a power of two: the product is exact) is `floor(t) >> 32`
        // for `t >= 0`, and below `n`, so it fits the `i32` lanes.
        let index = _mm256_floor_pd(_mm256_mul_pd(clamped, inverse_scale));
        (_mm256_cvttpd_epi32(index), inside)
    };
    let (ilo, inside_lo) = index(lo);
    let (ihi, inside_hi) = index(hi);
    (_mm256_set_m128i(ihi, ilo), inside_lo | (inside_hi << 4))
}

/// Nearest-neighbour taps along a row: for every step of [`LANES`] points
/// (see [`steps`]), the input offsets (of the clamped indices, so always in
/// bounds) and whether each point is inside the volume. Returns whether the
/// row was done, which it is unless it is shorter than one step.
///
/// # Safety
/// The CPU must support AVX2 and FMA, `dims` must pass [`fits`], `valid`
/// must be as long as `offsets`, and `x` must hold that many points per axis.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn nearest_taps(
    x: [&[f64]; 3],
    dims: [usize; 3],
    offsets_out: &mut [usize],
    valid: &mut [bool],
) -> bool {
    let n = offsets_out.len();
    if n < LANES || valid.len() < n || x.iter().any(|axis| axis.len() < n) {
        return false;
    }
    let mut lanes = [0u32; LANES];
    for at in steps(n) {
        let (i, inside_i) = nearest_axis(x[0], at, dims[0]);
        let (j, inside_j) = nearest_axis(x[1], at, dims[1]);
        let (k, inside_k) = nearest_axis(x[2], at, dims[2]);
        let inside = inside_i & inside_j & inside_k;
        // SAFETY: `lanes` holds the eight values written.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), offsets([i, j, k], dims)) };
        let step = at..at + LANES;
        for (lane, (offset, valid)) in offsets_out[step.clone()]
            .iter_mut()
            .zip(&mut valid[step])
            .enumerate()
        {
            *offset = lanes[lane] as usize;
            *valid = inside & (1 << lane) != 0;
        }
    }
    true
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
