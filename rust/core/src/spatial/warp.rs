//! The warp kernel: resample a `(C, I, J, K)` volume onto a target grid
//! through a chain of coordinate transforms, interpolating once.
//!
//! For every output voxel `v` of the target grid (shape + voxel -> world
//! affine), the world point `A_out v` is mapped through the chain in order
//! (4x4 world -> world affines and dense displacement fields `p -> p + u(p)`),
//! then to a continuous input index with `A_in^-1`, and the input is
//! interpolated there (SimpleITK semantics, see [`interpolation`]). The chain
//! maps *output* points to *input* points, like the transform given to ITK's
//! `ResampleImageFilter`.
//!
//! Consecutive affines are multiplied into one matrix; an affine-only chain
//! becomes a single voxel -> voxel matrix, so along each K row the input
//! coordinate moves by a constant vector per step. Coordinates are computed
//! once per voxel and every channel is interpolated from them. Work is split
//! into tasks of one I plane (`J x K` voxels of every channel).

use ndarray::{Array3, Array4, ArrayView4, Axis};
use rayon::prelude::*;

use crate::affine::{self, Matrix4, IDENTITY};
use crate::error::{Error, Result};
use crate::regions::Regions;
use crate::spatial::bspline::BSplineGrid;
use crate::spatial::displacement::{split_planes, FieldSampler};
use crate::spatial::interpolation::{
    bspline_coefficients, bspline_support, fast_floor, inside, linear_neighbours, nearest_index,
    snap, Coefficient, Interpolation,
};
use crate::spatial::rows::{resample_rows, RowMode};
use crate::volume::{check_not_empty, zeroed, Voxel};

/// One coordinate transform of a chain (maps output-side world points to input-side ones).
pub enum Step<'a> {
    /// World -> world affine.
    Affine(Matrix4),
    /// Dense displacement field `(3, I, J, K)` in mm on a grid with voxel -> world `affine`.
    Field {
        /// Displacements (RAS mm), C-contiguous.
        field: ArrayView4<'a, f32>,
        /// Voxel -> world affine of the field's grid.
        affine: Matrix4,
    },
    /// The displacement field of a cubic B-spline control grid on an image grid,
    /// as [`bspline_field`](crate::spatial::bspline::bspline_field) evaluates
    /// it. When it is the chain's first field and lies on the target grid, rows
    /// of nearest and linear warps evaluate it on the fly (bit-identical, without
    /// a dense field in memory); otherwise it is evaluated densely first.
    BSpline {
        /// `(n0, n1, n2, 3)` control-point displacements (voxel axes, RAS mm).
        coefficients: ArrayView4<'a, f64>,
        /// Spatial shape of the image grid.
        shape: [usize; 3],
        /// Voxel -> world affine of the image grid.
        affine: Matrix4,
    },
}

/// A chain step with its B-spline resolved: dense, or evaluated on the fly.
enum Resolved<'a> {
    Affine(Matrix4),
    Field(ArrayView4<'a, f32>, Matrix4),
    Lazy(&'a BSplineGrid),
}

/// Where a field step's displacements come from.
// A plan holds one per field: their size is irrelevant, and boxing the large
// variant would add an indirection to every voxel's lookup.
#[allow(clippy::large_enum_variant)]
pub(super) enum Displacement<'a> {
    /// A dense field, interpolated (or read at voxels when on the output grid).
    Dense(FieldSampler<'a>),
    /// A B-spline grid on the output grid, evaluated at output voxels.
    Lazy(&'a BSplineGrid),
}

/// A target grid: spatial shape and voxel -> world affine.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// `(I, J, K)`.
    pub shape: [usize; 3],
    /// Voxel -> world (RAS mm).
    pub affine: Matrix4,
}

/// The chain compiled to voxel space: `head` maps output voxels to world
/// points (or straight to input voxels when there is no field), then each
/// field displaces the point and its matrix carries it on.
pub(super) struct Plan<'a> {
    pub(super) head: Matrix4,
    pub(super) fields: Vec<(Displacement<'a>, Matrix4)>,
    /// The first field lies on the output grid itself (the usual elastic
    /// case): its displacement at output voxel `v` is read, not interpolated.
    direct_first: bool,
}

impl Plan<'_> {
    #[inline(always)]
    pub(super) fn map(&self, v: [f64; 3], index: [usize; 3]) -> [f64; 3] {
        self.map_from(affine::apply(&self.head, v), index, 0)
    }

    /// Carries `p`, the point before field `first`, through the rest of the chain.
    #[inline(always)]
    pub(super) fn map_from(&self, mut p: [f64; 3], index: [usize; 3], first: usize) -> [f64; 3] {
        for (position, (source, matrix)) in self.fields.iter().enumerate().skip(first) {
            let u = match source {
                Displacement::Dense(sampler) if position == 0 && self.direct_first => {
                    sampler.at_voxel(index[0], index[1], index[2])
                }
                Displacement::Dense(sampler) => sampler.displacement(p),
                Displacement::Lazy(grid) => grid.at_voxel(index),
            };
            p = affine::apply(matrix, [p[0] + u[0], p[1] + u[1], p[2] + u[2]]);
        }
        p
    }
}

