//! Aggregating a grid of predicted patches back into one volume, in place.
//!
//! Three overlap modes, with TorchIO's semantics:
//! - `Crop`: each patch writes the region left after trimming half the
//!   overlap on each side, except on sides touching the volume border (or on
//!   every side when the sampler padded the volume); later patches overwrite.
//! - `Average`: patches are summed and a weight volume counts contributions.
//! - `Hann`: patches are multiplied by a separable Hann window (the 1D window
//!   is `torch.hann_window(n + 2, periodic=False)[1:-1]`) and the windows are
//!   summed into the weight volume.
//!
//! Locations are in input-volume voxels; with a `downsampling_factor` `d`
//! they are floor-divided by `d` (in every mode) and the overlap is divided
//! too, so a model whose output is `d` times smaller aggregates correctly.
//!
//! Work is split by output `I` planes: each task walks the whole batch in
//! order for its planes, so there are no write races and the result is the
//! same whatever the thread count.

use ndarray::{s, Array1, Array4, ArrayView4, ArrayView5, ArrayViewMut3, ArrayViewMut4, Axis};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::volume::{zeroed, Voxel};

/// How overlapping patches are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapMode {
    /// Trim half the overlap and write.
    Crop,
    /// Sum patches and count contributions.
    Average,
    /// Sum Hann-weighted patches and windows.
    Hann,
}

impl std::str::FromStr for OverlapMode {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "crop" => Ok(Self::Crop),
            "average" => Ok(Self::Average),
            "hann" => Ok(Self::Hann),
            other => Err(Error::InvalidArgument(format!(
                "overlap mode must be \"crop\", \"average\" or \"hann\", got \"{other}\""
            ))),
        }
    }
}

/// Voxel types that can be accumulated: `+` and `*` in the type itself.
pub trait Accumulate: Voxel {
    /// `self + other` (wrapping for integers, like PyTorch).
    fn add(self, other: Self) -> Self;
    /// `self + value * weight`.
    fn add_product(self, value: Self, weight: Self) -> Self;
}

macro_rules! impl_accumulate_float {
    ($t:ty) => {
        impl Accumulate for $t {
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                self + other
            }
            #[inline(always)]
            fn add_product(self, value: Self, weight: Self) -> Self {
                self + value * weight
            }
        }
    };
}

macro_rules! impl_accumulate_int {
    ($t:ty) => {
        impl Accumulate for $t {
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            #[inline(always)]
            fn add_product(self, value: Self, weight: Self) -> Self {
                self.wrapping_add(value.wrapping_mul(weight))
            }
        }
    };
}

impl_accumulate_float!(f32);
impl_accumulate_float!(f64);
impl_accumulate_int!(u8);
impl_accumulate_int!(i16);
impl_accumulate_int!(i32);
impl_accumulate_int!(i64);

/// Geometry of the grid the patches come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Patch overlap in input voxels (even, as the grid sampler requires).
    pub overlap: [usize; 3],
    /// Whether the grid sampler padded the volume by half the overlap.
    pub padded: bool,
    /// Factor by which the output is smaller than the input (>= 1).
    pub downsampling_factor: usize,
}

/// The 1D window `torch.hann_window(n + 2, periodic=False)[1:-1]`:
/// `0.5 - 0.5 cos(2 pi m / (n + 1))` for `m = 1..=n`, evaluated in `f32`
/// as PyTorch does for float32 windows.
pub fn hann_window(n: usize) -> Array1<f32> {
    let step = 2.0 * std::f32::consts::PI / (n as f32 + 1.0);
    Array1::from_iter((1..=n).map(|m| 0.5 - 0.5 * (step * m as f32).cos()))
}

/// Where one patch lands: output start, patch start and extent per axis.
#[derive(Debug, Clone, Copy)]
struct Placement {
    out_start: [usize; 3],
    patch_start: [usize; 3],
    extent: [usize; 3],
}

fn place_patches(
    locations: &[[i64; 6]],
    patch_shape: [usize; 3],
    output_shape: [usize; 3],
    mode: OverlapMode,
    grid: Grid,
) -> Result<Vec<Placement>> {
    let d = grid.downsampling_factor as i64;
    let mut placements = Vec::with_capacity(locations.len());
    for location in locations {
        let mut placement = Placement {
            out_start: [0; 3],
            patch_start: [0; 3],
            extent: [0; 3],
        };
        for axis in 0..3 {
            let (ini, fin) = (location[axis], location[axis + 3]);
            if ini < 0 || fin < ini {
                return Err(Error::InvalidArgument(format!(
                    "location {location:?} is not (i0, j0, k0, i1, j1, k1) with 0 <= start <= end"
                )));
            }
            let (ini, fin) = ((ini / d) as usize, (fin / d) as usize);
            if fin - ini != patch_shape[axis] {
                let target: Vec<i64> = (0..3)
                    .map(|a| location[a + 3] / d - location[a] / d)
                    .collect();
                return Err(Error::Shape(format!(
                    "the shape of the input batch, {patch_shape:?}, does not match the shape \
                     of the target location, which is {target:?}"
                )));
            }
            if fin > output_shape[axis] {
                return Err(Error::Shape(format!(
                    "location {location:?} (downsampled by {d}) exceeds the output spatial \
                     shape {output_shape:?}"
                )));
            }
            let (mut crop_ini, mut crop_fin) = (0, 0);
            if mode == OverlapMode::Crop {
                let half = grid.overlap[axis] / grid.downsampling_factor / 2;
                if grid.padded || ini > 0 {
                    crop_ini = half;
                }
                if grid.padded || fin != output_shape[axis] {
                    crop_fin = half;
                }
            }
            let extent = patch_shape[axis].saturating_sub(crop_ini + crop_fin);
            placement.out_start[axis] = ini + crop_ini;
            placement.patch_start[axis] = crop_ini;
            placement.extent[axis] = extent;
        }
        placements.push(placement);
    }
    Ok(placements)
}

