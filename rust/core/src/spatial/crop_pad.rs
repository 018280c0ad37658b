//! Cropping and padding a `(C, I, J, K)` volume in one pass (TorchIO's `Crop`,
//! `Pad` and `CropOrPad`), with `numpy.pad`'s padding modes.
//!
//! The output voxel `(c, i, j, k)` reads the input at
//! `(c, i + start_i, j + start_j, k + start_k)`. A negative start pads before
//! the volume, a positive one crops; an output longer than what remains pads
//! after it. Out-of-bounds voxels take the value `numpy.pad` would give if the
//! volume were first padded (by `max(0, -start)` before and
//! `max(0, start + out - n)` after each axis) and then sliced: pad-then-crop,
//! the order TorchIO's `CropOrPad` uses.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::stream::copy_streaming;
use crate::volume::{check_not_empty, Voxel};

/// How voxels outside the input are filled (`numpy.pad` modes).
///
/// numpy's `'empty'` maps to `Constant(0.0)`. Its statistic modes (`mean`,
/// `median`, `minimum`, `maximum`) compute along each axis, whereas TorchIO
/// pads with one statistic of the whole image: the caller computes it and
/// passes it as a constant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant value (truncated towards zero for integer volumes, like NumPy).
    Constant(f64),
    /// The nearest edge voxel.
    Edge,
    /// Periodic continuation (`x[n] = x[0]`).
    Wrap,
    /// Mirror without repeating the edge (`x[-1] = x[1]`).
    Reflect,
    /// Mirror repeating the edge (`x[-1] = x[0]`).
    Symmetric,
    /// A linear ramp from the edge voxel to this end value at the outer border.
    LinearRamp(f64),
}

impl PadMode {
    /// Parses a `numpy.pad` mode name; `value` is the constant or the ramp's end value.
    pub fn parse(name: &str, value: f64) -> Result<Self> {
        Ok(match name {
            "constant" => Self::Constant(value),
            "empty" => Self::Constant(0.0),
            "edge" => Self::Edge,
            "wrap" => Self::Wrap,
            "reflect" => Self::Reflect,
            "symmetric" => Self::Symmetric,
            "linear_ramp" => Self::LinearRamp(value),
            "mean" | "median" | "minimum" | "maximum" => {
                return Err(Error::InvalidArgument(format!(
                    "pad mode {name:?} must be computed by the caller and passed as mode \
                     'constant' with that value"
                )))
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown pad mode {other:?}; expected one of 'constant', 'empty', 'edge', \
                     'wrap', 'reflect', 'symmetric', 'linear_ramp'"
                )))
            }
        })
    }
}

/// Geometry of one spatial axis: input length, start offset, output length,
/// and the pad widths of the equivalent pad-then-crop.
#[derive(Debug, Clone, Copy)]
struct Axis {
    n: usize,
    start: i64,
    out: usize,
    /// Pad width before the input (`max(0, -start)`).
    before: usize,
    /// Pad width after the input (`max(0, start + out - n)`).
    after: usize,
}

impl Axis {
    fn new(n: usize, start: i64, out: usize, name: char) -> Result<Self> {
        let overflow = || {
            Error::InvalidArgument(format!(
                "start {start} and output length {out} along axis {name} overflow"
            ))
        };
        let n_i = i64::try_from(n).map_err(|_| overflow())?;
        let out_i = i64::try_from(out).map_err(|_| overflow())?;
        let end = start.checked_add(out_i).ok_or_else(overflow)?;
        let before = usize::try_from((-start).max(0)).map_err(|_| overflow())?;
        let after_i = end.checked_sub(n_i).ok_or_else(overflow)?.max(0);
        let after = usize::try_from(after_i).map_err(|_| overflow())?;
        Ok(Self {
            n,
            start,
            out,
            before,
            after,
        })
    }

    /// Coordinate in the input's frame of output index `o` (may be outside `0..n`).
    #[inline]
    fn coordinate(&self, o: usize) -> i64 {
        // Axis::new checked that start + out fits in i64.
        self.start + o as i64
    }