/// The head of a chain: the output voxel -> world affine followed by the
/// chain's affines up to its first field (all of them if it has none), and
/// the position of that field.
fn chain_head(chain: &[Step<'_>], target: &Grid) -> Result<(Matrix4, Option<usize>)> {
    let mut pending = target.affine;
    for (position, step) in chain.iter().enumerate() {
        match step {
            Step::Affine(m) => {
                affine::check_affine(m, &format!("transform {position} of the chain"))?;
                pending = affine::multiply(m, &pending);
            }
            Step::Field { .. } | Step::BSpline { .. } => return Ok((pending, Some(position))),
        }
    }
    Ok((pending, None))
}

/// Prepares every B-spline step's grid, and says which step (if any) the
/// rows evaluate on the fly: the first field of a nearest or linear warp,
/// when the target grid is its own grid (as dense fields read at voxels) or
/// a grid aligned with it (the field is then evaluated exactly at the target
/// points, instead of interpolating a dense field evaluated at its voxels).
fn prepare_bsplines(
    chain: &[Step<'_>],
    target: &Grid,
    interpolation: Interpolation,
) -> Result<(Vec<Option<BSplineGrid>>, Option<usize>)> {
    let (head, first_field) = chain_head(chain, target)?;
    let rows_mode = matches!(
        interpolation,
        Interpolation::Nearest | Interpolation::Linear
    );
    // The first field evaluated by the rows, and where they sample it (`None`:
    // on its own voxels).
    let mut lazy: Option<(usize, Option<[Vec<f64>; 3]>)> = None;
    if let Some(position) = first_field.filter(|_| rows_mode) {
        if let Step::BSpline { shape, affine, .. } = &chain[position] {
            if *shape == target.shape && *affine == head {
                lazy = Some((position, None));
            } else if let Some(positions) = aligned_positions(affine, &head, target.shape)? {
                lazy = Some((position, Some(positions)));
            }
        }
    }
    let grids = chain
        .iter()
        .enumerate()
        .map(|(position, step)| match step {
            Step::BSpline {
                coefficients,
                shape,
                ..
            } => match &lazy {
                Some((at, Some(positions))) if *at == position => {
                    BSplineGrid::sampled(coefficients.view(), *shape, positions).map(Some)
                }
                _ => BSplineGrid::new(coefficients.view(), *shape).map(Some),
            },
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((grids, lazy.map(|(position, _)| position)))
}

/// Relative size below which an off-diagonal term of the target -> field
/// voxel map counts as zero (the rounding of composed affines).
const ALIGNED_TOLERANCE: f64 = 1e-9;

/// The field's continuous voxel indices of the target grid's points along
/// each axis, if the target voxel -> field voxel map (`field_affine^-1
/// head`) is diagonal up to rounding: scaled, shifted or flipped axes, no
/// rotation or permutation. `None` otherwise.
fn aligned_positions(
    field_affine: &Matrix4,
    head: &Matrix4,
    shape: [usize; 3],
) -> Result<Option<[Vec<f64>; 3]>> {
    let m = affine::multiply(&affine::invert(field_affine)?, head);
    for (r, row) in m.iter().take(3).enumerate() {
        let size: f64 = row[..3].iter().map(|v| v.abs()).sum();
        let off_diagonal = (0..3)
            .filter(|&c| c != r)
            .any(|c| row[c].abs() > ALIGNED_TOLERANCE * size);
        if off_diagonal || row[r] == 0.0 {
            return Ok(None);
        }
    }
    Ok(Some(std::array::from_fn(|d| {
        (0..shape[d])
            .map(|o| m[d][d] * o as f64 + m[d][3])
            .collect()
    })))
}

/// Resolves the chain's B-spline steps: the lazy one by reference to its
/// grid, the others into the dense fields `dense` holds.
fn resolve<'a>(
    chain: &'a [Step<'_>],
    grids: &'a [Option<BSplineGrid>],
    lazy: Option<usize>,
    dense: &'a [Option<Array4<f32>>],
) -> Result<Vec<Resolved<'a>>> {
    chain
        .iter()
        .enumerate()
        .map(|(position, step)| match step {
            Step::Affine(m) => Ok(Resolved::Affine(*m)),
            Step::Field { field, affine } => Ok(Resolved::Field(field.view(), *affine)),
            Step::BSpline { affine, .. } => {
                if lazy == Some(position) {
                    if let Some(grid) = &grids[position] {
                        return Ok(Resolved::Lazy(grid));
                    }
                } else if let Some(field) = &dense[position] {
                    return Ok(Resolved::Field(field.view(), *affine));
                }
                Err(Error::InvalidArgument(format!(
                    "B-spline step {position} of the chain was not prepared"
                )))
            }
        })
        .collect()
}

fn compile<'a>(
    chain: &'a [Resolved<'a>],
    target: &Grid,
    input_affine: &Matrix4,
) -> Result<Plan<'a>> {
    let output_affine = &target.affine;
    let world_to_input = affine::invert(input_affine)?;
    // `pending` accumulates the affines seen since the last field.
    let mut pending = *output_affine;
    let mut head: Option<Matrix4> = None;
    let mut fields: Vec<(Displacement<'a>, Matrix4)> = Vec::new();
    for (position, step) in chain.iter().enumerate() {
        let source = match step {
            Resolved::Affine(m) => {
                affine::check_affine(m, &format!("transform {position} of the chain"))?;
                pending = affine::multiply(m, &pending);
                continue;
            }
            Resolved::Field(field, affine) => {
                Displacement::Dense(FieldSampler::new(field, affine)?)
            }
            Resolved::Lazy(grid) => Displacement::Lazy(grid),
        };
        match fields.last_mut() {
            Some(last) => last.1 = pending,
            None => head = Some(pending),
        }
        fields.push((source, IDENTITY));
        pending = IDENTITY;
    }
    let tail = affine::multiply(&world_to_input, &pending);
    match fields.last_mut() {
        Some(last) => {
            last.1 = tail;
            let head = head.unwrap_or(IDENTITY);
            let direct_first = fields.first().is_some_and(|(source, _)| match source {
                Displacement::Dense(sampler) => sampler.is_on_grid(target.shape, &head),
                Displacement::Lazy(_) => true,
            });
            Ok(Plan {
                head,
                fields,
                direct_first,
            })
        }
        None => Ok(Plan {
            head: tail,
            fields,
            direct_first: false,
        }),
    }
}

/// Computes all channels of one output voxel from a continuous input index.
trait Sampler<T>: Sync {
    fn sample(&self, x: [f64; 3], planes: &mut [&mut [T]], at: usize);
}

/// The input volume as a flat C-order buffer with its dimensions.
pub(super) struct Source<'a, T> {
    pub(super) data: &'a [T],
    pub(super) dims: [usize; 3],
    pub(super) channel_len: usize,
}

impl<T: Copy> Source<'_, T> {
    #[inline(always)]
    fn inside(&self, x: [f64; 3]) -> bool {
        inside(snap(x[0]), self.dims[0])
            && inside(snap(x[1]), self.dims[1])
            && inside(snap(x[2]), self.dims[2])
    }
    #[inline(always)]
    fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        (i * self.dims[1] + j) * self.dims[2] + k
    }
}

/// Converts an interpolated value to the voxel type like ITK's resampler:
/// floats cast, integers truncate towards zero and saturate.
#[inline(always)]
pub(super) fn convert<T: Voxel>(value: f64) -> T {
    if T::IS_FLOAT {
        T::from_f64(value)
    } else {
        T::from_f64(value.trunc())
    }
}

/// The 8 neighbour offsets and trilinear weights of a continuous index.
#[inline(always)]
fn trilinear(source: &Source<'_, impl Copy>, x: [f64; 3]) -> ([usize; 8], [f64; 8]) {
    let [ni, nj, nk] = source.dims;
    let (i0, i1, wi) = linear_neighbours(x[0], ni);
    let (j0, j1, wj) = linear_neighbours(x[1], nj);
    let (k0, k1, wk) = linear_neighbours(x[2], nk);
    // One multiply-add chain for the base; the neighbours are fixed strides away.
    let base = source.offset(i0, j0, k0);
    let di = (i1 - i0) * nj * nk;
    let dj = (j1 - j0) * nk;
    let dk = k1 - k0;
    let offsets = [
        base,
        base + dk,
        base + dj,
        base + dj + dk,
        base + di,
        base + di + dk,
        base + di + dj,
        base + di + dj + dk,
    ];
    let (ui, uj, uk) = (1.0 - wi, 1.0 - wj, 1.0 - wk);
    let weights = [
        ui * uj * uk,
        ui * uj * wk,
        ui * wj * uk,
        ui * wj * wk,
        wi * uj * uk,
        wi * uj * wk,
        wi * wj * uk,
        wi * wj * wk,
    ];
    (offsets, weights)
}

struct Label<'a, T> {
    source: Source<'a, T>,
    fill: Vec<T>,
}

impl<T: Voxel> Sampler<T> for Label<'_, T> {
    #[inline(always)]
    fn sample(&self, x: [f64; 3], planes: &mut [&mut [T]], at: usize) {
        if !self.source.inside(x) {
            for (plane, &fill) in planes.iter_mut().zip(&self.fill) {
                plane[at] = fill;
            }
            return;
        }
        let (offsets, weights) = trilinear(&self.source, x);
        for (c, plane) in planes.iter_mut().enumerate() {
            let data = &self.source.data[c * self.source.channel_len..];
            // Accumulate the interpolated indicator of each label present among
            // the 8 neighbours (the only labels with non-zero weight).
            let mut labels = [T::default(); 8];
            let mut totals = [0.0f64; 8];
            let mut count = 0;
            for (&o, &w) in offsets.iter().zip(&weights) {
                let label = data[o];
                match labels[..count].iter().position(|&l| l == label) {
                    Some(p) => totals[p] += w,
                    None => {
                        labels[count] = label;
                        totals[count] = w;
                        count += 1;
                    }
                }
            }
            // Largest weight wins; exact ties go to the smaller label.
            let mut best = 0;
            for p in 1..count {
                if totals[p] > totals[best]
                    || (totals[p] == totals[best] && labels[p] < labels[best])
                {
                    best = p;
                }
            }
            plane[at] = labels[best];
        }
    }
}

struct BSpline<'a, T, C> {
    source: Source<'a, T>,
    coefficients: Vec<Array3<C>>,
    fill: Vec<T>,
}

impl<T: Voxel, C: Coefficient> Sampler<T> for BSpline<'_, T, C> {
    #[inline(always)]
    fn sample(&self, x: [f64; 3], planes: &mut [&mut [T]], at: usize) {
        if !self.source.inside(x) {
            for (plane, &fill) in planes.iter_mut().zip(&self.fill) {
                plane[at] = fill;
            }
            return;
        }
        let [ni, nj, nk] = self.source.dims;
        let (ii, wi) = bspline_support(x[0], ni);
        let (jj, wj) = bspline_support(x[1], nj);
        let (kk, wk) = bspline_support(x[2], nk);
        for (plane, coefficients) in planes.iter_mut().zip(&self.coefficients) {
            let Some(data) = coefficients.as_slice() else {
                continue;
            };
            let mut value = 0.0;
            for (&i, &w_i) in ii.iter().zip(&wi) {
                if w_i == 0.0 {
                    continue;
                }
                let mut plane_sum = 0.0;
                for (&j, &w_j) in jj.iter().zip(&wj) {
                    let row = &data[(i * nj + j) * nk..];
                    let row_sum: f64 = kk.iter().zip(&wk).map(|(&k, &w)| row[k].to_f64() * w).sum();
                    plane_sum += w_j * row_sum;
                }
                value += w_i * plane_sum;
            }
            plane[at] = convert(value);
        }
    }
}