/// Accumulates patches `(B, C, pi, pj, pk)` at `locations` (`(B, 6)` rows
/// `i0, j0, k0, i1, j1, k1` in input voxels) into `output` `(C, I, J, K)`.
///
/// `weights` `(1, I, J, K)`, if given for `Average` and `Hann`, receives the
/// counts or summed windows (divide `output` by it at the end); without it only
/// the sum is accumulated, for a caller that normalises with [`grid_profiles`].
/// It is ignored for `Crop`. `Hann` needs a float voxel type.
pub fn add_batch<T: Accumulate>(
    output: ArrayViewMut4<'_, T>,
    weights: Option<ArrayViewMut4<'_, T>>,
    patches: ArrayView5<'_, T>,
    locations: &[[i64; 6]],
    mode: OverlapMode,
    grid: Grid,
) -> Result<()> {
    accumulate(output, weights, patches, locations, mode, grid, None, None)
}

/// [`add_batch`] into an `output` whose `I` planes flagged in `stale` (one
/// flag per plane) hold leftover values rather than zeros: each such plane
/// that a patch of the batch reaches is zeroed just before its first
/// contribution, and its flag cleared.
///
/// For a caller that recycles an output volume in the `Average` and `Hann`
/// modes: zeroing a plane while the batch is about to accumulate into it
/// costs a write to cached memory, where zeroing the whole volume up front is
/// one more pass over memory. Planes no patch reaches keep their flag (and
/// their contents) for the caller to zero. `stale` is ignored in `Crop` mode,
/// whose patches overwrite only part of a plane.
///
/// Errors: those of [`add_batch`], and `stale` not of length `I`.
pub fn add_batch_zeroing_stale<T: Accumulate>(
    output: ArrayViewMut4<'_, T>,
    weights: Option<ArrayViewMut4<'_, T>>,
    patches: ArrayView5<'_, T>,
    locations: &[[i64; 6]],
    mode: OverlapMode,
    grid: Grid,
    stale: &mut [bool],
) -> Result<()> {
    let planes = output.dim().1;
    if stale.len() != planes {
        return Err(Error::Shape(format!(
            "stale must hold one flag per output plane ({planes}), got {}",
            stale.len()
        )));
    }
    let stale = (mode != OverlapMode::Crop).then_some(stale);
    accumulate(output, weights, patches, locations, mode, grid, stale, None)
}

/// [`add_batch_zeroing_stale`] without a weight volume (`Average` or `Hann`),
/// which also divides each `I` plane flagged in `complete` by its weights
/// `P0[i] P1[j] P2[k]` (the `profiles` of [`grid_profiles`]) once the batch
/// has been added to it.
///
/// For a caller that knows which planes have received every patch of their
/// full grid: dividing a plane right after its last contribution, while it
/// is still in cache, replaces a pass over the whole volume at the end. The
/// quotient is that of [`divide_by_profiles_in_place`], bit for bit.
///
/// Errors: those of [`add_batch_zeroing_stale`], `Crop` mode, and `complete`
/// or `profiles` that do not match the output's planes.
#[allow(clippy::too_many_arguments)]
pub fn add_batch_dividing_complete<T: Quotient>(
    output: ArrayViewMut4<'_, T>,
    patches: ArrayView5<'_, T>,
    locations: &[[i64; 6]],
    mode: OverlapMode,
    grid: Grid,
    stale: &mut [bool],
    complete: &[bool],
    profiles: &[Vec<T>; 3],
) -> Result<()> {
    if mode == OverlapMode::Crop {
        return Err(Error::InvalidArgument(
            "crop aggregation has no weights to divide by".into(),
        ));
    }
    let (_, planes, _, _) = output.dim();
    check_profiles(output.dim(), profiles)?;
    if stale.len() != planes || complete.len() != planes {
        return Err(Error::Shape(format!(
            "stale and complete must hold one flag per output plane ({planes}), got {} and {}",
            stale.len(),
            complete.len()
        )));
    }
    let divide = |i: usize, plane: &mut ArrayViewMut3<'_, T>| {
        if !complete[i] {
            return;
        }
        for mut channel in plane.outer_iter_mut() {
            if let Some(values) = channel.as_slice_mut() {
                divide_plane(values, None, i, profiles);
            }
        }
    };
    let finish: &PlaneHook<'_, T> = &divide;
    accumulate(
        output,
        None,
        patches,
        locations,
        mode,
        grid,
        Some(stale),
        Some(finish),
    )
}

/// Work done on output plane `i` after the batch has been added to it.
type PlaneHook<'h, T> = dyn Fn(usize, &mut ArrayViewMut3<'_, T>) + Sync + 'h;

