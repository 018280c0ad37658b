//! Row kernels of the warp for nearest and trilinear interpolation.
//!
//! Each output row `(i, j, 0..K)` is done in three passes over scratch
//! buffers: input coordinates (incrementally for affine-only chains), taps
//! (offsets, weights, inside flags, computed once for every channel), then one
//! gather per channel. On x86-64 with AVX2, rows of at least eight points get
//! their nearest taps, or their trilinear values of `f32` volumes, from
//! [`simd`] instead, with bit-identical results; for affine-only chains, the
//! trilinear kernel is also told where the input holds only its background
//! (see [`background`](super::background)).

use std::mem::MaybeUninit;
use std::ops::Range;

use ndarray::Array4;
use rayon::prelude::*;

use crate::affine;
use crate::error::{Error, Result};
use crate::regions::Regions;
use crate::spatial::background::RowExtents;
use crate::spatial::bspline::BSplineGrid;
use crate::spatial::displacement::split_planes;
use crate::spatial::interpolation::{SNAP_SCALE, SNAP_SHIFT};
#[cfg(target_arch = "x86_64")]
use crate::spatial::simd;
use crate::spatial::warp::{convert, Displacement, Plan, Source};
use crate::volume::Voxel;

/// Floating type of interpolation weights and sums: `f32` for `f32` volumes
/// (no float64 temporaries on float32 data), `f64` otherwise (exact enough for
/// float64 data and for the truncation of integer results).
pub(super) trait Real:
    Copy
    + Send
    + Sync
    + 'static
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
{
    fn of(value: f64) -> Self;
    fn get(self) -> f64;
    /// `a + (b - a) w`: exact where `a == b` (constant regions stay constant).
    fn lerp(a: Self, b: Self, w: Self) -> Self;
}