    /// Input index for coordinate `p`: itself when inside, else the mode's rule
    /// (`None` for the constant and ramp modes).
    fn source(&self, p: i64, mode: PadMode) -> Option<usize> {
        let n = self.n as i64;
        if (0..n).contains(&p) {
            return Some(p as usize);
        }
        let index = match mode {
            PadMode::Constant(_) | PadMode::LinearRamp(_) => return None,
            PadMode::Edge => p.clamp(0, n - 1),
            PadMode::Wrap => p.rem_euclid(n),
            // A single voxel reflects onto itself (numpy's legacy edge behaviour).
            PadMode::Reflect if n == 1 => 0,
            PadMode::Reflect => {
                let period = 2 * (n - 1);
                let r = p.rem_euclid(period);
                if r < n {
                    r
                } else {
                    period - r
                }
            }
            PadMode::Symmetric => {
                let period = 2 * n;
                let r = p.rem_euclid(period);
                if r < n {
                    r
                } else {
                    period - 1 - r
                }
            }
        };
        Some(index as usize)
    }

    /// Nearest input index of coordinate `p`.
    #[inline]
    fn clamped(&self, p: i64) -> usize {
        p.clamp(0, self.n as i64 - 1) as usize
    }

    /// Position of coordinate `p` in numpy's ramp: `(side, width, t)` where the
    /// ramp value is `end + t * (edge - end) / width`; `None` inside the input.
    fn ramp(&self, p: i64) -> Option<(usize, usize, usize)> {
        let n = self.n as i64;
        if p < 0 {
            // numpy's left ramp starts at the end value (t = 0) at the outer border.
            Some((0, self.before, (p + self.before as i64) as usize))
        } else if p >= n {
            // The right ramp is the same linspace reversed.
            let q = (p - n) as usize;
            Some((1, self.after, self.after - 1 - q))
        } else {
            None
        }
    }

    /// The range of coordinates numpy's padded array spans along this axis.
    fn padded_range(&self) -> std::ops::Range<i64> {
        -(self.before as i64)..(self.n + self.after) as i64
    }
}

/// Converts a constant pad value to the voxel type like NumPy assignment does
/// (integers truncate towards zero), rejecting values the type cannot hold.
fn constant_voxel<T: Voxel>(value: f64) -> Result<T> {
    if T::IS_FLOAT {
        return Ok(T::from_f64(value));
    }
    let truncated = value.trunc();
    if !value.is_finite() || truncated < T::MIN.to_f64() || truncated > T::MAX.to_f64() {
        return Err(Error::InvalidArgument(format!(
            "pad value {value} cannot be stored in an integer volume with range [{:?}, {:?}]",
            T::MIN,
            T::MAX
        )));
    }
    Ok(T::from_f64(truncated))
}

/// One value of `numpy.linspace(end, edge, width, endpoint=False)` at index `t`,
/// computed in float64 the way NumPy does, then floored for integer types.
///
/// `divide_first` reproduces NumPy's special path taken when the step of any
/// element of the edge array is zero.
#[inline]
fn ramp_value<T: Voxel>(end: f64, edge: T, width: usize, t: usize, divide_first: bool) -> T {
    let delta = edge.to_f64() - end;
    let y = if divide_first {
        (t as f64 / width as f64) * delta
    } else {
        t as f64 * (delta / width as f64)
    } + end;
    if T::IS_FLOAT {
        T::from_f64(y)
    } else {
        T::from_f64(y.floor())
    }
}