#[allow(clippy::too_many_arguments)]
fn accumulate<T: Accumulate>(
    mut output: ArrayViewMut4<'_, T>,
    weights: Option<ArrayViewMut4<'_, T>>,
    patches: ArrayView5<'_, T>,
    locations: &[[i64; 6]],
    mode: OverlapMode,
    grid: Grid,
    stale: Option<&mut [bool]>,
    finish: Option<&PlaneHook<'_, T>>,
) -> Result<()> {
    let (batch, channels, pi, pj, pk) = patches.dim();
    let (out_channels, oi, oj, ok) = output.dim();
    if batch != locations.len() {
        return Err(Error::Shape(format!(
            "batch holds {batch} patches but {} locations were given",
            locations.len()
        )));
    }
    if channels != out_channels {
        return Err(Error::Shape(format!(
            "patches have {channels} channels but the output has {out_channels}"
        )));
    }
    if grid.downsampling_factor == 0 {
        return Err(Error::InvalidArgument(
            "downsampling factor must be a positive integer, got 0".into(),
        ));
    }
    if mode == OverlapMode::Hann && !T::IS_FLOAT {
        return Err(Error::InvalidArgument(
            "hann aggregation needs float32 or float64 patches".into(),
        ));
    }
    let unit_stride = |strides: &[isize], extent: usize| extent <= 1 || strides.last() == Some(&1);
    if !unit_stride(output.strides(), ok) || !unit_stride(patches.strides(), pk) {
        return Err(Error::Shape(
            "output and patches must be contiguous along their last axis".into(),
        ));
    }
    let weights = match (mode, weights) {
        (OverlapMode::Crop, _) => None,
        (_, Some(w)) => {
            if !unit_stride(w.strides(), ok) {
                return Err(Error::Shape(
                    "weights must be contiguous along their last axis".into(),
                ));
            }
            if w.dim() != (1, oi, oj, ok) {
                return Err(Error::Shape(format!(
                    "weights must have shape {:?}, got {:?}",
                    (1, oi, oj, ok),
                    w.shape()
                )));
            }
            Some(w)
        }
        // Only the (weighted) sum: the caller normalises by weights it derives
        // from the locations (see `grid_profiles`).
        (_, None) => None,
    };
    let placements = place_patches(locations, [pi, pj, pk], [oi, oj, ok], mode, grid)?;
    let windows: [Vec<T>; 3] = [pi, pj, pk].map(|n| {
        hann_window(n)
            .iter()
            .map(|&v| T::from_f64(f64::from(v)))
            .collect()
    });
    let windows = &windows;
    let placements = &placements;
    let patches = &patches;
    let add_to_plane = |i: usize,
                        out_plane: &mut ArrayViewMut3<'_, T>,
                        mut weight_plane: Option<ArrayViewMut3<'_, T>>,
                        stale: Option<&mut bool>| {
        // The patches that reach this plane, in batch order, each with the
        // patch plane it contributes.
        let reaching: Vec<(usize, &Placement, usize)> = placements
            .iter()
            .enumerate()
            .filter(|(_, p)| i >= p.out_start[0] && i < p.out_start[0] + p.extent[0])
            .map(|(n, p)| (n, p, p.patch_start[0] + (i - p.out_start[0])))
            .collect();
        if let Some(flag) = stale {
            if *flag && !reaching.is_empty() {
                out_plane.fill(T::default());
                *flag = false;
            }
        }
        let Some(rows) = covered_rows(&reaching) else {
            return;
        };
        // Output rows in order, and within a row the patches in batch order:
        // the plane is written front to back (neighbouring patches fill
        // adjacent pieces of a row), which the prefetchers follow, while every
        // voxel still receives its contributions in the batch's order.
        for c in 0..channels {
            let sources: Vec<_> = reaching
                .iter()
                .map(|&(n, _, pi_index)| patches.slice(s![n, c, pi_index, .., ..]))
                .collect();
            let mut target = out_plane.index_axis_mut(Axis(0), c);
            for j in rows.clone() {
                let mut dst_row = target.row_mut(j);
                let Some(dst_row) = dst_row.as_slice_mut() else {
                    continue;
                };
                for (&(_, p, pi_index), source) in reaching.iter().zip(&sources) {
                    let Some(piece) = row_piece(p, j) else {
                        continue;
                    };
                    let src_row = source.row(piece.patch_row);
                    let Some(src) = src_row.as_slice() else {
                        continue;
                    };
                    let src = &src[piece.patch_k.clone()];
                    let dst = &mut dst_row[piece.out_k.clone()];
                    match mode {
                        OverlapMode::Crop => dst.copy_from_slice(src),
                        OverlapMode::Average => {
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = d.add(v);
                            }
                        }
                        OverlapMode::Hann => {
                            let (wij, wk) = piece.hann_weights(windows, pi_index);
                            for ((d, &v), &w) in dst.iter_mut().zip(src).zip(wk) {
                                *d = d.add_product(v, mul(wij, w));
                            }
                        }
                    }
                }
            }
        }
        if let Some(weight_plane) = weight_plane.as_mut() {
            let mut target = weight_plane.index_axis_mut(Axis(0), 0);
            for j in rows {
                let mut dst_row = target.row_mut(j);
                let Some(dst_row) = dst_row.as_slice_mut() else {
                    continue;
                };
                for &(_, p, pi_index) in &reaching {
                    let Some(piece) = row_piece(p, j) else {
                        continue;
                    };
                    let dst = &mut dst_row[piece.out_k.clone()];
                    match mode {
                        OverlapMode::Average => {
                            let one = T::from_f64(1.0);
                            dst.iter_mut().for_each(|d| *d = d.add(one));
                        }
                        OverlapMode::Hann => {
                            let (wij, wk) = piece.hann_weights(windows, pi_index);
                            for (d, &w) in dst.iter_mut().zip(wk) {
                                *d = d.add(mul(wij, w));
                            }
                        }
                        OverlapMode::Crop => {}
                    }
                }
            }
        }
    };
    let out_planes = output.axis_iter_mut(Axis(1));
    let mut weights = weights;
    let weight_planes: Vec<Option<ArrayViewMut3<'_, T>>> = match weights.as_mut() {
        Some(w) => w.axis_iter_mut(Axis(1)).map(Some).collect(),
        None => (0..oi).map(|_| None).collect(),
    };
    let flags: Vec<Option<&mut bool>> = match stale {
        Some(stale) => stale.iter_mut().map(Some).collect(),
        None => (0..oi).map(|_| None).collect(),
    };
    let planes: Vec<_> = out_planes.zip(weight_planes).zip(flags).collect();
    crate::parallel::share_items(planes, |i, ((mut out_plane, weight_plane), flag)| {
        add_to_plane(i, &mut out_plane, weight_plane, flag);
        if let Some(finish) = finish {
            finish(i, &mut out_plane);
        }
    })
}