/// Whether an affine-only plan maps each output axis to the same input axis
/// alone (zero off-diagonal terms), so input coordinates are separable.
fn axis_aligned(plan: &Plan<'_>) -> bool {
    plan.fields.is_empty() && (0..3).all(|r| (0..3).all(|c| r == c || plan.head[r][c] == 0.0))
}

/// Input coordinates along axis `d` of every output index `0..n` of an aligned plan.
fn axis_coordinates(plan: &Plan<'_>, d: usize, n: usize) -> Vec<f64> {
    (0..n)
        .map(|o| plan.head[d][d] * o as f64 + plan.head[d][3])
        .collect()
}

/// Nearest neighbour on an axis-aligned plan: per-axis index tables, then
/// pure gathers along each K row.
fn run_nearest_aligned<T: Voxel>(
    source: &Source<'_, T>,
    fill: &[T],
    plan: &Plan<'_>,
    output: &mut Array4<T>,
) -> Result<()> {
    let (c, ni, nj, nk) = output.dim();
    let table = |d: usize, n: usize| -> Vec<Option<usize>> {
        axis_coordinates(plan, d, n)
            .into_iter()
            .map(|x| {
                let x = snap(x);
                inside(x, source.dims[d]).then(|| nearest_index(x, source.dims[d]))
            })
            .collect()
    };
    let (ti, tj, tk) = (table(0, ni), table(1, nj), table(2, nk));
    // A K table that maps k to k + shift everywhere makes each row one copy.
    let k_shift = tk.first().copied().flatten().filter(|&shift| {
        tk.iter()
            .enumerate()
            .all(|(k, &index)| index == Some(k + shift))
    });
    let Some(buffer) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    split_planes(buffer, c, nj * nk)
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut planes)| {
            for (channel, plane) in planes.iter_mut().enumerate() {
                let data = &source.data[channel * source.channel_len..];
                for (j, row) in plane.chunks_mut(nk).enumerate() {
                    let (Some(si), Some(sj)) = (ti[i], tj[j]) else {
                        row.fill(fill[channel]);
                        continue;
                    };
                    let line = &data[source.offset(si, sj, 0)..][..source.dims[2]];
                    if let Some(shift) = k_shift {
                        row.copy_from_slice(&line[shift..shift + nk]);
                        continue;
                    }
                    for (out, &index) in row.iter_mut().zip(&tk) {
                        *out = match index {
                            Some(k) => line[k],
                            None => fill[channel],
                        };
                    }
                }
            }
        });
    Ok(())
}

/// The linear neighbours `(i0, i1, w)` of an aligned coordinate. A coordinate
/// that snaps to a whole index gets weight exactly 0, so axes the plan maps
/// onto input voxels (up to the rounding of composed affines) blend nothing.
fn aligned_neighbours(x: f64, n: usize) -> (usize, usize, f64) {
    let snapped = snap(x);
    let x = if snapped == fast_floor(snapped) {
        snapped
    } else {
        x
    };
    linear_neighbours(x, n)
}

/// Whether a K table maps output index `k` to input index `k + shift` with
/// zero weight everywhere; returns that shift.
fn whole_voxel_shift(table: &[Option<(usize, usize, f64)>]) -> Option<usize> {
    let shift = table.first()?.as_ref()?.0;
    table
        .iter()
        .enumerate()
        .all(|(k, entry)| matches!(*entry, Some((k0, _, w)) if w == 0.0 && k0 == k + shift))
        .then_some(shift)
}

/// Trilinear interpolation on an axis-aligned plan: per-axis neighbour tables;
/// each output row blends the (up to four) input rows of non-zero weight,
/// with a straight vectorisable loop when the K axis is a whole-voxel shift.
fn run_linear_aligned<T: Voxel>(
    source: &Source<'_, T>,
    fill: &[T],
    plan: &Plan<'_>,
    output: &mut Array4<T>,
) -> Result<()> {
    let (c, ni, nj, nk) = output.dim();
    let table = |d: usize, n: usize| -> Vec<Option<(usize, usize, f64)>> {
        axis_coordinates(plan, d, n)
            .into_iter()
            .map(|x| inside(snap(x), source.dims[d]).then(|| aligned_neighbours(x, source.dims[d])))
            .collect()
    };
    let (ti, tj, tk) = (table(0, ni), table(1, nj), table(2, nk));
    let k_shift = whole_voxel_shift(&tk);
    let Some(buffer) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let len_k = source.dims[2];
    split_planes(buffer, c, nj * nk)
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![0.0f64; len_k],
            |blended, (i, mut planes)| {
                for (channel, plane) in planes.iter_mut().enumerate() {
                    let data = &source.data[channel * source.channel_len..];
                    for (j, row) in plane.chunks_mut(nk).enumerate() {
                        let (Some((i0, i1, wi)), Some((j0, j1, wj))) = (ti[i], tj[j]) else {
                            row.fill(fill[channel]);
                            continue;
                        };
                        let candidates = [
                            (i0, j0, (1.0 - wi) * (1.0 - wj)),
                            (i0, j1, (1.0 - wi) * wj),
                            (i1, j0, wi * (1.0 - wj)),
                            (i1, j1, wi * wj),
                        ];
                        let mut rows: [(&[T], f64); 4] = [(&[], 0.0); 4];
                        let mut count = 0;
                        for (si, sj, w) in candidates {
                            if w != 0.0 {
                                rows[count] = (&data[source.offset(si, sj, 0)..][..len_k], w);
                                count += 1;
                            }
                        }
                        let fill = fill[channel];
                        match (k_shift, count) {
                            (Some(shift), _) => blend_shifted_rows(row, &rows[..count], shift),
                            (None, 0) => row.fill(fill), // weights sum to 1: never
                            (None, _) => {
                                blend_then_interpolate(row, &rows[..count], &tk, fill, blended)
                            }
                        }
                    }
                }
            },
        );
    Ok(())
}

/// `row[k]` = the rows blended into one input row first (a straight loop
/// over the input's K axis), which is then interpolated along K at the
/// table's entries: per output voxel one interpolation, whatever the
/// number of rows (a single row has weight exactly 1).
#[inline(always)]
fn blend_then_interpolate<T: Voxel>(
    row: &mut [T],
    rows: &[(&[T], f64)],
    table: &[Option<(usize, usize, f64)>],
    fill: T,
    blended: &mut [f64],
) {
    // Row by row over the whole K axis (summed in row order), so each pass
    // is a straight vectorisable loop.
    let [(first, w0), rest @ ..] = rows else {
        return;
    };
    for (b, &x) in blended.iter_mut().zip(*first) {
        *b = w0 * x.to_f64();
    }
    for (line, w) in rest {
        for (b, &x) in blended.iter_mut().zip(*line) {
            *b += w * x.to_f64();
        }
    }
    for (out, entry) in row.iter_mut().zip(table) {
        let Some((k0, k1, wk)) = *entry else {
            *out = fill;
            continue;
        };
        let a = blended[k0];
        *out = convert(a + (blended[k1] - a) * wk);
    }
}

/// `row[k] = sum_r w_r line_r[k + shift]` (accumulated in float64, in row order).
#[inline(always)]
fn blend_shifted_rows<T: Voxel>(row: &mut [T], rows: &[(&[T], f64)], shift: usize) {
    let n = row.len();
    match rows {
        [(a, _)] => row.copy_from_slice(&a[shift..shift + n]),
        [(a, wa), (b, wb)] => {
            for ((out, &x), &y) in row.iter_mut().zip(&a[shift..]).zip(&b[shift..]) {
                *out = convert(wa * x.to_f64() + wb * y.to_f64());
            }
        }
        _ => {
            for (k, out) in row.iter_mut().enumerate() {
                let value: f64 = rows
                    .iter()
                    .map(|(line, w)| w * line[k + shift].to_f64())
                    .sum();
                *out = convert(value);
            }
        }
    }
}