/// Allocates a zero-filled `(C, I, J, K)` output, failing cleanly when it
/// cannot exist.
fn allocate<T: Voxel>(shape: (usize, usize, usize, usize)) -> Result<Array4<T>> {
    let len = shape
        .0
        .checked_mul(shape.1)
        .and_then(|v| v.checked_mul(shape.2))
        .and_then(|v| v.checked_mul(shape.3))
        .filter(|&v| {
            v.checked_mul(std::mem::size_of::<T>())
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| Error::InvalidArgument(format!("output shape {shape:?} is too large")))?;
    // Probe the allocation first so an impossible size is an error, not an abort.
    let mut probe: Vec<T> = Vec::new();
    probe.try_reserve_exact(len).map_err(|_| {
        Error::InvalidArgument(format!("cannot allocate an output of shape {shape:?}"))
    })?;
    drop(probe);
    // `vec!` of a zero value uses a zeroed allocation: no extra pass over memory.
    Array4::from_shape_vec(shape, vec![T::default(); len])
        .map_err(|e| Error::Shape(format!("output of shape {shape:?}: {e}")))
}

/// Crops and/or pads `volume` to spatial shape `shape`, reading input voxel
/// `(i + start[0], j + start[1], k + start[2])` for output voxel `(i, j, k)`.
///
/// Voxels outside the input follow `mode` with `numpy.pad`'s exact semantics
/// (including pads wider than the axis for wrap, reflect and symmetric, and
/// the axis-by-axis ramps of `linear_ramp`). Returns a new C-order array of
/// shape `(C, shape[0], shape[1], shape[2])`.
///
/// # Errors
/// `Error::Empty` for an empty volume, `Error::InvalidArgument` for an output
/// shape with a zero extent, a constant an integer volume cannot hold, a
/// non-finite ramp end value, or offsets that overflow.
pub fn crop_pad<T: Voxel>(
    volume: ArrayView4<'_, T>,
    start: [i64; 3],
    shape: [usize; 3],
    mode: PadMode,
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    if shape.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "output spatial shape must be positive, got {shape:?}"
        )));
    }
    let (channels, ni, nj, nk) = volume.dim();
    let axes = [
        Axis::new(ni, start[0], shape[0], 'I')?,
        Axis::new(nj, start[1], shape[1], 'J')?,
        Axis::new(nk, start[2], shape[2], 'K')?,
    ];
    let mut output = allocate::<T>((channels, shape[0], shape[1], shape[2]))?;
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape(
            "freshly allocated output is not contiguous".into(),
        ));
    };
    let volume = volume.as_standard_layout();
    let Some(input) = volume.as_slice() else {
        return Err(Error::Shape(
            "standard-layout input is not contiguous".into(),
        ));
    };
    match mode {
        PadMode::LinearRamp(end) => {
            if !end.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "linear_ramp end value must be finite, got {end}"
                )));
            }
            // numpy's ramps depend on edge planes of the whole padded array; refuse
            // pads so wide that scanning those planes would take minutes.
            let scan = edge_scan_len(channels, &axes);
            if scan > MAX_EDGE_SCAN {
                return Err(Error::InvalidArgument(format!(
                    "linear_ramp pads are too wide: the padded edge planes hold {scan} voxels \
                     (at most {MAX_EDGE_SCAN})"
                )));
            }
            fill_linear_ramp(input, (channels, ni, nj, nk), &axes, end, out);
        }
        _ => {
            let constant = match mode {
                PadMode::Constant(value) => constant_voxel::<T>(value)?,
                _ => T::default(),
            };
            fill_mapped(input, (channels, ni, nj, nk), &axes, mode, constant, out);
        }
    }
    Ok(output)
}