/// The output rows (J) that any of `reaching` covers, or `None` if none.
fn covered_rows(reaching: &[(usize, &Placement, usize)]) -> Option<std::ops::Range<usize>> {
    let first = reaching.iter().map(|(_, p, _)| p.out_start[1]).min()?;
    let end = reaching
        .iter()
        .map(|(_, p, _)| p.out_start[1] + p.extent[1])
        .max()?;
    Some(first..end)
}

/// Where an output row meets the patch placed there: the patch's row, and
/// the K ranges of the piece in the patch and in the output.
struct RowPiece {
    patch_row: usize,
    patch_k: std::ops::Range<usize>,
    out_k: std::ops::Range<usize>,
}

impl RowPiece {
    /// The Hann weight of the piece's row in patch plane `pi_index`
    /// (multiplied in PyTorch's order), and the K window along the piece.
    fn hann_weights<'w, T: Accumulate>(
        &self,
        windows: &'w [Vec<T>; 3],
        pi_index: usize,
    ) -> (T, &'w [T]) {
        (
            mul(windows[0][pi_index], windows[1][self.patch_row]),
            &windows[2][self.patch_k.clone()],
        )
    }
}

/// The piece of output row `j` that the patch placed by `p` covers, if any.
#[inline]
fn row_piece(p: &Placement, j: usize) -> Option<RowPiece> {
    let jj = j
        .checked_sub(p.out_start[1])
        .filter(|&jj| jj < p.extent[1])?;
    let (pk0, k0, ek) = (p.patch_start[2], p.out_start[2], p.extent[2]);
    Some(RowPiece {
        patch_row: p.patch_start[1] + jj,
        patch_k: pk0..pk0 + ek,
        out_k: k0..k0 + ek,
    })
}

/// Float voxels, which the normalisation of averaged outputs divides.
pub trait Quotient: Accumulate {
    /// `self / other`.
    fn div(self, other: Self) -> Self;
}

impl Quotient for f32 {
    #[inline(always)]
    fn div(self, other: Self) -> Self {
        self / other
    }
}

impl Quotient for f64 {
    #[inline(always)]
    fn div(self, other: Self) -> Self {
        self / other
    }
}

/// Per-axis weight profiles of a full grid of patches.
///
/// When the patches of an `Average` or `Hann` aggregation start at every
/// combination of `starts[0] x starts[1] x starts[2]` exactly once, the weight
/// of voxel `(i, j, k)` is the product `P0[i] P1[j] P2[k]` of 1D sums
/// `Pa[x] = sum over s in starts[a] of w(x - s)`, with `w` one (average) or the
/// Hann window (hann) inside the patch: the sum over a product set factorises.
/// Returns the three profiles, of lengths `shape`, so that no weight volume
/// needs to be accumulated (counts are exact; summed windows differ from a
/// voxel-wise sum only by rounding).
///
/// Errors: `Crop` mode, or a patch that does not fit at one of the starts.
pub fn grid_profiles<T: Quotient>(
    starts: [&[usize]; 3],
    patch_shape: [usize; 3],
    shape: [usize; 3],
    mode: OverlapMode,
) -> Result<[Vec<T>; 3]> {
    if mode == OverlapMode::Crop {
        return Err(Error::InvalidArgument(
            "crop aggregation has no weights".into(),
        ));
    }
    let mut profiles: [Vec<T>; 3] = shape.map(|n| vec![T::default(); n]);
    for axis in 0..3 {
        let size = patch_shape[axis];
        let window: Vec<T> = match mode {
            OverlapMode::Hann => hann_window(size)
                .iter()
                .map(|&v| T::from_f64(f64::from(v)))
                .collect(),
            _ => vec![T::from_f64(1.0); size],
        };
        for &start in starts[axis] {
            let Some(span) = profiles[axis].get_mut(start..start + size) else {
                return Err(Error::Shape(format!(
                    "a patch of size {size} at {start} exceeds axis {axis} of length {}",
                    shape[axis]
                )));
            };
            for (p, &w) in span.iter_mut().zip(&window) {
                *p = p.add(w);
            }
        }
    }
    Ok(profiles)
}

fn check_profiles<T>(dim: (usize, usize, usize, usize), profiles: &[Vec<T>; 3]) -> Result<()> {
    let (_, ni, nj, nk) = dim;
    if [profiles[0].len(), profiles[1].len(), profiles[2].len()] != [ni, nj, nk] {
        return Err(Error::Shape(format!(
            "weight profiles of lengths {:?} do not match the output spatial shape {:?}",
            profiles.each_ref().map(Vec::len),
            [ni, nj, nk]
        )));
    }
    Ok(())
}