impl Real for f32 {
    #[inline(always)]
    fn of(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn get(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn lerp(a: Self, b: Self, w: Self) -> Self {
        a + (b - a) * w
    }
}

impl Real for f64 {
    #[inline(always)]
    fn of(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn get(self) -> f64 {
        self
    }
    #[inline(always)]
    fn lerp(a: Self, b: Self, w: Self) -> Self {
        a + (b - a) * w
    }
}

/// Per-task buffers for one output row: input coordinates, then taps.
struct RowScratch<W> {
    x: [Vec<f64>; 3],
    offsets: Vec<usize>,
    weights: [Vec<W>; 3],
    valid: Vec<bool>,
    lazy: LazyRows,
    /// The row's points before the matrix of a lazily evaluated field.
    points: [Vec<f64>; 3],
}

/// Scratch of a first field evaluated on the fly ([`Displacement::Lazy`]):
/// the grid contracted for the current plane, and the current row's
/// displacements.
struct LazyRows {
    /// `(plane, whether it has any displacement)` that `rows` holds.
    plane: Option<(usize, bool)>,
    rows: Vec<f64>,
    u: [Vec<f32>; 3],
}

impl LazyRows {
    /// The displacements of output row `(i, j)`, or `None` where they are zero.
    fn row(&mut self, grid: &BSplineGrid, i: usize, j: usize) -> Option<&[Vec<f32>; 3]> {
        let active = match self.plane {
            Some((plane, active)) if plane == i => active,
            _ => {
                self.rows.resize(grid.plane_len(), 0.0);
                let active = grid.plane_rows(i, &mut self.rows);
                self.plane = Some((i, active));
                active
            }
        };
        if !active {
            return None;
        }
        for d in 0..3 {
            if !grid.row(&self.rows, j, d, &mut self.u[d]) {
                return None;
            }
        }
        Some(&self.u)
    }
}

impl<W: Real> RowScratch<W> {
    fn new(n: usize) -> Self {
        Self {
            x: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            offsets: vec![0; n],
            weights: [
                vec![W::of(0.0); n],
                vec![W::of(0.0); n],
                vec![W::of(0.0); n],
            ],
            valid: vec![false; n],
            lazy: LazyRows {
                plane: None,
                rows: Vec::new(),
                u: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            },
            points: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
        }
    }
}

/// Input continuous indices of the output row `(i, j, 0..nk)`: at least of
/// its points `span` (affine-only chains compute those alone), each the same
/// bits whichever points are computed.
#[inline(always)]
fn row_coordinates(
    plan: &Plan<'_>,
    i: usize,
    j: usize,
    span: Range<usize>,
    x: &mut [Vec<f64>; 3],
    lazy: &mut LazyRows,
    points: &mut [Vec<f64>; 3],
) {
    let (fi, fj) = (i as f64, j as f64);
    let [x0, x1, x2] = x;
    if plan.fields.is_empty() {
        // Affine-only: the input index moves by `step` per K voxel.
        let base = affine::apply(&plan.head, [fi, fj, 0.0]);
        let step = affine::column(&plan.head, 2);
        // One axis at a time, so that the loops vectorise.
        for ((x, base), step) in [x0, x1, x2].into_iter().zip(base).zip(step) {
            for (x, k) in x[span.clone()].iter_mut().zip(span.clone()) {
                *x = base + (k as i32 as f64) * step;
            }
        }
    } else if let (Some((Displacement::Lazy(grid), matrix)), 1) =
        (plan.fields.first(), plan.fields.len())
    {
        let [p0, p1, p2] = points;
        let u = lazy.row(grid, i, j);
        head_plus_displacement(&plan.head, fi, fj, u.map(|[u0, _, _]| &u0[..]), 0, p0);
        head_plus_displacement(&plan.head, fi, fj, u.map(|[_, u1, _]| &u1[..]), 1, p1);
        head_plus_displacement(&plan.head, fi, fj, u.map(|[_, _, u2]| &u2[..]), 2, p2);
        for (d, x) in [x0, x1, x2].into_iter().enumerate() {
            let m = matrix[d];
            for (((x, &a), &b), &c) in x.iter_mut().zip(&*p0).zip(&*p1).zip(&*p2) {
                // `affine::apply`'s operations in its order.
                *x = m[0] * a + m[1] * b + m[2] * c + m[3];
            }
        }
    } else if let Some((Displacement::Lazy(grid), matrix)) = plan.fields.first() {
        // The first field evaluated for the whole row at once, then as `Plan::map`.
        let u = lazy.row(grid, i, j);
        for (k, ((a, b), c)) in x0
            .iter_mut()
            .zip(x1.iter_mut())
            .zip(x2.iter_mut())
            .enumerate()
        {
            let mut p = affine::apply(&plan.head, [fi, fj, k as f64]);
            if let Some([u0, u1, u2]) = u {
                p = [
                    p[0] + u0[k] as f64,
                    p[1] + u1[k] as f64,
                    p[2] + u2[k] as f64,
                ];
            }
            let p = plan.map_from(affine::apply(matrix, p), [i, j, k], 1);
            *a = p[0];
            *b = p[1];
            *c = p[2];
        }
    } else {
        for (k, ((a, b), c)) in x0
            .iter_mut()
            .zip(x1.iter_mut())
            .zip(x2.iter_mut())
            .enumerate()
        {
            let p = plan.map([fi, fj, k as f64], [i, j, k]);
            *a = p[0];
            *b = p[1];
            *c = p[2];
        }
    }
}

/// Axis `d` of the points `head (i, j, k) + u(k)` along the output row
/// `(i, j)` (without `u` where the row has no displacement), as
/// `affine::apply` and `Plan::map` compute them (the same operations in the
/// same order, so bit-identical), one axis at a time so that the loop
/// vectorises.
#[inline(always)]
fn head_plus_displacement(
    head: &affine::Matrix4,
    fi: f64,
    fj: f64,
    u: Option<&[f32]>,
    d: usize,
    points: &mut [f64],
) {
    let h = head[d];
    // The first two products do not depend on k: the same value for every point.
    let ij = h[0] * fi + h[1] * fj;
    let at = |k: usize| ij + h[2] * (k as i32 as f64) + h[3];
    match u {
        Some(u) => {
            for (k, (p, &u)) in points.iter_mut().zip(u).enumerate() {
                *p = at(k) + u as f64;
            }
        }
        None => {
            for (k, p) in points.iter_mut().enumerate() {
                *p = at(k);
            }
        }
    }
}

/// Branch-free per-axis constants of the inside test and nearest rounding.
///
/// With `t = x 2^32 + 2^31 + 1/2` (`S = 2^32` is [`SNAP_SCALE`]), `snap(x) >= -1/2`
/// iff `t >= 0`, `snap(x) < n - 1/2` iff `t < n S`, and the nearest index
/// `floor(snap(x) + 1/2)` is `floor(t) >> 32`. Flat axes use scale 0, so `t`
/// is constant, inside, and rounds to index 0.
#[derive(Clone, Copy)]
struct AxisRule {
    scale: f64,
    limit: f64,
    last: f64,
    below_last: f64,
}

/// Offset `S / 2 + 1/2` of the snapped inside test and nearest rounding.
pub(super) const SNAP_OFFSET: f64 = SNAP_SCALE / 2.0 + 0.5;

impl AxisRule {
    fn new(n: usize) -> Self {
        let scale = if n == 1 { 0.0 } else { SNAP_SCALE };
        Self {
            scale,
            limit: n as f64 * SNAP_SCALE,
            last: (n - 1) as f64,
            below_last: n.saturating_sub(2) as f64,
        }
    }

    /// Nearest index and whether `x` is inside (outside points get a valid index).
    #[inline(always)]
    fn nearest(&self, x: f64) -> (usize, bool) {
        let t = x * self.scale + SNAP_OFFSET;
        let ok = t >= 0.0 && t < self.limit;
        let clamped = t.max(0.0).min(self.limit - 1.0);
        ((clamped as i64 >> SNAP_SHIFT) as usize, ok)
    }

    /// Lower neighbour (at most `n - 2`, so the upper one is always `+ 1`
    /// except on flat axes), weight of the upper one for `x` clamped to
    /// `[0, n - 1]`, and whether `x` is inside.
    #[inline(always)]
    fn linear<W: Real>(&self, x: f64) -> (usize, W, bool) {
        let t = x * self.scale + SNAP_OFFSET;
        let ok = t >= 0.0 && t < self.limit;
        let xc = x.max(0.0).min(self.last);
        // `xc >= 0`, so truncation is the floor.
        let base = ((xc as i64) as f64).min(self.below_last);
        (base as i64 as usize, W::of(xc - base), ok)
    }
}

/// Nearest neighbour for the points `run` of one output row (which starts at
/// `start` in its plane) of every channel.
#[inline(always)]
fn nearest_row<T: Voxel, W: Real>(
    job: &RowJob<'_, T>,
    scratch: &mut RowScratch<W>,
    planes: &mut [&mut [T]],
    start: usize,
    run: Range<usize>,
) {
    let (source, fill) = (job.source, job.fill);
    let [_, nj, nk] = source.dims;
    let [ri, rj, rk] = source.dims.map(AxisRule::new);
    let [x0, x1, x2] = scratch.x.each_ref().map(|x| &x[run.clone()]);
    let offsets = &mut scratch.offsets[run.clone()];
    let valid = &mut scratch.valid[run.clone()];
    let mut vector_done = false;
    #[cfg(target_arch = "x86_64")]
    if job.vector {
        // SAFETY: `vector` is only set when the CPU has AVX2 and the volume
        // fits (see `run_rows`); the slices all hold the run's points.
        vector_done = unsafe { simd::nearest_taps([x0, x1, x2], source.dims, offsets, valid) };
    }
    if !vector_done {
        let taps = offsets.iter_mut().zip(valid.iter_mut());
        for ((((offset, valid), &a), &b), &c) in taps.zip(x0).zip(x1).zip(x2) {
            let (i, oi) = ri.nearest(a);
            let (j, oj) = rj.nearest(b);
            let (k, ok) = rk.nearest(c);
            *offset = (i * nj + j) * nk + k;
            *valid = oi & oj & ok;
        }
    }
    let (offsets, valid) = (&*offsets, &*valid);
    for ((plane, data), &fill) in planes
        .iter_mut()
        .zip(source.data.chunks_exact(source.channel_len))
        .zip(fill)
    {
        let Some(out) = plane.get_mut(start + run.start..start + run.end) else {
            continue;
        };
        if job.prefetch != 0 {
            prefetch_taps(data, offsets, job.prefetch);
        }
        for ((o, &offset), &valid) in out.iter_mut().zip(offsets).zip(valid) {
            let value = data[offset];
            *o = if valid { value } else { fill };
        }
    }
}

/// Asks for the cache lines that the taps `ahead` voxels past `offsets` lie
/// in: those of row `j + ROWS_AHEAD`, whose gather then finds them cached.
///
/// A row tilted through input planes reads a few voxels of each of many
/// rows, which the hardware prefetchers do not follow: without this, the
/// nearest-neighbour gather of a rotated 1 mm label map waited on the cache
/// for most of its time. One hint per [`PREFETCH_STEP`] taps (and for the
/// last) covers the lines, since consecutive taps mostly share them.
#[inline(always)]
fn prefetch_taps<T>(data: &[T], offsets: &[usize], ahead: isize) {
    let base = data.as_ptr();
    let hint = |offset: usize| {
        // `wrapping_offset` forms the address without claiming that it lies
        // in the buffer; the hint never faults.
        crate::stream::prefetch(base.wrapping_offset(offset as isize + ahead).cast());
    };
    offsets
        .iter()
        .step_by(PREFETCH_STEP)
        .for_each(|&offset| hint(offset));
    if let Some(&offset) = offsets.last() {
        hint(offset);
    }
}

/// Taps per prefetch hint of [`prefetch_taps`].
const PREFETCH_STEP: usize = 8;

/// Trilinear interpolation for the points `run` of one output row (which
/// starts at `start` in its plane) of every channel.
#[inline(always)]
fn linear_row<T: Voxel, W: Real>(
    job: &RowJob<'_, T>,
    scratch: &mut RowScratch<W>,
    planes: &mut [&mut [T]],
    start: usize,
    run: Range<usize>,
) {
    let (source, fill) = (job.source, job.fill);
    let [_, nj, nk] = source.dims;
    let out_range = start + run.start..start + run.end;
    // Neighbour strides (zero along flat axes).
    let dk = usize::from(nk > 1);
    let dj = if nj > 1 { nk } else { 0 };
    let di = if source.dims[0] > 1 { nj * nk } else { 0 };
    #[cfg(target_arch = "x86_64")]
    if job.vector {
        let geometry = simd::Geometry {
            dims: source.dims,
            strides: [di, dj, dk],
            prefetch: job.prefetch,
        };
        let [x0, x1, x2] = scratch.x.each_ref().map(|x| &x[run.clone()]);
        let mut written = true;
        let channels = source.data.chunks_exact(source.channel_len);
        for (c, ((plane, data), &fill)) in planes.iter_mut().zip(channels).zip(fill).enumerate() {
            let (Some(data), Some(out)) = (
                T::as_f32(data),
                plane.get_mut(out_range.clone()).and_then(T::as_f32_mut),
            ) else {
                written = false;
                break;
            };
            // SAFETY: `vector` is only set for f32 volumes that fit, on CPUs
            // with AVX2 (see `run_rows`); the slices all hold the run's points.
            // The fill is a value of the volume's type, here f32, so exact.
            let fill = fill.to_f64() as f32;
            // A row too short for a vector step is so for every channel.
            // The extents are only computed for affine-only plans, as the kernel requires.
            let background = job.backgrounds.get(c).and_then(Option::as_ref);
            written =
                unsafe { simd::linear_f32(data, [x0, x1, x2], &geometry, background, fill, out) };
            if !written {
                break;
            }
        }
        if written {
            return;
        }
    }
    let [ri, rj, rk] = source.dims.map(AxisRule::new);
    let [x0, x1, x2] = scratch.x.each_ref().map(|x| &x[run.clone()]);
    let [w0, w1, w2] = scratch.weights.each_mut().map(|w| &mut w[run.clone()]);
    let offsets = &mut scratch.offsets[run.clone()];
    let valid = &mut scratch.valid[run.clone()];
    let taps = offsets
        .iter_mut()
        .zip(valid.iter_mut())
        .zip(w0.iter_mut())
        .zip(w1.iter_mut())
        .zip(w2.iter_mut());
    let coordinates = x0.iter().zip(x1).zip(x2);
    for (((((offset, valid), wa), wb), wc), ((&a, &b), &c)) in taps.zip(coordinates) {
        let (i, ua, oa) = ri.linear::<W>(a);
        let (j, ub, ob) = rj.linear::<W>(b);
        let (k, uc, oc) = rk.linear::<W>(c);
        *offset = (i * nj + j) * nk + k;
        *valid = oa & ob & oc;
        (*wa, *wb, *wc) = (ua, ub, uc);
    }
    let (w0, w1, w2, offsets, valid) = (&*w0, &*w1, &*w2, &*offsets, &*valid);
    for ((plane, data), &fill) in planes
        .iter_mut()
        .zip(source.data.chunks_exact(source.channel_len))
        .zip(fill)
    {
        let Some(out) = plane.get_mut(out_range.clone()) else {
            continue;
        };
        let taps = offsets.iter().zip(valid).zip(w0).zip(w1).zip(w2);
        for (o, ((((&offset, &valid), &wa), &wb), &wc)) in out.iter_mut().zip(taps) {
            let Some(cell) = data.get(offset..=offset + di + dj + dk) else {
                continue;
            };
            let at = |d: usize| W::of(cell[d].to_f64());
            let c00 = W::lerp(at(0), at(dk), wc);
            let c01 = W::lerp(at(dj), at(dj + dk), wc);
            let c10 = W::lerp(at(di), at(di + dk), wc);
            let c11 = W::lerp(at(di + dj), at(di + dj + dk), wc);
            let value = W::lerp(W::lerp(c00, c01, wb), W::lerp(c10, c11, wb), wa);
            *o = if valid { convert(value.get()) } else { fill };
        }
    }
}

/// Writes zeros over a plane of a freshly allocated output and returns it
/// initialised.
fn initialise<T: Voxel>(plane: &mut [MaybeUninit<T>]) -> &mut [T] {
    for value in plane.iter_mut() {
        value.write(T::default());
    }
    // SAFETY: every element was just written, and `MaybeUninit<T>` has the
    // layout of `T`.
    unsafe { &mut *(plane as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Which row kernel [`resample_rows`] applies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum RowMode {
    Nearest,
    Linear,
}

/// What every row of one resampling shares.
struct RowJob<'a, T> {
    mode: RowMode,
    source: &'a Source<'a, T>,
    fill: &'a [T],
    plan: &'a Plan<'a>,
    /// The vector kernels of `simd` apply: AVX2 is present, the volume fits
    /// their `i32` lanes, and (for trilinear rows) the voxels are `f32`.
    vector: bool,
    /// Voxel distance between the input taps of row `j` and row `j + ROWS_AHEAD`.
    prefetch: isize,
    /// Per channel, where the input rows leave their background (vector
    /// trilinear rows of affine-only plans only; empty otherwise).
    backgrounds: Vec<Option<RowExtents>>,
    /// The only output voxels to compute (all of them if `None`).
    regions: Option<&'a Regions>,
}

/// How many rows ahead the vector kernel prefetches.
const ROWS_AHEAD: f64 = 2.0;

/// Voxel distance between the input taps of output rows `j` and
/// `j + ROWS_AHEAD` of an affine-only plan (0 for plans with fields).
fn prefetch_distance(plan: &Plan<'_>, dims: [usize; 3]) -> isize {
    if !plan.fields.is_empty() {
        return 0;
    }
    let step = affine::column(&plan.head, 1);
    let strides = [(dims[1] * dims[2]) as f64, dims[2] as f64, 1.0];
    let distance: f64 = (0..3).map(|d| ROWS_AHEAD * step[d] * strides[d]).sum();
    if distance.is_finite() {
        distance.round() as isize
    } else {
        0
    }
}

/// Output points per input voxel below which scanning the input for its
/// background costs more than skipping it saves.
const BACKGROUND_MIN_DENSITY: usize = 16;

/// Per channel of an `f32` source, where its rows leave their background,
/// for affine-only plans whose output is large enough to repay the scan
/// (empty otherwise). `outputs` counts the output values of every channel.
fn backgrounds<T: Voxel>(
    source: &Source<'_, T>,
    plan: &Plan<'_>,
    outputs: usize,
) -> Vec<Option<RowExtents>> {
    let Some(data) = T::as_f32(source.data) else {
        return Vec::new();
    };
    if !plan.fields.is_empty() || outputs * BACKGROUND_MIN_DENSITY < data.len() {
        return Vec::new();
    }
    data.chunks_exact(source.channel_len)
        .map(|channel| RowExtents::of(channel, source.dims))
        .collect()
}

/// Computes output plane `i` (every channel) row by row.
#[inline(always)]
fn plane_body<T: Voxel, W: Real>(
    job: &RowJob<'_, T>,
    i: usize,
    nj: usize,
    scratch: &mut RowScratch<W>,
    planes: &mut [&mut [T]],
) {
    let nk = scratch.offsets.len();
    let whole = [[0, nk]];
    for j in 0..nj {
        let runs: &[[usize; 2]] = match job.regions {
            Some(regions) => regions.row(i, j),
            None => &whole,
        };
        if runs.is_empty() {
            continue;
        }
        let span = runs[0][0]..runs[runs.len() - 1][1];
        row_coordinates(
            job.plan,
            i,
            j,
            span,
            &mut scratch.x,
            &mut scratch.lazy,
            &mut scratch.points,
        );
        for &[k0, k1] in runs {
            match job.mode {
                RowMode::Nearest => nearest_row(job, scratch, planes, j * nk, k0..k1),
                RowMode::Linear => linear_row(job, scratch, planes, j * nk, k0..k1),
            }
        }
    }
}

/// [`plane_body`] compiled with AVX2 and FMA available (wider vectors for the
/// coordinate and tap arithmetic; no fused operations are introduced).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn plane_body_avx2<T: Voxel, W: Real>(
    job: &RowJob<'_, T>,
    i: usize,
    nj: usize,
    scratch: &mut RowScratch<W>,
    planes: &mut [&mut [T]],
) {
    plane_body(job, i, nj, scratch, planes)
}

/// Nearest or trilinear resampling of `source` onto a new `(C, oi, oj, ok)`
/// array, row by row: the input coordinates of a row are computed once
/// (incrementally for affine chains), turned into taps (offsets and weights)
/// once, and every channel is gathered from them. Rows of at least eight
/// points go through the vector kernels where they apply and `allow_vector`
/// is set (tests clear it to check them against the scalar kernels).
/// Weights and sums are `f32` for `f32` volumes, `f64` otherwise.
///
/// With `regions`, only the voxels they cover are computed; the others are
/// zero.
///
/// The output is not zero-filled by the allocator (one thread writing the
/// whole volume before the kernel starts): each task zeroes its own planes
/// just before computing them, while they sit in cache.
pub(super) fn resample_rows<T: Voxel>(
    mode: RowMode,
    source: &Source<'_, T>,
    fill: &[T],
    plan: &Plan<'_>,
    shape: (usize, usize, usize, usize),
    allow_vector: bool,
    regions: Option<&Regions>,
) -> Result<Array4<T>> {
    let mut output = Array4::<T>::uninit(shape);
    if T::IS_FLOAT && std::mem::size_of::<T>() == 4 {
        run_rows::<T, f32>(mode, source, fill, plan, &mut output, allow_vector, regions)?;
    } else {
        run_rows::<T, f64>(mode, source, fill, plan, &mut output, allow_vector, regions)?;
    }
    // SAFETY: `run_rows` initialises every plane of every channel.
    Ok(unsafe { output.assume_init() })
}

/// [`resample_rows`] into `output`, whose planes it initialises.
fn run_rows<T: Voxel, W: Real>(
    mode: RowMode,
    source: &Source<'_, T>,
    fill: &[T],
    plan: &Plan<'_>,
    output: &mut Array4<MaybeUninit<T>>,
    allow_vector: bool,
    regions: Option<&Regions>,
) -> Result<()> {
    let (c, ni, nj, nk) = output.dim();
    if let Some(regions) = regions {
        if regions.shape() != [ni, nj, nk] {
            return Err(Error::Shape(format!(
                "regions of a {:?} grid given for an output of {:?}",
                regions.shape(),
                [ni, nj, nk]
            )));
        }
    }
    let Some(buffer) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    #[cfg(target_arch = "x86_64")]
    let (wide, vector) = {
        let wide = simd::available();
        let typed = mode == RowMode::Nearest || T::as_f32(source.data).is_some();
        (
            wide,
            allow_vector && wide && typed && simd::fits(source.dims),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector = {
        let _ = allow_vector;
        false
    };
    let job = RowJob {
        mode,
        source,
        fill,
        plan,
        vector,
        prefetch: prefetch_distance(plan, source.dims),
        backgrounds: if mode == RowMode::Linear && vector {
            backgrounds(source, plan, buffer.len())
        } else {
            Vec::new()
        },
        regions,
    };
    split_planes(buffer, c, nj * nk)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || RowScratch::<W>::new(nk),
            |scratch, (i, planes)| {
                let mut planes: Vec<&mut [T]> = planes.into_iter().map(initialise).collect();
                #[cfg(target_arch = "x86_64")]
                if wide {
                    // SAFETY: the CPU supports every feature the function is compiled for.
                    unsafe { plane_body_avx2(&job, i, nj, scratch, &mut planes) };
                    return;
                }
                plane_body(&job, i, nj, scratch, &mut planes);
            },
        );
    Ok(())
}