/// Constant, edge, wrap, reflect and symmetric: every output voxel copies one
/// input voxel (or the constant), and the index maps are separable per axis.
fn fill_mapped<T: Voxel>(
    input: &[T],
    dims: (usize, usize, usize, usize),
    axes: &[Axis; 3],
    mode: PadMode,
    constant: T,
    out: &mut [T],
) {
    let (_, ni, nj, nk) = dims;
    let maps: [Vec<Option<usize>>; 3] = std::array::from_fn(|a| {
        let axis = &axes[a];
        (0..axis.out)
            .map(|o| axis.source(axis.coordinate(o), mode))
            .collect()
    });
    let (oi, oj, ok) = (axes[0].out, axes[1].out, axes[2].out);
    // Output K positions that read the input K row contiguously.
    let k_axis = &axes[2];
    let run_start = usize::try_from((-k_axis.start).max(0)).unwrap_or(0).min(ok);
    let run_end = usize::try_from((nk as i64 - k_axis.start).clamp(0, ok as i64)).unwrap_or(0);
    let run_end = run_end.max(run_start);
    let map_k = &maps[2];
    // Output planes that are whole input planes (a copy, or a crop along I only).
    let whole_planes = [&axes[1], &axes[2]]
        .iter()
        .all(|axis| axis.start == 0 && axis.out == axis.n);

    out.par_chunks_mut(oj * ok)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (c, i) = (plane_index / oi, plane_index % oi);
            let Some(si) = maps[0][i] else {
                plane.fill(constant);
                return;
            };
            let source_plane = &input[(c * ni + si) * nj * nk..][..nj * nk];
            if whole_planes {
                copy_streaming(plane, source_plane);
                return;
            }
            for (j, row) in plane.chunks_mut(ok).enumerate() {
                let Some(sj) = maps[1][j] else {
                    row.fill(constant);
                    continue;
                };
                let source_row = &source_plane[sj * nk..][..nk];
                for (o, value) in row[..run_start].iter_mut().zip(&map_k[..run_start]) {
                    *o = value.map_or(constant, |k| source_row[k]);
                }
                if run_end > run_start {
                    let first = (run_start as i64 + k_axis.start) as usize;
                    row[run_start..run_end]
                        .copy_from_slice(&source_row[first..first + (run_end - run_start)]);
                }
                for (o, value) in row[run_end..].iter_mut().zip(&map_k[run_end..]) {
                    *o = value.map_or(constant, |k| source_row[k]);
                }
            }
        });
}

/// Per output coordinate of one axis: nearest input index and ramp position.
struct RampAxis {
    clamped: Vec<usize>,
    ramp: Vec<Option<(usize, usize, usize)>>,
}

/// numpy's `linear_ramp`: axes are padded in order I, J, K, each ramp running
/// from the end value to the edge of the array padded along the previous axes.
fn fill_linear_ramp<T: Voxel>(
    input: &[T],
    dims: (usize, usize, usize, usize),
    axes: &[Axis; 3],
    end: f64,
    out: &mut [T],
) {
    let (_, ni, nj, nk) = dims;
    let divide_first = divide_first_flags(input, dims, axes, end);
    let plans: [RampAxis; 3] = std::array::from_fn(|a| {
        let axis = &axes[a];
        let coords: Vec<i64> = (0..axis.out).map(|o| axis.coordinate(o)).collect();
        RampAxis {
            clamped: coords.iter().map(|&p| axis.clamped(p)).collect(),
            ramp: coords.iter().map(|&p| axis.ramp(p)).collect(),
        }
    });
    let (oi, oj, ok) = (axes[0].out, axes[1].out, axes[2].out);
    out.par_chunks_mut(oj * ok)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (c, i) = (plane_index / oi, plane_index % oi);
            let si = plans[0].clamped[i];
            let ramp_i = plans[0].ramp[i];
            let source_plane = &input[(c * ni + si) * nj * nk..][..nj * nk];
            for (j, row) in plane.chunks_mut(ok).enumerate() {
                let sj = plans[1].clamped[j];
                let ramp_j = plans[1].ramp[j];
                let source_row = &source_plane[sj * nk..][..nk];
                for (k, o) in row.iter_mut().enumerate() {
                    let mut value = source_row[plans[2].clamped[k]];
                    for (a, ramp) in [ramp_i, ramp_j, plans[2].ramp[k]].into_iter().enumerate() {
                        if let Some((side, width, t)) = ramp {
                            value = ramp_value(end, value, width, t, divide_first[a][side]);
                        }
                    }
                    *o = value;
                }
            }
        });
}