/// Writes `src / (P0[i] P1[j] P2[k])` into `dst`, one `J x K` plane at output
/// plane `i`; the weight is formed in the same order in every path, so the
/// in-place and the copying division agree bit for bit.
#[inline(always)]
fn divide_plane<T: Quotient>(dst: &mut [T], src: Option<&[T]>, i: usize, profiles: &[Vec<T>; 3]) {
    let [p0, p1, p2] = profiles;
    let nk = p2.len();
    if nk == 0 {
        return;
    }
    for (j, &wj) in p1.iter().enumerate() {
        let wij = mul(p0[i], wj);
        let row = &mut dst[j * nk..(j + 1) * nk];
        match src {
            Some(src) => {
                let src = &src[j * nk..(j + 1) * nk];
                for ((d, &v), &wk) in row.iter_mut().zip(src).zip(p2) {
                    *d = v.div(mul(wij, wk));
                }
            }
            None => {
                for (d, &wk) in row.iter_mut().zip(p2) {
                    *d = d.div(mul(wij, wk));
                }
            }
        }
    }
}

/// `output / (P0[i] P1[j] P2[k])` voxel-wise, into a new `(C, I, J, K)` array,
/// for the `profiles` of [`grid_profiles`]. Voxels no patch covered have
/// weight 0 and become NaN, as in a voxel-wise division.
///
/// Errors: profiles whose lengths are not the spatial shape of `output`.
pub fn divide_by_profiles<T: Quotient>(
    output: ArrayView4<'_, T>,
    profiles: &[Vec<T>; 3],
) -> Result<Array4<T>> {
    check_profiles(output.dim(), profiles)?;
    let source = output.as_standard_layout();
    let mut result = zeroed(output.dim());
    let (_, ni, nj, nk) = output.dim();
    let plane = nj * nk;
    let (Some(src), Some(dst)) = (source.as_slice(), result.as_slice_mut()) else {
        return Err(Error::Shape(
            "arrays in standard layout are contiguous".into(),
        ));
    };
    if plane == 0 || ni == 0 {
        return Ok(result);
    }
    dst.par_chunks_mut(plane)
        .zip(src.par_chunks(plane))
        .enumerate()
        .for_each(|(index, (d, s))| divide_plane(d, Some(s), index % ni, profiles));
    Ok(result)
}

/// [`divide_by_profiles`] in place: `output` (C-contiguous) becomes the
/// quotient, with no new volume (memory already in use is written several
/// times faster than fresh pages) and bit-identical values.
///
/// Errors: profiles that do not match `output`, or a non-contiguous `output`.
pub fn divide_by_profiles_in_place<T: Quotient>(
    output: ArrayViewMut4<'_, T>,
    profiles: &[Vec<T>; 3],
) -> Result<()> {
    let planes = output.dim().1;
    divide_planes_in_place(output, profiles, &vec![true; planes])
}

/// [`divide_by_profiles_in_place`] restricted to the `I` planes flagged in
/// `planes` (one flag per plane); the others are left as they are.
///
/// Errors: those of [`divide_by_profiles_in_place`], and `planes` not of
/// length `I`.
pub fn divide_planes_in_place<T: Quotient>(
    mut output: ArrayViewMut4<'_, T>,
    profiles: &[Vec<T>; 3],
    planes: &[bool],
) -> Result<()> {
    check_profiles(output.dim(), profiles)?;
    let (_, ni, nj, nk) = output.dim();
    if planes.len() != ni {
        return Err(Error::Shape(format!(
            "planes must hold one flag per output plane ({ni}), got {}",
            planes.len()
        )));
    }
    let plane = nj * nk;
    let Some(data) = output.as_slice_mut() else {
        return Err(Error::Shape("output must be C-contiguous".into()));
    };
    if plane == 0 || ni == 0 {
        return Ok(());
    }
    data.par_chunks_mut(plane)
        .enumerate()
        .filter(|(index, _)| planes[index % ni])
        .for_each(|(index, d)| divide_plane(d, None, index % ni, profiles));
    Ok(())
}