/// Runs `sampler` over every output voxel.
fn run<T: Voxel, S: Sampler<T>>(
    sampler: &S,
    plan: &Plan<'_>,
    output: &mut Array4<T>,
) -> Result<()> {
    let (c, _, nj, nk) = output.dim();
    let Some(buffer) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    split_planes(buffer, c, nj * nk)
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut planes)| {
            let fi = i as f64;
            if plan.fields.is_empty() {
                // Affine-only: the input index moves by `step` per K voxel.
                let step = affine::column(&plan.head, 2);
                for j in 0..nj {
                    let base = affine::apply(&plan.head, [fi, j as f64, 0.0]);
                    for k in 0..nk {
                        let fk = k as f64;
                        let x = [
                            base[0] + fk * step[0],
                            base[1] + fk * step[1],
                            base[2] + fk * step[2],
                        ];
                        sampler.sample(x, &mut planes, j * nk + k);
                    }
                }
            } else {
                for j in 0..nj {
                    for k in 0..nk {
                        let x = plan.map([fi, j as f64, k as f64], [i, j, k]);
                        sampler.sample(x, &mut planes, j * nk + k);
                    }
                }
            }
        });
    Ok(())
}

/// Resamples `input` `(C, I, J, K)` (voxel -> world `input_affine`) onto
/// `target` through `chain`, with `interpolation` and one `fill` value per
/// channel for points that fall outside the input.
///
/// Returns a `(C, *target.shape)` array of the input's type. Integer outputs of
/// linear and B-spline interpolation are truncated towards zero and saturated
/// (as SimpleITK casts); nearest and label modes copy input values.
///
/// # Errors
/// Empty input or target, singular or non-finite affines, malformed fields,
/// a `fill` whose length is not `C`, or a non-finite fill value.
pub fn warp<T: Voxel>(
    input: ArrayView4<'_, T>,
    input_affine: &Matrix4,
    target: &Grid,
    chain: &[Step<'_>],
    interpolation: Interpolation,
    fill: &[f64],
) -> Result<Array4<T>> {
    warp_regions(
        input,
        input_affine,
        target,
        chain,
        interpolation,
        fill,
        None,
    )
}

/// [`warp`], computing only the output voxels that `regions` covers where the
/// interpolation allows it (nearest and linear through oblique chains, the
/// row kernels). Those voxels are the same bits as [`warp`]'s; the others are
/// zero or their value (the kernels that compute every voxel ignore `regions`).
///
/// # Errors
/// Those of [`warp`], and `regions` of a grid other than `target`'s.
pub fn warp_regions<T: Voxel>(
    input: ArrayView4<'_, T>,
    input_affine: &Matrix4,
    target: &Grid,
    chain: &[Step<'_>],
    interpolation: Interpolation,
    fill: &[f64],
    regions: Option<&Regions>,
) -> Result<Array4<T>> {
    check_not_empty(&input, "input")?;
    if let Some(regions) = regions {
        if regions.shape() != target.shape {
            return Err(Error::Shape(format!(
                "regions of a {:?} grid given for a target of shape {:?}",
                regions.shape(),
                target.shape
            )));
        }
    }
    if target.shape.contains(&0) {
        return Err(Error::Empty(format!(
            "target shape {:?} holds no voxels",
            target.shape
        )));
    }
    affine::check_affine(input_affine, "input affine")?;
    affine::check_affine(&target.affine, "target affine")?;
    let channels = input.dim().0;
    if fill.len() != channels {
        return Err(Error::Shape(format!(
            "fill must have one value per channel ({channels}), got {}",
            fill.len()
        )));
    }
    if fill.iter().any(|v| v.is_nan()) {
        return Err(Error::InvalidArgument(format!(
            "fill values must not be NaN, got {fill:?}"
        )));
    }
    with_plan(chain, target, input_affine, interpolation, |plan| {
        resample(
            input.view(),
            plan,
            target.shape,
            fill,
            interpolation,
            regions,
        )
    })
}

/// Compiles `chain` (its B-spline steps resolved for `interpolation`) and runs `body` on the plan.
fn with_plan<R>(
    chain: &[Step<'_>],
    target: &Grid,
    input_affine: &Matrix4,
    interpolation: Interpolation,
    body: impl FnOnce(&Plan<'_>) -> Result<R>,
) -> Result<R> {
    let (grids, lazy) = prepare_bsplines(chain, target, interpolation)?;
    let dense = grids
        .iter()
        .enumerate()
        .map(|(position, grid)| match grid {
            Some(grid) if lazy != Some(position) => grid.dense().map(Some),
            _ => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let resolved = resolve(chain, &grids, lazy, &dense)?;
    let plan = compile(&resolved, target, input_affine)?;
    body(&plan)
}

/// Runs the sampler of `interpolation` over every voxel of the plan's target grid.
fn resample<T: Voxel>(
    input: ArrayView4<'_, T>,
    plan: &Plan<'_>,
    shape: [usize; 3],
    fill: &[f64],
    interpolation: Interpolation,
    regions: Option<&Regions>,
) -> Result<Array4<T>> {
    let (channels, ni, nj, nk) = input.dim();
    let input = input.as_standard_layout();
    let Some(data) = input.as_slice() else {
        return Err(Error::Shape("input could not be made contiguous".into()));
    };
    let source = Source {
        data,
        dims: [ni, nj, nk],
        channel_len: ni * nj * nk,
    };
    let fill: Vec<T> = fill.iter().map(|&v| T::from_f64(v)).collect();
    let [oi, oj, ok] = shape;
    let rows = matches!(
        interpolation,
        Interpolation::Nearest | Interpolation::Linear
    );
    if rows && !axis_aligned(plan) {
        let mode = if interpolation == Interpolation::Nearest {
            RowMode::Nearest
        } else {
            RowMode::Linear
        };
        return resample_rows(
            mode,
            &source,
            &fill,
            plan,
            (channels, oi, oj, ok),
            true,
            regions,
        );
    }
    let mut output = zeroed((channels, oi, oj, ok));
    match interpolation {
        Interpolation::Nearest => run_nearest_aligned(&source, &fill, plan, &mut output)?,
        Interpolation::Linear => run_linear_aligned(&source, &fill, plan, &mut output)?,
        Interpolation::Label => run(&Label { source, fill }, plan, &mut output)?,
        Interpolation::BSpline => {
            if T::IS_FLOAT && std::mem::size_of::<T>() == 4 {
                let coefficients = input
                    .axis_iter(Axis(0))
                    .map(bspline_coefficients::<T, f32>)
                    .collect();
                let sampler = BSpline {
                    source,
                    coefficients,
                    fill,
                };
                run(&sampler, plan, &mut output)?;
            } else {
                let coefficients = input
                    .axis_iter(Axis(0))
                    .map(bspline_coefficients::<T, f64>)
                    .collect();
                let sampler = BSpline {
                    source,
                    coefficients,
                    fill,
                };
                run(&sampler, plan, &mut output)?;
            }
        }
    }
    Ok(output)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::{s, Array, Axis};

    fn ramp(shape: (usize, usize, usize, usize)) -> Array4<f32> {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Array::from_iter((0..n).map(|v| ((v * 37) % 101) as f32))
            .into_shape_with_order(shape)
            .unwrap()
    }

    fn grid_like(volume: &Array4<f32>, affine: Matrix4) -> Grid {
        let (_, i, j, k) = volume.dim();
        Grid {
            shape: [i, j, k],
            affine,
        }
    }

    fn translation(t: [f64; 3]) -> Matrix4 {
        let mut m = IDENTITY;
        for d in 0..3 {
            m[d][3] = t[d];
        }
        m
    }

    const ALL: [Interpolation; 4] = [
        Interpolation::Nearest,
        Interpolation::Linear,
        Interpolation::BSpline,
        Interpolation::Label,
    ];

    #[test]
    fn identity_chain_reproduces_input() {
        let volume = ramp((2, 5, 6, 7));
        let mut spacing = IDENTITY;
        spacing[0][0] = 2.0;
        spacing[2][3] = 5.0;
        for interpolation in ALL {
            let out = warp(
                volume.view(),
                &spacing,
                &grid_like(&volume, spacing),
                &[Step::Affine(IDENTITY)],
                interpolation,
                &[0.0, 0.0],
            )
            .unwrap();
            let error = (&out - &volume)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &b| a.max(b));
            assert!(error < 1e-3, "{interpolation:?}: {error}");
        }
    }

    #[test]
    fn whole_voxel_translation_shifts_and_fills() {
        let volume = ramp((1, 6, 5, 4));
        for interpolation in ALL {
            // Output point p samples the input at p + 2 along I.
            let out = warp(
                volume.view(),
                &IDENTITY,
                &grid_like(&volume, IDENTITY),
                &[Step::Affine(translation([2.0, 0.0, 0.0]))],
                interpolation,
                &[-1.0],
            )
            .unwrap();
            let shifted = out.slice(s![.., 0..4, .., ..]);
            let expected = volume.slice(s![.., 2..6, .., ..]);
            let error = (&shifted - &expected)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &b| a.max(b));
            assert!(error < 1e-3, "{interpolation:?}");
            assert!(out.slice(s![.., 4..6, .., ..]).iter().all(|&v| v == -1.0));
        }
    }

    #[test]
    fn flips_and_rotations_via_affines() {
        let volume = ramp((1, 4, 4, 3));
        // Flip I about the centre: i -> 3 - i.
        let mut flip = IDENTITY;
        flip[0][0] = -1.0;
        flip[0][3] = 3.0;
        // 90 degrees about K through the centre (1.5, 1.5): (i, j) -> (j, 3 - i).
        let rotation = [
            [0.0, 1.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0, 3.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        for interpolation in ALL {
            let grid = grid_like(&volume, IDENTITY);
            let flipped = warp(
                volume.view(),
                &IDENTITY,
                &grid,
                &[Step::Affine(flip)],
                interpolation,
                &[0.0],
            )
            .unwrap();
            let expected = volume.slice(s![.., ..;-1, .., ..]).to_owned();
            let error = (&flipped - &expected)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &b| a.max(b));
            assert!(error < 1e-3, "{interpolation:?}");
            let rotated = warp(
                volume.view(),
                &IDENTITY,
                &grid,
                &[Step::Affine(rotation)],
                interpolation,
                &[0.0],
            )
            .unwrap();
            for i in 0..4 {
                for j in 0..4 {
                    for k in 0..3 {
                        let expected = volume[[0, j, 3 - i, k]];
                        assert!(
                            (rotated[[0, i, j, k]] - expected).abs() < 1e-3,
                            "{interpolation:?}"
                        );
                    }
                }
            }
            // Two 180 degree rotations give back the input.
            let half = affine::multiply(&rotation, &rotation);
            let twice = warp(
                volume.view(),
                &IDENTITY,
                &grid,
                &[Step::Affine(half), Step::Affine(half)],
                interpolation,
                &[0.0],
            )
            .unwrap();
            let error = (&twice - &volume)
                .mapv(f32::abs)
                .fold(0.0f32, |a, &b| a.max(b));
            assert!(error < 1e-3);
        }
    }

    #[test]
    fn linear_midpoint_edges_and_integer_truncation() {
        let volume = Array4::from_shape_vec((1, 2, 1, 1), vec![10i16, 15]).unwrap();
        let grid = Grid {
            shape: [4, 1, 1],
            affine: translation([-0.5, 0.0, 0.0]),
        };
        let mut half = IDENTITY;
        half[0][0] = 0.5;
        let grid = Grid {
            affine: affine::multiply(&grid.affine, &half),
            ..grid
        };
        // Output i samples x = i / 2 - 0.5: -0.5 (edge), 0, 0.5, 1.
        let out = warp(
            volume.view(),
            &IDENTITY,
            &grid,
            &[],
            Interpolation::Linear,
            &[0.0],
        )
        .unwrap();
        assert_eq!(
            out.iter().copied().collect::<Vec<_>>(),
            vec![10, 10, 12, 15]
        );
    }

    #[test]
    fn displacement_field_equals_the_affine_it_encodes() {
        let volume = ramp((1, 8, 7, 6));
        let grid = grid_like(&volume, IDENTITY);
        let field = Array4::from_shape_fn((3, 8, 7, 6), |(d, _, _, _)| [1.0f32, -2.0, 0.5][d]);
        let via_field = warp(
            volume.view(),
            &IDENTITY,
            &grid,
            &[Step::Field {
                field: field.view(),
                affine: IDENTITY,
            }],
            Interpolation::Linear,
            &[0.0],
        )
        .unwrap();
        let via_affine = warp(
            volume.view(),
            &IDENTITY,
            &grid,
            &[Step::Affine(translation([1.0, -2.0, 0.5]))],
            Interpolation::Linear,
            &[0.0],
        )
        .unwrap();
        assert_eq!(via_field, via_affine);
    }

    #[test]
    fn label_mode_keeps_label_set_and_majority() {
        let mut labels = Array4::<u8>::zeros((1, 4, 4, 4));
        labels.slice_mut(s![.., 1..3, 1..4, ..]).fill(3);
        labels[[0, 3, 3, 3]] = 7;
        let mut scale = IDENTITY;
        scale[0][0] = 0.5;
        let grid = Grid {
            shape: [8, 4, 4],
            affine: scale,
        };
        let out = warp(
            labels.view(),
            &IDENTITY,
            &grid,
            &[],
            Interpolation::Label,
            &[0.0],
        )
        .unwrap();
        assert!(out.iter().all(|v| [0u8, 3, 7].contains(v)));
        // x = 0.5 sits between 0 and 3 with equal weights: the smaller label wins.
        assert_eq!(out[[0, 1, 1, 1]], 0);
        assert_eq!(out[[0, 3, 1, 1]], 3);
    }

    #[test]
    fn flat_axis_is_not_interpolated() {
        let image = ramp((1, 5, 5, 1));
        let mut shift = translation([0.0, 0.0, 0.7]);
        shift[0][3] = 1.0;
        let out = warp(
            image.view(),
            &IDENTITY,
            &grid_like(&image, IDENTITY),
            &[Step::Affine(shift)],
            Interpolation::Linear,
            &[0.0],
        )
        .unwrap();
        assert_eq!(
            out.slice(s![.., 0..4, .., ..]),
            image.slice(s![.., 1..5, .., ..])
        );
    }

    /// Warps `volume` onto `grid` (identity chain, fills -1 and -2) with nearest
    /// and linear interpolation on the aligned fast paths, checks each against
    /// the general path (forced by a tiny off-diagonal term), returns them.
    fn aligned_against_general(volume: &Array4<f32>, grid: &Grid) -> Vec<Array4<f32>> {
        let mut skewed = IDENTITY;
        skewed[0][1] = 1e-300;
        let fill = [-1.0, -2.0];
        [Interpolation::Nearest, Interpolation::Linear]
            .into_iter()
            .map(|mode| {
                let fast = warp(volume.view(), &IDENTITY, grid, &[], mode, &fill).unwrap();
                let chain = [Step::Affine(skewed)];
                let general = warp(volume.view(), &IDENTITY, grid, &chain, mode, &fill).unwrap();
                let error = (&fast - &general)
                    .mapv(f32::abs)
                    .fold(0.0f32, |a, &b| a.max(b));
                assert!(error < 1e-4, "{mode:?}: {error}");
                fast
            })
            .collect()
    }

    #[test]
    fn aligned_fast_paths_equal_the_general_path() {
        let volume = ramp((2, 9, 8, 7));
        let mut scale = IDENTITY;
        scale[0][0] = 0.7;
        scale[1][1] = 1.3;
        scale[2][2] = 0.45;
        scale[0][3] = -0.6;
        scale[2][3] = 0.8;
        let grid = Grid {
            shape: [14, 7, 17],
            affine: scale,
        };
        for fast in aligned_against_general(&volume, &grid) {
            assert!(fast.iter().any(|&v| v == -2.0));
        }
    }

    #[test]
    fn aligned_paths_blend_only_the_interpolated_axis() {
        // One axis rescaled, one shifted by a whole voxel, one mapped onto itself
        // up to the rounding of composed affines: only axis 0 is interpolated.
        let volume = ramp((2, 9, 8, 7));
        let mut scale = IDENTITY;
        scale[0][0] = 0.45;
        scale[1][3] = 1e-13;
        scale[2][3] = 1.0;
        let grid = Grid {
            shape: [20, 8, 6],
            affine: scale,
        };
        for fast in aligned_against_general(&volume, &grid) {
            // The last I plane (8.55) falls outside the input and takes the fill.
            assert!(fast.slice(s![1, 19, .., ..]).iter().all(|&v| v == -2.0));
        }
        let linear = warp(
            volume.view(),
            &IDENTITY,
            &grid,
            &[],
            Interpolation::Linear,
            &[0.0, 0.0],
        )
        .unwrap();
        for o in 0..19 {
            let x = 0.45 * o as f64;
            let (i0, w) = (x.floor() as usize, x - x.floor());
            let i1 = (i0 + 1).min(8);
            for (j, k) in [(0, 0), (3, 2), (7, 5)] {
                let a = volume[[1, i0, j, k + 1]] as f64;
                let b = volume[[1, i1, j, k + 1]] as f64;
                let expected = (a + (b - a) * w) as f32;
                assert_eq!(linear[[1, o, j, k]], expected, "o={o} j={j} k={k}");
            }
        }
    }

    /// A smooth control grid of displacements up to ~2 mm.
    fn control_points() -> Array4<f64> {
        Array4::from_shape_fn((5, 6, 7, 3), |(a, b, c, d)| {
            (((a * 31 + b * 17 + c * 7 + d * 3) % 19) as f64 - 9.0) * 0.2
        })
    }

    /// The control grid `points` of a field on `shape` voxels (voxel -> world
    /// `affine`) as a chain step: evaluated by the kernel, or as its dense
    /// `field`.
    fn bspline_step<'a>(
        dense: bool,
        points: &'a Array4<f64>,
        field: &'a Array4<f32>,
        shape: [usize; 3],
        affine: Matrix4,
    ) -> Step<'a> {
        if dense {
            Step::Field {
                field: field.view(),
                affine,
            }
        } else {
            Step::BSpline {
                coefficients: points.view(),
                shape,
                affine,
            }
        }
    }

    #[test]
    fn bspline_steps_equal_their_dense_fields_bit_for_bit() {
        let volume = ramp((2, 13, 11, 17));
        let labels = volume.mapv(|v| (v as i16) % 5);
        let affine = oblique();
        let points = control_points();
        let shape = [13, 11, 17];
        let field = crate::spatial::bspline::bspline_field(points.view(), shape).unwrap();
        let grid = grid_like(&volume, affine);
        let rotation = affine::multiply(&translation([0.4, -0.3, 0.2]), &oblique());
        // On the output grid first (evaluated per row), then displaced again by
        // an affine; and off the grid (after an affine: evaluated densely).
        let chains = |dense: bool| -> Vec<Vec<Step<'_>>> {
            let step = || bspline_step(dense, &points, &field, shape, affine);
            vec![
                vec![step()],
                vec![step(), Step::Affine(rotation)],
                vec![Step::Affine(rotation), step()],
            ]
        };
        let (lazy, dense) = (chains(false), chains(true));
        for mode in [
            Interpolation::Nearest,
            Interpolation::Linear,
            Interpolation::BSpline,
            Interpolation::Label,
        ] {
            for (a, b) in lazy.iter().zip(&dense) {
                let fill = [-1.0, -2.0];
                let ours = warp(volume.view(), &affine, &grid, a, mode, &fill).unwrap();
                let theirs = warp(volume.view(), &affine, &grid, b, mode, &fill).unwrap();
                assert_eq!(ours, theirs, "{mode:?}");
                let ours = warp(labels.view(), &affine, &grid, a, mode, &fill).unwrap();
                let theirs = warp(labels.view(), &affine, &grid, b, mode, &fill).unwrap();
                assert_eq!(ours, theirs, "{mode:?}");
            }
        }
        // The deformation is real: the warped volume differs from the input.
        let moved = warp(
            volume.view(),
            &affine,
            &grid,
            &lazy[0],
            Interpolation::Linear,
            &[0.0, 0.0],
        )
        .unwrap();
        assert!(moved != volume);
    }

    #[test]
    fn bspline_rows_without_displacement_equal_the_dense_field() {
        // A target grid aligned with the field's but larger: its voxels beyond
        // the field's grid (planes i >= 13, rows j >= 11) have no B-spline
        // support, so no displacement, and the row kernels take the head
        // affine alone there.
        let volume = ramp((1, 13, 11, 17));
        let affine = oblique();
        let points = control_points();
        let shape = [13, 11, 17];
        let field = crate::spatial::bspline::bspline_field(points.view(), shape).unwrap();
        let grid = Grid {
            shape: [16, 14, 17],
            affine,
        };
        let rotation = affine::multiply(&translation([-2.4, -1.3, 0.2]), &oblique());
        let chain = |dense: bool, rotated: bool| {
            let mut chain = vec![bspline_step(dense, &points, &field, shape, affine)];
            if rotated {
                chain.push(Step::Affine(rotation));
            }
            chain
        };
        for mode in [Interpolation::Nearest, Interpolation::Linear] {
            for rotated in [false, true] {
                let fill = [-1.0];
                let lazy = chain(false, rotated);
                let dense = chain(true, rotated);
                let ours = warp(volume.view(), &affine, &grid, &lazy, mode, &fill).unwrap();
                let theirs = warp(volume.view(), &affine, &grid, &dense, mode, &fill).unwrap();
                assert_eq!(ours, theirs, "{mode:?}, rotated {rotated}");
                if rotated {
                    // The rotation brings the planes without support into the volume.
                    let beyond = ours.slice(s![0, 13.., .., ..]);
                    assert!(beyond.iter().filter(|&&v| v != -1.0).count() > 100);
                }
            }
        }
    }

    /// Cubic B-spline displacement at the field's continuous voxel index `v`,
    /// summed over its 64 control points (ITK initializer conventions).
    fn bspline_at(points: &Array4<f64>, shape: [usize; 3], v: [f64; 3]) -> [f64; 3] {
        let mut starts = [0usize; 3];
        let mut weights = [[0.0f64; 4]; 3];
        for d in 0..3 {
            let n = points.shape()[d] as f64;
            let g = (v[d] + 0.625) * (n - 3.0) / (shape[d] as f64 + 0.25) + 1.0;
            if g < 1.0 || g >= n - 2.0 {
                return [0.0; 3];
            }
            let t = g - g.floor();
            starts[d] = g.floor() as usize - 1;
            weights[d] = [
                (1.0 - t).powi(3) / 6.0,
                (3.0 * t.powi(3) - 6.0 * t * t + 4.0) / 6.0,
                (-3.0 * t.powi(3) + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
                t.powi(3) / 6.0,
            ];
        }
        let mut u = [0.0; 3];
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    let w = weights[0][a] * weights[1][b] * weights[2][c];
                    for (d, value) in u.iter_mut().enumerate() {
                        *value += w * points[[starts[0] + a, starts[1] + b, starts[2] + c, d]];
                    }
                }
            }
        }
        u
    }

    #[test]
    fn bspline_on_an_aligned_grid_is_evaluated_at_its_points() {
        // Channel c of the input holds its voxel index along axis c, so the
        // linear warp returns the continuous input index of each output point.
        let shape = [13, 11, 17];
        let volume = Array4::from_shape_fn((3, 13, 11, 17), |(c, i, j, k)| [i, j, k][c] as f32);
        let field_affine = oblique();
        let points = control_points();
        // Coarser along I, finer along J, flipped along K, and shifted.
        let mut scaling = IDENTITY;
        scaling[0] = [1.5, 0.0, 0.0, 0.5];
        scaling[1] = [0.0, 0.8, 0.0, -0.3];
        scaling[2] = [0.0, 0.0, -1.25, 16.2];
        let grid = Grid {
            shape: [9, 15, 13],
            affine: affine::multiply(&field_affine, &scaling),
        };
        let chain = [Step::BSpline {
            coefficients: points.view(),
            shape,
            affine: field_affine,
        }];
        let fill = [-1.0; 3];
        let warped = warp(
            volume.view(),
            &field_affine,
            &grid,
            &chain,
            Interpolation::Linear,
            &fill,
        )
        .unwrap();
        let to_index = affine::invert(&field_affine).unwrap();
        let mut interior = 0;
        for ((i, j, k), _) in warped.index_axis(Axis(0), 0).indexed_iter() {
            let v = affine::apply(&scaling, [i as f64, j as f64, k as f64]);
            let u = bspline_at(&points, shape, v);
            let world = affine::apply(&grid.affine, [i as f64, j as f64, k as f64]);
            let moved = [world[0] + u[0], world[1] + u[1], world[2] + u[2]];
            let x = affine::apply(&to_index, moved);
            if (0..3).all(|d| x[d] >= 0.0 && x[d] <= (shape[d] - 1) as f64) {
                interior += 1;
                for d in 0..3 {
                    let got = warped[[d, i, j, k]] as f64;
                    assert!(
                        (got - x[d]).abs() < 1e-3,
                        "{d} {i} {j} {k}: {got} vs {}",
                        x[d]
                    );
                }
            }
        }
        assert!(interior > 500, "{interior} interior points");
        assert!(
            warped.iter().any(|&v| v == -1.0),
            "some points fall outside"
        );
    }

    #[test]
    fn bspline_grid_at_voxel_equals_the_dense_field() {
        let points = control_points();
        let shape = [9, 12, 10];
        let grid = BSplineGrid::new(points.view(), shape).unwrap();
        let field = grid.dense().unwrap();
        for i in 0..9 {
            for j in 0..12 {
                for k in 0..10 {
                    let u = grid.at_voxel([i, j, k]);
                    for d in 0..3 {
                        assert_eq!(u[d], field[[d, i, j, k]] as f64);
                    }
                }
            }
        }
    }

    /// Resamples with the row kernels directly, with or without the vector ones.
    fn rows_with<T: Voxel>(
        volume: &Array4<T>,
        grid: &Grid,
        chain: &[Step<'_>],
        mode: RowMode,
        allow_vector: bool,
    ) -> Array4<T> {
        let interpolation = match mode {
            RowMode::Nearest => Interpolation::Nearest,
            RowMode::Linear => Interpolation::Linear,
        };
        with_plan(chain, grid, &IDENTITY, interpolation, |plan| {
            Ok(run_rows_on(volume, grid, plan, mode, allow_vector))
        })
        .unwrap()
    }

    fn run_rows_on<T: Voxel>(
        volume: &Array4<T>,
        grid: &Grid,
        plan: &Plan<'_>,
        mode: RowMode,
        allow_vector: bool,
    ) -> Array4<T> {
        let (c, ni, nj, nk) = volume.dim();
        let source = Source {
            data: volume.as_slice().unwrap(),
            dims: [ni, nj, nk],
            channel_len: ni * nj * nk,
        };
        let fill: Vec<T> = (0..c).map(|v| T::from_f64(-1.0 - v as f64)).collect();
        let [oi, oj, ok] = grid.shape;
        resample_rows(
            mode,
            &source,
            &fill,
            plan,
            (c, oi, oj, ok),
            allow_vector,
            None,
        )
        .unwrap()
    }

    /// A rotation about every axis with scaling and an offset that pushes part
    /// of every row outside the input, so rows mix interior runs, border
    /// points and fill.
    fn oblique() -> Matrix4 {
        let (a, b, c) = (0.3f64, -0.2f64, 0.45f64);
        let rx = [
            [1.0, 0.0, 0.0],
            [0.0, a.cos(), -a.sin()],
            [0.0, a.sin(), a.cos()],
        ];
        let ry = [
            [b.cos(), 0.0, b.sin()],
            [0.0, 1.0, 0.0],
            [-b.sin(), 0.0, b.cos()],
        ];
        let rz = [
            [c.cos(), -c.sin(), 0.0],
            [c.sin(), c.cos(), 0.0],
            [0.0, 0.0, 1.0],
        ];
        let mut m = IDENTITY;
        for r in 0..3 {
            for col in 0..3 {
                let mut v = 0.0;
                for p in 0..3 {
                    for q in 0..3 {
                        v += rz[r][p] * ry[p][q] * rx[q][col];
                    }
                }
                m[r][col] = 1.1 * v;
            }
        }
        m[0][3] = 2.3;
        m[1][3] = -3.1;
        m[2][3] = 1.7;
        m
    }

    #[test]
    fn vector_row_kernels_equal_the_scalar_ones_bit_for_bit() {
        let volume = ramp((2, 21, 17, 40)).mapv(|v| v * 0.37 - 5.0);
        let labels = ramp((1, 21, 17, 40)).mapv(|v| (v as u8) % 7);
        let grid = Grid {
            shape: [19, 23, 45],
            affine: IDENTITY,
        };
        // An affine-only chain (incremental rows) and one with a displacement
        // field (coordinates per voxel).
        let field = Array4::from_shape_fn((3, 19, 23, 45), |(d, i, j, k)| {
            0.8 * ((i + 2 * j + 3 * k + d) as f32 * 0.37).sin()
        });
        let chains = [
            vec![Step::Affine(oblique())],
            vec![
                Step::Affine(oblique()),
                Step::Field {
                    field: field.view(),
                    affine: IDENTITY,
                },
            ],
        ];
        for chain in &chains {
            for mode in [RowMode::Linear, RowMode::Nearest] {
                let vector = rows_with(&volume, &grid, chain, mode, true);
                let scalar = rows_with(&volume, &grid, chain, mode, false);
                let same = vector
                    .iter()
                    .zip(&scalar)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "f32 {:?} differs", mode == RowMode::Linear);
                assert!(vector.iter().any(|&v| v == -1.0), "some points are outside");
            }
            let vector = rows_with(&labels, &grid, chain, RowMode::Nearest, true);
            let scalar = rows_with(&labels, &grid, chain, RowMode::Nearest, false);
            assert_eq!(vector, scalar);
        }
    }

    #[test]
    fn vector_row_kernels_equal_the_scalar_ones_on_exact_borders() {
        // Whole and half-voxel shifts put coordinates exactly on the last
        // voxel (x = n - 1, clamped taps with weight 1) and exactly on the
        // snapped inside limits (x = -1/2 and n - 1/2), in partly filled steps.
        let volume = ramp((1, 9, 11, 37)).mapv(|v| v * 0.61 - 2.0);
        let labels = ramp((1, 9, 11, 37)).mapv(|v| (v as u8) % 5);
        let signed = ramp((2, 9, 11, 37)).mapv(|v| (v as i16) * 7 - 9000);
        let grid = Grid {
            shape: [10, 12, 39],
            affine: IDENTITY,
        };
        for shift in [
            [0.0, 0.0, 0.0],
            [0.5, -0.5, 0.5],
            [-0.5, 1.0, -1.5],
            [1.0, 0.25, 2.0],
        ] {
            let mut matrix = IDENTITY;
            for (axis, offset) in shift.iter().enumerate() {
                matrix[axis][3] = *offset;
            }
            let chain = [Step::Affine(matrix)];
            for mode in [RowMode::Linear, RowMode::Nearest] {
                let vector = rows_with(&volume, &grid, &chain, mode, true);
                let scalar = rows_with(&volume, &grid, &chain, mode, false);
                let same = vector
                    .iter()
                    .zip(&scalar)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "shift {shift:?}, linear {}", mode == RowMode::Linear);
            }
            let vector = rows_with(&labels, &grid, &chain, RowMode::Nearest, true);
            let scalar = rows_with(&labels, &grid, &chain, RowMode::Nearest, false);
            assert_eq!(vector, scalar, "labels, shift {shift:?}");
            // Two-byte voxels, negative values and a negative fill (-1).
            let vector = rows_with(&signed, &grid, &chain, RowMode::Nearest, true);
            let scalar = rows_with(&signed, &grid, &chain, RowMode::Nearest, false);
            assert_eq!(vector, scalar, "int16, shift {shift:?}");
            assert!(vector.iter().any(|&v| v == -1) && vector.iter().any(|&v| v < -1));
        }
    }

    #[test]
    fn vector_trilinear_rows_skip_background_bit_for_bit() {
        // Channel 0: a ramp blob on a constant background (the value of the
        // first voxel); channel 1: no background at all. Small and large
        // rotations (lane spans within and beyond the row neighbourhoods),
        // and backgrounds that must stay exact (-0.0 interpolates to +0.0)
        // or must not be skipped (NaN, infinity).
        let (ni, nj, nk) = (23, 19, 57);
        let blob = |i: usize, j: usize, k: usize| {
            let d = |x: usize, n: usize| (x as f64 - n as f64 / 2.0) / (n as f64 / 3.0);
            d(i, ni).powi(2) + d(j, nj).powi(2) + d(k, nk).powi(2) < 1.0
        };
        let grid = Grid {
            shape: [25, 21, 61],
            affine: IDENTITY,
        };
        let mut mild = IDENTITY;
        let (sin, cos) = 0.12f64.sin_cos();
        mild[0][0] = cos;
        mild[0][2] = -sin;
        mild[2][0] = sin;
        mild[2][2] = cos;
        mild[1][2] = 0.09;
        mild[0][3] = -0.7;
        for background in [0.0f32, -0.0, -1024.0, f32::NAN, f32::INFINITY] {
            let volume = Array4::from_shape_fn((2, ni, nj, nk), |(c, i, j, k)| {
                let value = ((i * 7 + j * 3 + k * 11) % 23) as f32 * 0.41 + 1.0;
                if c == 1 || blob(i, j, k) {
                    value
                } else {
                    background
                }
            });
            for matrix in [mild, oblique()] {
                let chain = [Step::Affine(matrix)];
                let vector = rows_with(&volume, &grid, &chain, RowMode::Linear, true);
                let scalar = rows_with(&volume, &grid, &chain, RowMode::Linear, false);
                let same = vector
                    .iter()
                    .zip(&scalar)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "background {background}");
            }
        }
    }

    #[test]
    fn vector_row_kernels_handle_flat_axes() {
        // A 2D image (C, W, H, 1) rotated in plane, and a volume flat along I.
        let image = ramp((1, 30, 26, 1));
        let mut rotation = oblique();
        rotation[2] = [0.0, 0.0, 1.0, 0.0];
        rotation[0][2] = 0.0;
        rotation[1][2] = 0.0;
        let grid = Grid {
            shape: [33, 29, 1],
            affine: IDENTITY,
        };
        let flat_i = ramp((1, 1, 26, 30));
        let mut rotation_jk = oblique();
        rotation_jk[0] = [1.0, 0.0, 0.0, 0.0];
        rotation_jk[1][0] = 0.0;
        rotation_jk[2][0] = 0.0;
        let grid_jk = Grid {
            shape: [1, 29, 33],
            affine: IDENTITY,
        };
        for (volume, grid, matrix) in [(&image, &grid, rotation), (&flat_i, &grid_jk, rotation_jk)]
        {
            for mode in [RowMode::Linear, RowMode::Nearest] {
                let chain = [Step::Affine(matrix)];
                let vector = rows_with(volume, grid, &chain, mode, true);
                let scalar = rows_with(volume, grid, &chain, mode, false);
                assert!(vector
                    .iter()
                    .zip(&scalar)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let volume = ramp((1, 3, 3, 3));
        let grid = grid_like(&volume, IDENTITY);
        let mut singular = IDENTITY;
        singular[1][1] = 0.0;
        let run = |input_affine: &Matrix4, chain: &[Step<'_>], fill: &[f64]| {
            warp(
                volume.view(),
                input_affine,
                &grid,
                chain,
                Interpolation::Linear,
                fill,
            )
        };
        assert!(run(&singular, &[], &[0.0]).is_err());
        assert!(run(&IDENTITY, &[Step::Affine(singular)], &[0.0]).is_err());
        assert!(run(&IDENTITY, &[], &[0.0, 1.0]).is_err());
        assert!(run(&IDENTITY, &[], &[f64::NAN]).is_err());
        let field = Array4::<f32>::zeros((3, 2, 2, 0));
        assert!(run(
            &IDENTITY,
            &[Step::Field {
                field: field.view(),
                affine: IDENTITY
            }],
            &[0.0]
        )
        .is_err());
        let empty = Grid {
            shape: [0, 1, 1],
            affine: IDENTITY,
        };
        assert!(warp(
            volume.view(),
            &IDENTITY,
            &empty,
            &[],
            Interpolation::Nearest,
            &[0.0]
        )
        .is_err());
    }

    #[test]
    fn regions_compute_their_voxels_as_the_whole_warp_does() {
        // A ball on a zero background (skipped taps), an oblique chain and a
        // lazily evaluated B-spline chain; runs of 1 to 40 points (scalar and
        // vector kernels), overlapping boxes.
        let volume = Array4::from_shape_fn((2, 21, 17, 40), |(c, i, j, k)| {
            let r2 =
                (i as f32 - 10.0).powi(2) + (j as f32 - 8.0).powi(2) + (k as f32 - 20.0).powi(2);
            if r2 < 60.0 {
                (c + 1) as f32 * (i * j + k) as f32 * 0.37
            } else {
                0.0
            }
        });
        let labels = volume.mapv(|v| (v as i16) % 5);
        let points = control_points();
        let field_shape = [19, 23, 45];
        let grid = Grid {
            shape: field_shape,
            affine: IDENTITY,
        };
        let boxes = [
            [0, 0, 0, 5, 7, 40],
            [3, 4, 10, 12, 20, 11],
            [10, 2, 30, 19, 23, 45],
            [11, 5, 0, 14, 9, 8],
        ];
        let regions = Regions::from_boxes(field_shape, &boxes).unwrap();
        let chains = [
            vec![Step::Affine(oblique())],
            vec![
                Step::BSpline {
                    coefficients: points.view(),
                    shape: field_shape,
                    affine: IDENTITY,
                },
                Step::Affine(oblique()),
            ],
        ];
        let fill = [-1.0, -2.0];
        // The whole warp, and the warp of the regions with the voxels outside
        // them replaced by the zeros the kernel leaves there.
        fn both<T: Voxel>(
            volume: &Array4<T>,
            grid: &Grid,
            chain: &[Step<'_>],
            mode: Interpolation,
            regions: &Regions,
        ) -> (Array4<T>, Array4<T>) {
            let fill = [-1.0, -2.0];
            let whole = warp(volume.view(), &IDENTITY, grid, chain, mode, &fill).unwrap();
            let part = warp_regions(
                volume.view(),
                &IDENTITY,
                grid,
                chain,
                mode,
                &fill,
                Some(regions),
            )
            .unwrap();
            let mut expected = whole.clone();
            for ((_, i, j, k), value) in expected.indexed_iter_mut() {
                if !regions.contains(i, j, k) {
                    *value = T::default();
                }
            }
            (expected, part)
        }
        for chain in &chains {
            for mode in [Interpolation::Linear, Interpolation::Nearest] {
                let (expected, part) = both(&volume, &grid, chain, mode, &regions);
                let bits = |a: &Array4<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&part), bits(&expected), "{mode:?}");
                assert!(expected.iter().any(|&v| v > 0.0) && expected.iter().any(|&v| v < 0.0));
                let (expected, part) = both(&labels, &grid, chain, mode, &regions);
                assert_eq!(part, expected, "{mode:?}");
            }
        }
        let other = Regions::from_boxes([19, 23, 44], &[]).unwrap();
        let wrong = warp_regions(
            volume.view(),
            &IDENTITY,
            &grid,
            &chains[0],
            Interpolation::Linear,
            &fill,
            Some(&other),
        );
        assert!(wrong.is_err());
    }
}