/// Largest number of edge voxels [`divide_first_flags`] may scan.
const MAX_EDGE_SCAN: u128 = 1 << 31;

/// Number of voxels in the edge arrays numpy's `linear_ramp` reads (saturating).
fn edge_scan_len(channels: usize, axes: &[Axis; 3]) -> u128 {
    (0..3)
        .map(|a| {
            (0..3).filter(|&b| b != a).fold(channels as u128, |acc, b| {
                let extent = if b < a {
                    axes[b].n as u128 + axes[b].before as u128 + axes[b].after as u128
                } else {
                    axes[b].n as u128
                };
                acc.saturating_mul(extent)
            })
        })
        .fold(0u128, u128::saturating_add)
}

/// For each axis and side, whether NumPy's `linspace` takes its
/// divide-then-multiply path: it does when the step is zero for ANY element of
/// the edge array (all channels, padded extent of earlier axes, input extent
/// of later ones), which changes the rounding of every ramp on that side.
fn divide_first_flags<T: Voxel>(
    input: &[T],
    dims: (usize, usize, usize, usize),
    axes: &[Axis; 3],
    end: f64,
) -> [[bool; 2]; 3] {
    let (channels, ni, nj, nk) = dims;
    let mut flags = [[false; 2]; 3];
    for a in 0..3 {
        for side in 0..2 {
            let width = if side == 0 {
                axes[a].before
            } else {
                axes[a].after
            };
            if width == 0 {
                continue;
            }
            let edge = if side == 0 { 0 } else { axes[a].n as i64 - 1 };
            // Coordinates spanned by the edge array along each axis.
            let range = |b: usize| -> std::ops::Range<i64> {
                if b == a {
                    edge..edge + 1
                } else if b < a {
                    axes[b].padded_range()
                } else {
                    0..axes[b].n as i64
                }
            };
            let step_is_zero = |value: T| (value.to_f64() - end) / width as f64 == 0.0;
            let earlier = flags;
            let found = (0..channels).any(|c| {
                range(0).any(|p0| {
                    range(1).any(|p1| {
                        range(2).any(|p2| {
                            let p = [p0, p1, p2];
                            let index = ((c * ni + axes[0].clamped(p0)) * nj + axes[1].clamped(p1))
                                * nk
                                + axes[2].clamped(p2);
                            let mut value = input[index];
                            // The edge array holds values padded along earlier axes only.
                            for b in 0..a {
                                if let Some((s, w, t)) = axes[b].ramp(p[b]) {
                                    value = ramp_value(end, value, w, t, earlier[b][s]);
                                }
                            }
                            step_is_zero(value)
                        })
                    })
                })
            });
            flags[a][side] = found;
        }
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{s, Array};
    use proptest::prelude::*;

    fn ramp_volume(shape: (usize, usize, usize, usize)) -> Array4<f64> {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Array::from_iter((0..n).map(|v| (v * 7 % 23) as f64 - 5.0))
            .into_shape_with_order(shape)
            .unwrap()
    }

    /// Naive reference: the separable per-axis maps applied voxel by voxel.
    fn naive(
        volume: &Array4<f64>,
        start: [i64; 3],
        shape: [usize; 3],
        mode: PadMode,
    ) -> Array4<f64> {
        let (c, ni, nj, nk) = volume.dim();
        let n = [ni, nj, nk];
        let map = |p: i64, n: usize| -> Option<usize> {
            let n = n as i64;
            if (0..n).contains(&p) {
                return Some(p as usize);
            }
            match mode {
                PadMode::Constant(_) | PadMode::LinearRamp(_) => None,
                PadMode::Edge => Some(p.clamp(0, n - 1) as usize),
                PadMode::Wrap => Some(p.rem_euclid(n) as usize),
                // Walk reflections one step at a time.
                PadMode::Reflect | PadMode::Symmetric => {
                    if n == 1 {
                        return Some(0);
                    }
                    let sym = matches!(mode, PadMode::Symmetric);
                    let mut q = p;
                    loop {
                        if q < 0 {
                            q = if sym { -q - 1 } else { -q };
                        } else if q >= n {
                            q = if sym { 2 * n - 1 - q } else { 2 * n - 2 - q };
                        } else {
                            return Some(q as usize);
                        }
                    }
                }
            }
        };
        let constant = if let PadMode::Constant(v) = mode {
            v
        } else {
            0.0
        };
        Array4::from_shape_fn((c, shape[0], shape[1], shape[2]), |(ch, i, j, k)| {
            let idx = [i, j, k];
            let mut src = [0usize; 3];
            for a in 0..3 {
                match map(idx[a] as i64 + start[a], n[a]) {
                    Some(s) => src[a] = s,
                    None => return constant,
                }
            }
            volume[[ch, src[0], src[1], src[2]]]
        })
    }

    #[test]
    fn pure_crop_is_a_slice() {
        let volume = ramp_volume((2, 5, 6, 7));
        let out = crop_pad(volume.view(), [1, 2, 0], [3, 2, 7], PadMode::Edge).unwrap();
        assert_eq!(out, volume.slice(s![.., 1..4, 2..4, 0..7]).to_owned());
    }

    #[test]
    fn constant_pad_places_input_and_fills_border() {
        let volume = ramp_volume((1, 2, 2, 2));
        let out = crop_pad(
            volume.view(),
            [-1, -1, -1],
            [4, 4, 4],
            PadMode::Constant(9.5),
        )
        .unwrap();
        assert_eq!(out.slice(s![.., 1..3, 1..3, 1..3]), volume);
        assert_eq!(out[[0, 0, 0, 0]], 9.5);
        assert_eq!(out[[0, 3, 2, 1]], 9.5);
        assert_eq!(out.iter().filter(|&&v| v == 9.5).count(), 64 - 8);
    }

    #[test]
    fn one_dimensional_modes_match_hand_computed_numpy_output() {
        // np.pad(np.array([1., 2., 3.]), (4, 4), mode) for each mode.
        let volume = Array4::from_shape_vec((1, 1, 1, 3), vec![1.0, 2.0, 3.0]).unwrap();
        let run = |mode| {
            crop_pad(volume.view(), [0, 0, -4], [1, 1, 11], mode)
                .unwrap()
                .iter()
                .copied()
                .collect::<Vec<f64>>()
        };
        assert_eq!(
            run(PadMode::Edge),
            [1., 1., 1., 1., 1., 2., 3., 3., 3., 3., 3.]
        );
        assert_eq!(
            run(PadMode::Wrap),
            [3., 1., 2., 3., 1., 2., 3., 1., 2., 3., 1.]
        );
        assert_eq!(
            run(PadMode::Reflect),
            [1., 2., 3., 2., 1., 2., 3., 2., 1., 2., 3.]
        );
        assert_eq!(
            run(PadMode::Symmetric),
            [3., 3., 2., 1., 1., 2., 3., 3., 2., 1., 1.]
        );
        // np.pad([1, 2, 3], (4, 4), 'linear_ramp', end_values=5)
        assert_eq!(
            run(PadMode::LinearRamp(5.0)),
            [5., 4., 3., 2., 1., 2., 3., 3.5, 4., 4.5, 5.]
        );
    }

    #[test]
    fn integer_ramps_floor_and_constants_truncate() {
        // np.pad(np.array([10], np.uint8), (3, 0), 'linear_ramp', end_values=0) == [0, 3, 6, 10]
        let volume = Array4::from_shape_vec((1, 1, 1, 1), vec![10u8]).unwrap();
        let out = crop_pad(
            volume.view(),
            [0, 0, -3],
            [1, 1, 4],
            PadMode::LinearRamp(0.0),
        )
        .unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), [0, 3, 6, 10]);
        let out = crop_pad(volume.view(), [0, 0, -1], [1, 1, 2], PadMode::Constant(2.9)).unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), [2, 10]);
        let volume = Array4::from_shape_vec((1, 1, 1, 1), vec![-10i16]).unwrap();
        let out = crop_pad(
            volume.view(),
            [0, 0, -1],
            [1, 1, 2],
            PadMode::Constant(-2.9),
        )
        .unwrap();
        assert_eq!(out.iter().copied().collect::<Vec<_>>(), [-2, -10]);
    }

    #[test]
    fn bad_arguments_are_errors() {
        let volume = ramp_volume((1, 2, 2, 2));
        let v = volume.view();
        assert!(matches!(
            crop_pad(v, [0; 3], [0, 2, 2], PadMode::Edge),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            crop_pad(v, [i64::MAX, 0, 0], [2, 2, 2], PadMode::Edge),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            crop_pad(v, [0; 3], [2, 2, 2], PadMode::LinearRamp(f64::NAN)),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            crop_pad(
                v,
                [-(1 << 40), -(1 << 40), 0],
                [2, 2, 2],
                PadMode::LinearRamp(0.0)
            ),
            Err(Error::InvalidArgument(_))
        ));
        let ints = Array4::<u8>::zeros((1, 2, 2, 2));
        for value in [f64::NAN, 256.0, -1.0] {
            assert!(matches!(
                crop_pad(ints.view(), [-1, 0, 0], [3, 2, 2], PadMode::Constant(value)),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            crop_pad(v, [0; 3], [usize::MAX / 4, 2, 2], PadMode::Edge),
            Err(Error::InvalidArgument(_))
        ));
        let empty = Array4::<f32>::zeros((1, 0, 2, 2));
        assert!(matches!(
            crop_pad(empty.view(), [0; 3], [1, 1, 1], PadMode::Edge),
            Err(Error::Empty(_))
        ));
        assert!(PadMode::parse("mean", 0.0).is_err());
        assert!(PadMode::parse("bogus", 0.0).is_err());
        assert_eq!(
            PadMode::parse("empty", 3.0).unwrap(),
            PadMode::Constant(0.0)
        );
    }

    #[test]
    fn non_contiguous_input_is_handled() {
        let volume = ramp_volume((2, 4, 5, 6));
        let transposed = volume.view().reversed_axes();
        let transposed = transposed.permuted_axes([3, 2, 1, 0]);
        // reversed_axes + permuted back gives the same logical array with other strides.
        let out = crop_pad(transposed, [-2, 1, -1], [5, 3, 9], PadMode::Reflect).unwrap();
        let expected = naive(&volume, [-2, 1, -1], [5, 3, 9], PadMode::Reflect);
        assert_eq!(out, expected);
    }

    fn mode_strategy() -> impl Strategy<Value = PadMode> {
        prop_oneof![
            Just(PadMode::Constant(-3.5)),
            Just(PadMode::Edge),
            Just(PadMode::Wrap),
            Just(PadMode::Reflect),
            Just(PadMode::Symmetric),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_naive_reference(
            shape in (1usize..3, 1usize..6, 1usize..6, 1usize..6),
            start in prop::array::uniform3(-12i64..12),
            out in prop::array::uniform3(1usize..14),
            mode in mode_strategy(),
        ) {
            let volume = ramp_volume(shape);
            let result = crop_pad(volume.view(), start, out, mode).unwrap();
            prop_assert_eq!(result, naive(&volume, start, out, mode));
        }

        #[test]
        fn thread_count_does_not_change_the_result(
            start in prop::array::uniform3(-6i64..6),
            mode in prop_oneof![mode_strategy(), Just(PadMode::LinearRamp(2.0))],
        ) {
            let volume = ramp_volume((2, 5, 4, 3));
            let run = |threads| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
                    .install(|| crop_pad(volume.view(), start, [7, 6, 8], mode).unwrap())
            };
            prop_assert_eq!(run(1), run(3));
        }
    }
}