/// `a * b` for float voxels (only used in `Hann` mode, which requires floats).
#[inline(always)]
fn mul<T: Accumulate>(a: T, b: T) -> T {
    T::default().add_product(a, b)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::{Array4, Array5};

    fn volume(shape: (usize, usize, usize, usize)) -> Array4<f64> {
        Array4::from_shape_fn(shape, |(c, i, j, k)| {
            (c * 1000 + i * 100 + j * 10 + k) as f64 * 0.5 + 1.0
        })
    }

    /// Grid locations as TorchIO's grid sampler computes them.
    fn grid_locations(shape: [usize; 3], patch: [usize; 3], overlap: [usize; 3]) -> Vec<[i64; 6]> {
        let per_axis: Vec<Vec<usize>> = (0..3)
            .map(|a| {
                let mut v: Vec<usize> = (0..=shape[a] - patch[a])
                    .step_by(patch[a] - overlap[a])
                    .collect();
                if *v.last().unwrap() != shape[a] - patch[a] {
                    v.push(shape[a] - patch[a]);
                }
                v
            })
            .collect();
        let mut out = vec![];
        for &i in &per_axis[0] {
            for &j in &per_axis[1] {
                for &k in &per_axis[2] {
                    out.push([
                        i as i64,
                        j as i64,
                        k as i64,
                        (i + patch[0]) as i64,
                        (j + patch[1]) as i64,
                        (k + patch[2]) as i64,
                    ]);
                }
            }
        }
        out
    }

    fn patches_of(v: &Array4<f64>, locations: &[[i64; 6]], patch: [usize; 3]) -> Array5<f64> {
        let starts: Vec<[usize; 3]> = locations
            .iter()
            .map(|l| [l[0] as usize, l[1] as usize, l[2] as usize])
            .collect();
        crate::patches::extract::extract_patches(v.view(), &starts, patch).unwrap()
    }

    /// A `(2, 11, 9, 7)` volume cut into its full grid of `[5, 4, 3]` patches
    /// (overlap `[2, 2, 0]`): the volume, locations, patches, patch size and grid.
    fn grid_fixture() -> GridFixture {
        let v = volume((2, 11, 9, 7));
        let (patch, overlap) = ([5, 4, 3], [2, 2, 0]);
        let locations = grid_locations([11, 9, 7], patch, overlap);
        let patches = patches_of(&v, &locations, patch);
        let grid = Grid {
            overlap,
            padded: false,
            downsampling_factor: 1,
        };
        (v, locations, patches, patch, grid)
    }

    type GridFixture = (Array4<f64>, Vec<[i64; 6]>, Array5<f64>, [usize; 3], Grid);

    #[test]
    fn every_mode_reconstructs_the_volume() {
        let shape = (2, 11, 9, 7);
        let (v, locations, patches, _, grid) = grid_fixture();
        for mode in [OverlapMode::Crop, OverlapMode::Average, OverlapMode::Hann] {
            let mut out = Array4::<f64>::zeros(shape);
            let mut w = Array4::<f64>::zeros((1, 11, 9, 7));
            add_batch(
                out.view_mut(),
                Some(w.view_mut()),
                patches.view(),
                &locations,
                mode,
                grid,
            )
            .unwrap();
            if mode != OverlapMode::Crop {
                out /= &w;
            }
            let err = (&out - &v).iter().fold(0.0f64, |m, &d| m.max(d.abs()));
            let tolerance = if mode == OverlapMode::Hann { 1e-6 } else { 0.0 };
            assert!(err <= tolerance * 1000.0, "{mode:?}: max error {err}");
        }
    }

    #[test]
    fn a_batch_accumulates_like_its_patches_one_at_a_time() {
        // Overlapping float32 patches of unrelated scales, so that the sum of a
        // voxel's contributions depends on their order: one call with the
        // whole batch must add them in the batch's order, bit for bit.
        let shape = (2, 11, 9, 7);
        let (_, locations, patches, _, grid) = grid_fixture();
        let mut patches = patches.mapv(|v| v as f32);
        for (n, mut patch) in patches.outer_iter_mut().enumerate() {
            patch.mapv_inplace(|v| v * (1.0 / 3.0 + 0.1 * n as f32));
        }
        for mode in [OverlapMode::Crop, OverlapMode::Average, OverlapMode::Hann] {
            let mut batched = (
                Array4::<f32>::zeros(shape),
                Array4::<f32>::zeros((1, 11, 9, 7)),
            );
            let mut single = batched.clone();
            add_batch(
                batched.0.view_mut(),
                Some(batched.1.view_mut()),
                patches.view(),
                &locations,
                mode,
                grid,
            )
            .unwrap();
            for (n, location) in locations.iter().enumerate() {
                add_batch(
                    single.0.view_mut(),
                    Some(single.1.view_mut()),
                    patches.slice(s![n..n + 1, .., .., .., ..]),
                    std::slice::from_ref(location),
                    mode,
                    grid,
                )
                .unwrap();
            }
            assert_eq!(batched, single, "{mode:?}");
        }
    }

    #[test]
    fn stale_planes_are_zeroed_before_their_first_patch() {
        let shape = (2, 11, 9, 7);
        let (_, locations, patches, patch, grid) = grid_fixture();
        // Only the patches starting at i = 0 (planes 0..5): planes 5.. stay unreached.
        let first: Vec<[i64; 6]> = locations.iter().copied().filter(|l| l[0] == 0).collect();
        let count = first.len();
        let batch = patches.slice(s![..count, .., .., .., ..]);
        for mode in [OverlapMode::Average, OverlapMode::Hann] {
            let mut expected = Array4::<f64>::zeros(shape);
            add_batch(expected.view_mut(), None, batch, &first, mode, grid).unwrap();
            // Leftovers of an earlier use, and every plane flagged stale.
            let mut recycled = Array4::<f64>::from_elem(shape, -7.5);
            let mut stale = vec![true; 11];
            // Two halves: the second must accumulate onto the first, not re-zero.
            let half = count / 2;
            for range in [0..half, half..count] {
                let part = batch.slice(s![range.clone(), .., .., .., ..]);
                add_batch_zeroing_stale(
                    recycled.view_mut(),
                    None,
                    part,
                    &first[range],
                    mode,
                    grid,
                    &mut stale,
                )
                .unwrap();
            }
            let reached = patch[0];
            assert!(stale[..reached].iter().all(|&f| !f), "{mode:?}");
            assert!(stale[reached..].iter().all(|&f| f), "{mode:?}");
            let head = s![.., ..reached, .., ..];
            assert_eq!(recycled.slice(head), expected.slice(head), "{mode:?}");
            // Unreached planes are left as they were, for the caller.
            assert!(recycled
                .slice(s![.., reached.., .., ..])
                .iter()
                .all(|&v| v == -7.5));
        }
        // Crop mode overwrites part of a plane: flags are left alone.
        let mut out = Array4::<f64>::from_elem(shape, -7.5);
        let mut stale = vec![true; 11];
        add_batch_zeroing_stale(
            out.view_mut(),
            None,
            batch,
            &first,
            OverlapMode::Crop,
            grid,
            &mut stale,
        )
        .unwrap();
        assert!(stale.iter().all(|&f| f));
        let mut short = vec![true; 10];
        assert!(add_batch_zeroing_stale(
            out.view_mut(),
            None,
            batch,
            &first,
            OverlapMode::Average,
            grid,
            &mut short,
        )
        .is_err());
    }

    #[test]
    fn separable_profiles_equal_the_accumulated_weights() {
        let shape = (2, 11, 9, 7);
        let (v, locations, patches, patch, grid) = grid_fixture();
        for mode in [OverlapMode::Average, OverlapMode::Hann] {
            let mut summed = Array4::<f64>::zeros(shape);
            let mut w = Array4::<f64>::zeros((1, 11, 9, 7));
            let batch = patches.view();
            add_batch(
                summed.view_mut(),
                Some(w.view_mut()),
                batch,
                &locations,
                mode,
                grid,
            )
            .unwrap();
            let mut sum_only = Array4::<f64>::zeros(shape);
            add_batch(sum_only.view_mut(), None, batch, &locations, mode, grid).unwrap();
            assert_eq!(sum_only, summed);
            let profiles = fixture_profiles(&locations, patch, mode);
            let divided = divide_by_profiles(sum_only.view(), &profiles).unwrap();
            let mut in_place = sum_only.clone();
            divide_by_profiles_in_place(in_place.view_mut(), &profiles).unwrap();
            assert_eq!(in_place, divided, "{mode:?}: in place differs");
            let expected = &summed / &w;
            let err = (&divided - &expected)
                .iter()
                .fold(0.0f64, |m, &d| m.max(d.abs()));
            let tolerance = if mode == OverlapMode::Hann { 1e-9 } else { 0.0 };
            assert!(err <= tolerance, "{mode:?}: max error {err}");
        }
        let bad = grid_profiles::<f32>([&[0], &[0], &[9]], patch, [11, 9, 7], OverlapMode::Average);
        assert!(matches!(bad, Err(Error::Shape(_))));
        let crop = grid_profiles::<f32>([&[0], &[0], &[0]], patch, [11, 9, 7], OverlapMode::Crop);
        assert!(crop.is_err());
        let short = [vec![1.0f64; 11], vec![1.0; 9], vec![1.0; 6]];
        assert!(divide_by_profiles(v.view(), &short).is_err());
        let mut copy = v.clone();
        assert!(divide_by_profiles_in_place(copy.view_mut(), &short).is_err());
        let mut transposed = v.clone().reversed_axes();
        let fits = [vec![1.0f64; 9], vec![1.0; 11], vec![1.0; 2]];
        assert!(divide_by_profiles_in_place(transposed.view_mut(), &fits).is_err());
    }

    /// The weight profiles of `mode` for the full grid of `patch`-sized
    /// patches at `locations` over the fixture's `11 x 9 x 7` volume.
    fn fixture_profiles(
        locations: &[[i64; 6]],
        patch: [usize; 3],
        mode: OverlapMode,
    ) -> [Vec<f64>; 3] {
        let mut starts: [Vec<usize>; 3] = Default::default();
        for (axis, axis_starts) in starts.iter_mut().enumerate() {
            *axis_starts = locations.iter().map(|l| l[axis] as usize).collect();
            axis_starts.sort_unstable();
            axis_starts.dedup();
        }
        let axes = [&starts[0][..], &starts[1][..], &starts[2][..]];
        grid_profiles::<f64>(axes, patch, [11, 9, 7], mode).unwrap()
    }

    #[test]
    fn planes_divided_as_they_complete_equal_a_division_at_the_end() {
        let shape = (2, 11, 9, 7);
        let (_, locations, patches, patch, grid) = grid_fixture();
        // Batches in an order that completes planes at several points (the
        // last first-axis start first), of uneven sizes.
        let mut order: Vec<usize> = (0..locations.len()).rev().collect();
        order.rotate_left(3);
        for mode in [OverlapMode::Average, OverlapMode::Hann] {
            let profiles = fixture_profiles(&locations, patch, mode);
            // The same batches, summed first (in the same order: float sums
            // depend on it) and divided at the end.
            let mut at_end = Array4::<f64>::zeros(shape);
            for batch in order.chunks(4) {
                let rows: Vec<[i64; 6]> = batch.iter().map(|&n| locations[n]).collect();
                let selected = patches.select(Axis(0), batch);
                add_batch(at_end.view_mut(), None, selected.view(), &rows, mode, grid).unwrap();
            }
            divide_by_profiles_in_place(at_end.view_mut(), &profiles).unwrap();

            // A recycled output: leftovers everywhere, every plane stale.
            let mut early = Array4::<f64>::from_elem(shape, 7.5);
            let mut stale = vec![true; 11];
            let mut divided = [false; 11];
            let mut remaining: Vec<usize> = (0..11)
                .map(|i| {
                    let reaching = |l: &&[i64; 6]| (l[0] as usize..l[3] as usize).contains(&i);
                    locations.iter().filter(reaching).count()
                })
                .collect();
            for batch in order.chunks(4) {
                let rows: Vec<[i64; 6]> = batch.iter().map(|&n| locations[n]).collect();
                let selected = patches.select(Axis(0), batch);
                for row in &rows {
                    for count in &mut remaining[row[0] as usize..row[3] as usize] {
                        *count -= 1;
                    }
                }
                let complete: Vec<bool> =
                    (0..11).map(|i| remaining[i] == 0 && !divided[i]).collect();
                add_batch_dividing_complete(
                    early.view_mut(),
                    selected.view(),
                    &rows,
                    mode,
                    grid,
                    &mut stale,
                    &complete,
                    &profiles,
                )
                .unwrap();
                for (d, &c) in divided.iter_mut().zip(&complete) {
                    *d |= c;
                }
            }
            assert!(divided.iter().all(|&d| d));
            assert_eq!(early, at_end, "{mode:?}");
        }
    }

    #[test]
    fn dividing_only_some_planes_leaves_the_others() {
        let (v, locations, _, patch, _) = grid_fixture();
        let profiles = fixture_profiles(&locations, patch, OverlapMode::Hann);
        let mut all = v.clone();
        divide_by_profiles_in_place(all.view_mut(), &profiles).unwrap();
        let planes: Vec<bool> = (0..11).map(|i| i % 3 == 1).collect();
        let mut some = v.clone();
        divide_planes_in_place(some.view_mut(), &profiles, &planes).unwrap();
        for (i, &flag) in planes.iter().enumerate() {
            let expected = if flag { &all } else { &v };
            assert_eq!(
                some.slice(s![.., i, .., ..]),
                expected.slice(s![.., i, .., ..]),
                "plane {i}"
            );
        }
        assert!(divide_planes_in_place(some.view_mut(), &profiles, &planes[1..]).is_err());
    }

    #[test]
    fn dividing_complete_planes_rejects_crop_and_short_flags() {
        let (_, locations, patches, patch, grid) = grid_fixture();
        let profiles = fixture_profiles(&locations, patch, OverlapMode::Average);
        let mut out = Array4::<f64>::zeros((2, 11, 9, 7));
        let mut stale = vec![false; 11];
        let cases = [
            (OverlapMode::Crop, 11, 11),
            (OverlapMode::Average, 10, 11),
            (OverlapMode::Average, 11, 12),
        ];
        for (mode, complete_len, stale_len) in cases {
            stale.resize(stale_len, false);
            let result = add_batch_dividing_complete(
                out.view_mut(),
                patches.view(),
                &locations,
                mode,
                grid,
                &mut stale,
                &vec![false; complete_len],
                &profiles,
            );
            assert!(result.is_err(), "{mode:?} {complete_len} {stale_len}");
        }
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn hann_window_matches_formula() {
        let w = hann_window(3);
        // hann_window(5, periodic=False) = [0, .5, 1, .5, 0]
        assert!(
            (w[0] - 0.5).abs() < 1e-7 && (w[1] - 1.0).abs() < 1e-7 && (w[2] - 0.5).abs() < 1e-7
        );
    }

    #[test]
    fn downsampled_crop_covers_the_output() {
        let v = volume((1, 16, 16, 8));
        let (patch, overlap) = ([8, 8, 8], [4, 4, 0]);
        let locations = grid_locations([16, 16, 8], patch, overlap);
        // A "model" that keeps every second voxel.
        let starts: Vec<[usize; 3]> = locations
            .iter()
            .map(|l| [l[0] as usize, l[1] as usize, l[2] as usize])
            .collect();
        let full = crate::patches::extract::extract_patches(v.view(), &starts, patch).unwrap();
        let down = full.slice(s![.., .., ..;2, ..;2, ..;2]).to_owned();
        let expected = v.slice(s![.., ..;2, ..;2, ..;2]).to_owned();
        let grid = Grid {
            overlap,
            padded: false,
            downsampling_factor: 2,
        };
        for mode in [OverlapMode::Crop, OverlapMode::Average] {
            let mut out = Array4::<f64>::zeros((1, 8, 8, 4));
            let mut w = Array4::<f64>::zeros((1, 8, 8, 4));
            add_batch(
                out.view_mut(),
                Some(w.view_mut()),
                down.view(),
                &locations,
                mode,
                grid,
            )
            .unwrap();
            if mode != OverlapMode::Crop {
                out /= &w;
            }
            assert_eq!(out, expected, "{mode:?}");
        }
    }

    #[test]
    fn bad_batches_are_errors() {
        let v = volume((1, 6, 6, 6));
        let locations = [[0i64, 0, 0, 3, 3, 3]];
        let patches = patches_of(&v, &locations, [3, 3, 3]);
        let grid = Grid {
            overlap: [0; 3],
            padded: false,
            downsampling_factor: 1,
        };
        let mut out = Array4::<f64>::zeros((1, 6, 6, 6));
        let wrong_size = [[0i64, 0, 0, 4, 3, 3]];
        assert!(matches!(
            add_batch(
                out.view_mut(),
                None,
                patches.view(),
                &wrong_size,
                OverlapMode::Crop,
                grid
            ),
            Err(Error::Shape(_))
        ));
        let outside = [[4i64, 0, 0, 7, 3, 3]];
        assert!(add_batch(
            out.view_mut(),
            None,
            patches.view(),
            &outside,
            OverlapMode::Crop,
            grid
        )
        .is_err());
        let mut ints = Array4::<i32>::zeros((1, 6, 6, 6));
        let mut wi = Array4::<i32>::zeros((1, 6, 6, 6));
        let pints = patches.mapv(|x| x as i32);
        assert!(add_batch(
            ints.view_mut(),
            Some(wi.view_mut()),
            pints.view(),
            &locations,
            OverlapMode::Hann,
            grid
        )
        .is_err());
        assert!("blend".parse::<OverlapMode>().is_err());
    }
}
