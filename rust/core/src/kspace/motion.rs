//! TorchIO's `Motion` k-space assembly: the centred spectrum is cut into
//! contiguous segments along the last axis (K), each segment is taken from the
//! spectrum of a different image (the original or a rigidly moved copy), and
//! the real part of the inverse FFT is returned as float32.
//!
//! Choosing segments along K is a multiplication of each image's 3D spectrum
//! by an indicator that depends on the K frequency only, so (as for ghosting)
//! the FFTs along I and J cancel: each output row is
//! `Re(ifft(sum_v w_v * fft(row_v)))`. The weights of all sources add up to 1
//! at every frequency, so with one contributing source `r` as the reference
//! the row is `row_r + Re(ifft(sum_{v != r} w_v * fft(row_v - row_r)))`: one
//! forward FFT fewer per row than filtering every source, and the reference
//! passes through exactly. With real symmetric weights two rows share each
//! complex FFT (real and imaginary parts).
//!
//! [`motion_rigid`] resamples the moved copies slab by slab (a few I planes
//! at a time, with the spatial warp kernel on a sub-grid) and assembles each
//! slab while it is still in cache, instead of materialising whole moved
//! volumes.

use std::mem::MaybeUninit;

use ndarray::{s, Array4, ArrayView2, ArrayView3, ArrayView4, Axis};
use num_complex::Complex;
use rayon::prelude::*;
use rustfft::num_traits::Zero;

use super::fft::{symmetric_weights, PairPlans, PairWorkspace, Real, SpectralVoxel};
use crate::affine::{self, Matrix4, IDENTITY};
use crate::error::{Error, Result};
use crate::spatial::interpolation::Interpolation;
use crate::spatial::warp::{warp, Grid, Step};
use crate::volume::{check_not_empty, check_same_shape, Voxel};

/// I planes that [`motion_rigid`] resamples and assembles per task (nearest and
/// linear): small enough that the moved copies of a slab stay in cache between
/// the resampling and the FFTs, large enough to amortise a warp call.
const SLAB_PLANES: usize = 2;

/// How the sources make up the output: a reference source that passes through,
/// plus the other contributing sources filtered by their weights.
struct Assembly<F: Real> {
    reference: usize,
    /// `(source, symmetric weights / n)` of every other contributing source.
    others: Vec<(usize, Vec<F>)>,
    plans: PairPlans<F>,
}

impl<F: Real> Assembly<F> {
    /// Validates the segments of lines of length `nk` over `num_sources`
    /// images and derives each source's weights.
    fn new(
        nk: usize,
        num_sources: usize,
        segment_ends: &[usize],
        segment_sources: &[usize],
    ) -> Result<Self> {
        if segment_ends.is_empty() || segment_ends.len() != segment_sources.len() {
            return Err(Error::InvalidArgument(format!(
                "need one source per segment, got {} segment ends and {} sources",
                segment_ends.len(),
                segment_sources.len()
            )));
        }
        if segment_ends.windows(2).any(|w| w[0] > w[1]) || segment_ends.last() != Some(&nk) {
            return Err(Error::InvalidArgument(format!(
                "segment ends must be non-decreasing and end at the last axis length {nk}, got {segment_ends:?}"
            )));
        }
        if let Some(&bad) = segment_sources.iter().find(|&&v| v >= num_sources) {
            return Err(Error::InvalidArgument(format!(
                "segment source {bad} does not exist ({num_sources} images)"
            )));
        }
        // Weight of every source over the shifted K indices.
        let mut shifted_weights = vec![vec![0.0f64; nk]; num_sources];
        let mut start = 0;
        for (&end, &source) in segment_ends.iter().zip(segment_sources) {
            shifted_weights[source][start..end]
                .iter_mut()
                .for_each(|w| *w = 1.0);
            start = end;
        }
        let contributing: Vec<usize> = (0..num_sources)
            .filter(|&v| shifted_weights[v].iter().any(|&w| w != 0.0))
            .collect();
        // The last segment ends at nk > 0, so some source contributes; the
        // input is preferred as the reference, since it needs no resampling.
        let reference = contributing.first().copied().unwrap_or(0);
        let scale = 1.0 / nk as f64;
        let others = contributing
            .iter()
            .filter(|&&v| v != reference)
            .map(|&v| {
                let weights = symmetric_weights(&shifted_weights[v])
                    .into_iter()
                    .map(|w| F::real_from_f64(w * scale))
                    .collect();
                (v, weights)
            })
            .collect();
        Ok(Self {
            reference,
            others,
            plans: PairPlans::new(nk),
        })
    }

    /// Whether source `v` is read at all.
    fn uses(&self, v: usize) -> bool {
        v == self.reference || self.others.iter().any(|(o, _)| *o == v)
    }

    fn workspace(&self) -> Workspace<F> {
        Workspace {
            pair: self.plans.workspace(),
            reference: vec![Complex::zero(); self.plans.n],
        }
    }
}

/// Per-task buffers of [`assemble_plane`].
struct Workspace<F: Real> {
    pair: PairWorkspace<F>,
    /// Two reference rows (real and imaginary parts).
    reference: Vec<Complex<F>>,
}

/// One source's `(J, K)` plane: the input in its own type, or a resampled
/// float32 copy.
#[derive(Clone, Copy)]
enum Plane<'a, T> {
    Input(ArrayView2<'a, T>),
    Moved(ArrayView2<'a, f32>),
}

/// Loads `first` into the real parts of `buffer` and `second` (or zeros) into
/// the imaginary parts.
fn load_rows<V: Copy, F: Real>(
    buffer: &mut [Complex<F>],
    first: &[V],
    second: Option<&[V]>,
    convert: impl Fn(V) -> F,
) {
    match second {
        Some(second) => {
            for ((value, &a), &b) in buffer.iter_mut().zip(first).zip(second) {
                *value = Complex::new(convert(a), convert(b));
            }
        }
        None => {
            for (value, &a) in buffer.iter_mut().zip(first) {
                *value = Complex::new(convert(a), F::zero());
            }
        }
    }
}

/// [`load_rows`] for rows `j` and `j + 1` (if `paired`) of a plane, through
/// slices when the plane is contiguous (the usual case, and the fast one).
fn load_plane_rows<V: Copy, F: Real>(
    buffer: &mut [Complex<F>],
    plane: &ArrayView2<'_, V>,
    j: usize,
    paired: bool,
    convert: impl Fn(V) -> F,
) {
    let nk = plane.ncols();
    match plane.as_slice() {
        Some(values) => load_rows(
            buffer,
            &values[j * nk..(j + 1) * nk],
            paired.then(|| &values[(j + 1) * nk..(j + 2) * nk]),
            convert,
        ),
        None => {
            let first: Vec<V> = plane.row(j).to_vec();
            let second: Option<Vec<V>> = paired.then(|| plane.row(j + 1).to_vec());
            load_rows(buffer, &first, second.as_deref(), convert);
        }
    }
}

impl<T: SpectralVoxel> Plane<'_, T> {
    /// Loads row `j` into the real parts of `buffer` and row `j + 1` (zero
    /// unless `paired`) into the imaginary parts.
    fn load_pair(&self, buffer: &mut [Complex<T::F>], j: usize, paired: bool) {
        match self {
            Plane::Input(p) => load_plane_rows(buffer, p, j, paired, |v: T| v.to_real()),
            Plane::Moved(p) => {
                load_plane_rows(buffer, p, j, paired, |v| T::F::real_from_f64(f64::from(v)))
            }
        }
    }
}

/// Assembles one output `(J, K)` plane from the same plane of every source
/// (`planes[v]` for source `v`; unused sources may hold any plane), writing
/// every element of `out`.
fn assemble_plane<T: SpectralVoxel>(
    assembly: &Assembly<T::F>,
    planes: &[Plane<'_, T>],
    out: &mut [MaybeUninit<f32>],
    work: &mut Workspace<T::F>,
) {
    let nk = assembly.plans.n;
    let nj = out.len() / nk;
    let reference = planes[assembly.reference];
    for j in (0..nj).step_by(2) {
        let paired = j + 1 < nj;
        reference.load_pair(&mut work.reference, j, paired);
        if !assembly.others.is_empty() {
            let pair = &mut work.pair;
            pair.accumulator
                .iter_mut()
                .for_each(|a| *a = Complex::zero());
            for (source, weights) in &assembly.others {
                planes[*source].load_pair(&mut pair.buffer, j, paired);
                pair.buffer
                    .iter_mut()
                    .zip(&work.reference)
                    .for_each(|(b, &r)| *b = *b - r);
                assembly.plans.forward(&mut pair.buffer, &mut pair.scratch);
                pair.accumulator
                    .iter_mut()
                    .zip(&pair.buffer)
                    .zip(weights)
                    .for_each(|((a, &x), &w)| *a = *a + x * w);
            }
            assembly
                .plans
                .inverse(&mut pair.accumulator, &mut pair.scratch);
            work.reference
                .iter_mut()
                .zip(&pair.accumulator)
                .for_each(|(r, &a)| *r = *r + a);
        }
        for (o, v) in out[j * nk..(j + 1) * nk].iter_mut().zip(&work.reference) {
            o.write(v.re.real_to_f32());
        }
        if paired {
            let row = &mut out[(j + 1) * nk..(j + 2) * nk];
            for (o, v) in row.iter_mut().zip(&work.reference) {
                o.write(v.im.real_to_f32());
            }
        }
    }
}

/// Assembles TorchIO's motion-corrupted image.
///
/// * `original`: the `(C, I, J, K)` input (source index 0).
/// * `moved`: rigidly resampled copies, float32, same shape (source indices
///   `1..=moved.len()`).
/// * `segment_ends`: end (exclusive, in shifted K indices) of each segment;
///   segment `s` covers `[segment_ends[s - 1], segment_ends[s])` with an
///   implicit start 0; non-decreasing, the last one equal to K.
/// * `segment_sources`: the source image of each segment.
pub fn motion<T: SpectralVoxel>(
    original: ArrayView4<'_, T>,
    moved: &[ArrayView4<'_, f32>],
    segment_ends: &[usize],
    segment_sources: &[usize],
) -> Result<Array4<f32>> {
    check_not_empty(&original, "volume")?;
    for m in moved {
        check_same_shape(original.shape(), m.shape(), "moved image and volume")?;
    }
    let (c, ni, nj, nk) = original.dim();
    let assembly = Assembly::<T::F>::new(nk, moved.len() + 1, segment_ends, segment_sources)?;
    let mut output = Array4::<f32>::uninit((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    // One task per (channel, i) plane.
    out.par_chunks_mut(nj * nk).enumerate().for_each_init(
        || assembly.workspace(),
        |work, (plane_index, plane_out)| {
            let (channel, i) = (plane_index / ni, plane_index % ni);
            let planes: Vec<Plane<'_, T>> =
                std::iter::once(Plane::Input(original.slice(s![channel, i, .., ..])))
                    .chain(
                        moved
                            .iter()
                            .map(|m| Plane::Moved(m.slice(s![channel, i, .., ..]))),
                    )
                    .collect();
            assemble_plane(&assembly, &planes, plane_out, work);
        },
    );
    // SAFETY: the planes partition the output and `assemble_plane` writes
    // every element of its plane.
    Ok(unsafe { output.assume_init() })
}

/// Smallest non-NaN value of a channel (0 if there is none), computed per plane
/// in eight lanes; the minimum does not depend on the order, so neither does
/// the result on the thread count.
fn channel_minimum<T: Voxel>(channel: ArrayView3<'_, T>) -> f64 {
    let minimum = channel
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|plane| {
            let mut lanes = [f64::INFINITY; 8];
            let take = |lane: &mut f64, v: T| {
                let v = v.to_f64();
                // NaN compares false and is skipped.
                if v < *lane {
                    *lane = v;
                }
            };
            match plane.as_slice() {
                Some(values) => {
                    let mut chunks = values.chunks_exact(8);
                    for chunk in &mut chunks {
                        for (lane, &v) in lanes.iter_mut().zip(chunk) {
                            take(lane, v);
                        }
                    }
                    for &v in chunks.remainder() {
                        take(&mut lanes[0], v);
                    }
                }
                None => plane.iter().for_each(|&v| take(&mut lanes[0], v)),
            }
            lanes.into_iter().fold(f64::INFINITY, f64::min)
        })
        .reduce(|| f64::INFINITY, f64::min);
    if minimum.is_finite() {
        minimum
    } else {
        0.0
    }
}

/// TorchIO's `Motion` on a `(C, I, J, K)` volume with voxel -> world
/// (RAS) `affine`: each of `transforms` (world -> world 4x4 matrices mapping
/// output points to input points, as given to a resampler) produces a
/// float32 copy of the volume resampled on its own grid with
/// `interpolation`, outside points taking the channel's minimum; then the
/// k-space segments are assembled as by [`motion`] (source 0 is the volume,
/// source `m + 1` the copy moved by `transforms[m]`).
///
/// For nearest and linear interpolation the copies are resampled a slab of
/// I planes at a time (the warp of a sub-grid, whose affine is the volume's
/// offset to the slab) and assembled right away; B-spline copies, whose
/// coefficients span the whole volume, are resampled whole first.
pub fn motion_rigid<T: SpectralVoxel>(
    volume: ArrayView4<'_, T>,
    affine: &Matrix4,
    transforms: &[Matrix4],
    interpolation: Interpolation,
    segment_ends: &[usize],
    segment_sources: &[usize],
) -> Result<Array4<f32>> {
    check_not_empty(&volume, "volume")?;
    let (c, ni, nj, nk) = volume.dim();
    let assembly = Assembly::<T::F>::new(nk, transforms.len() + 1, segment_ends, segment_sources)?;
    let minima: Vec<f64> = volume.outer_iter().map(channel_minimum).collect();
    let as_f32 = T::as_f32_volume(volume.view());
    let resample = |m: &Matrix4, grid: &Grid| {
        warp(
            as_f32.view(),
            affine,
            grid,
            &[Step::Affine(*m)],
            interpolation,
            &minima,
        )
    };
    // The moved copies on `grid`; copies no segment uses are never resampled.
    let resample_used = |grid: &Grid| -> Result<Vec<Option<Array4<f32>>>> {
        transforms
            .iter()
            .enumerate()
            .map(|(m, t)| {
                if assembly.uses(m + 1) {
                    resample(t, grid).map(Some)
                } else {
                    Ok(None)
                }
            })
            .collect()
    };
    let whole: Option<Vec<Option<Array4<f32>>>> = if interpolation == Interpolation::BSpline {
        let grid = Grid {
            shape: [ni, nj, nk],
            affine: *affine,
        };
        Some(resample_used(&grid)?)
    } else {
        None
    };
    let slab = if whole.is_some() { 1 } else { SLAB_PLANES };
    let mut output = Array4::<f32>::uninit((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    // The output of each slab in every channel.
    let num_slabs = ni.div_ceil(slab);
    let mut slabs: Vec<Vec<&mut [MaybeUninit<f32>]>> =
        (0..num_slabs).map(|_| Vec::with_capacity(c)).collect();
    for channel_out in out.chunks_mut(ni * nj * nk) {
        for (chunks, chunk) in slabs.iter_mut().zip(channel_out.chunks_mut(slab * nj * nk)) {
            chunks.push(chunk);
        }
    }
    slabs.into_par_iter().enumerate().try_for_each_init(
        || assembly.workspace(),
        |work, (index, mut chunks)| -> Result<()> {
            let i0 = index * slab;
            let len = chunks.first().map_or(0, |chunk| chunk.len() / (nj * nk));
            let local: Vec<Option<Array4<f32>>> = match &whole {
                Some(_) => vec![],
                None => {
                    let mut offset = IDENTITY;
                    offset[0][3] = i0 as f64;
                    let grid = Grid {
                        shape: [len, nj, nk],
                        affine: affine::multiply(affine, &offset),
                    };
                    resample_used(&grid)?
                }
            };
            // Plane p of the slab in each copy.
            let copies: Vec<Option<ArrayView4<'_, f32>>> = match &whole {
                Some(whole) => whole
                    .iter()
                    .map(|m| m.as_ref().map(|m| m.slice(s![.., i0..i0 + len, .., ..])))
                    .collect(),
                None => local.iter().map(|m| m.as_ref().map(|m| m.view())).collect(),
            };
            for (channel, chunk) in chunks.iter_mut().enumerate() {
                for (p, plane_out) in chunk.chunks_mut(nj * nk).enumerate() {
                    let input = Plane::Input(volume.slice(s![channel, i0 + p, .., ..]));
                    let planes: Vec<Plane<'_, T>> = std::iter::once(input)
                        .chain(copies.iter().map(|m| {
                            m.as_ref()
                                .map_or(input, |m| Plane::Moved(m.slice(s![channel, p, .., ..])))
                        }))
                        .collect();
                    assemble_plane(&assembly, &planes, plane_out, work);
                }
            }
            Ok(())
        },
    )?;
    // SAFETY: the slabs partition the output (every channel's planes) and
    // `assemble_plane` writes every element of its plane.
    Ok(unsafe { output.assume_init() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn one_segment_from_the_original_is_identity() {
        let volume = Array::from_shape_fn((1, 3, 4, 5), |(_, i, j, k)| (i * 20 + j * 5 + k) as f64);
        let out = motion(volume.view(), &[], &[5], &[0]).unwrap();
        for (a, b) in out.iter().zip(volume.iter()) {
            assert!((*a as f64 - b).abs() < 1e-4);
        }
    }

    #[test]
    fn identical_moved_copies_give_the_original() {
        let volume = Array::from_shape_fn((2, 3, 4, 6), |(c, i, j, k)| {
            ((c + i * 7 + j * 3 + k * 5) % 11) as f32
        });
        let copy = volume.clone();
        let out = motion(
            volume.view(),
            &[copy.view(), copy.view()],
            &[2, 4, 6],
            &[1, 0, 2],
        )
        .unwrap();
        for (a, b) in out.iter().zip(volume.iter()) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn a_moved_copy_can_be_the_only_or_the_reference_source() {
        let volume = Array::from_shape_fn((1, 3, 5, 7), |(_, i, j, k)| (i * 35 + j * 7 + k) as f32);
        let copy = volume.mapv(|v| (v * 0.37).sin() * 50.0);
        let out = motion(volume.view(), &[copy.view()], &[7], &[1]).unwrap();
        assert_eq!(out, copy);
        // Source 0 holds an empty segment: copy 1 is the reference.
        let other = volume.mapv(|v| (v * 0.11).cos() * 20.0);
        let out = motion(
            volume.view(),
            &[copy.view(), other.view()],
            &[2, 2, 7],
            &[1, 0, 2],
        )
        .unwrap();
        let expected = naive_motion(&[volume.clone(), copy, other], &[2, 2, 7], &[1, 0, 2]);
        for (a, b) in out.iter().zip(expected.iter()) {
            assert!((*a as f64 - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    /// `Re(ifft_K(sum_s mask_s * fftshift(fft_K(source_s))))` by direct DFTs, in f64.
    fn naive_motion(sources: &[Array4<f32>], ends: &[usize], which: &[usize]) -> Array4<f64> {
        let (c, ni, nj, nk) = sources[0].dim();
        let mut out = Array4::<f64>::zeros((c, ni, nj, nk));
        let tau = 2.0 * std::f64::consts::PI;
        for ((ch, i, j), _) in Array::from_elem((c, ni, nj), ()).indexed_iter() {
            let mut spectrum = vec![Complex::new(0.0f64, 0.0); nk];
            let mut start = 0;
            for (&end, &source) in ends.iter().zip(which) {
                for (shifted, value) in spectrum.iter_mut().enumerate().take(end).skip(start) {
                    let f = super::super::fft::shifted_to_frequency(shifted, nk) as f64;
                    *value = (0..nk)
                        .map(|k| {
                            let angle = -tau * f * k as f64 / nk as f64;
                            Complex::new(angle.cos(), angle.sin())
                                * f64::from(sources[source][[ch, i, j, k]])
                        })
                        .sum();
                }
                start = end;
            }
            for k in 0..nk {
                let value: Complex<f64> = (0..nk)
                    .map(|shifted| {
                        let f = super::super::fft::shifted_to_frequency(shifted, nk) as f64;
                        let angle = tau * f * k as f64 / nk as f64;
                        spectrum[shifted] * Complex::new(angle.cos(), angle.sin())
                    })
                    .sum();
                out[[ch, i, j, k]] = value.re / nk as f64;
            }
        }
        out
    }

    #[test]
    fn segments_match_a_direct_dft() {
        let volume = Array::from_shape_fn((2, 3, 5, 8), |(c, i, j, k)| {
            ((c * 13 + i * 7 + j * 3 + k * 5) % 11) as f32
        });
        let a = volume.mapv(|v| v * 0.5 + 1.0);
        let b = volume.mapv(|v| (v * 0.7).sin());
        let (ends, which) = ([3, 5, 8], [1, 0, 2]);
        let out = motion(volume.view(), &[a.view(), b.view()], &ends, &which).unwrap();
        let expected = naive_motion(&[volume.clone(), a, b], &ends, &which);
        for (x, y) in out.iter().zip(expected.iter()) {
            assert!((*x as f64 - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    fn rotation(angle: f64, shift: [f64; 3]) -> Matrix4 {
        let (c, s) = (angle.cos(), angle.sin());
        [
            [c, -s, 0.0, shift[0]],
            [s, c, 0.0, shift[1]],
            [0.0, 0.0, 1.0, shift[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    #[test]
    fn slab_resampling_matches_whole_copies() {
        // 7 planes: slabs of SLAB_PLANES leave a partial last slab.
        let volume = Array::from_shape_fn((2, 7, 6, 9), |(c, i, j, k)| {
            ((c * 17 + i * 7 + j * 3 + k * 5) % 13) as f32 - 2.0
        });
        let mut affine = IDENTITY;
        affine[0][0] = 1.5;
        affine[0][3] = -4.0;
        affine[1][1] = 1.2;
        affine[2][3] = 2.0;
        let transforms = [
            rotation(0.2, [0.3, -0.5, 0.1]),
            rotation(-0.15, [0.8, 0.2, -0.4]),
        ];
        let grid = Grid {
            shape: [7, 6, 9],
            affine,
        };
        let minima = [-2.0, -2.0];
        for interpolation in [
            Interpolation::Linear,
            Interpolation::Nearest,
            Interpolation::BSpline,
        ] {
            let whole: Vec<Array4<f32>> = transforms
                .iter()
                .map(|m| {
                    warp(
                        volume.view(),
                        &affine,
                        &grid,
                        &[Step::Affine(*m)],
                        interpolation,
                        &minima,
                    )
                    .unwrap()
                })
                .collect();
            for (ends, which) in [([3, 6, 9], [1, 0, 2]), ([4, 4, 9], [1, 0, 2])] {
                let out = motion_rigid(
                    volume.view(),
                    &affine,
                    &transforms,
                    interpolation,
                    &ends,
                    &which,
                )
                .unwrap();
                let expected = motion(
                    volume.view(),
                    &[whole[0].view(), whole[1].view()],
                    &ends,
                    &which,
                )
                .unwrap();
                for (a, b) in out.iter().zip(expected.iter()) {
                    assert!((a - b).abs() < 1e-4, "{interpolation:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let volume = Array::from_shape_fn((1, 9, 8, 10), |(_, i, j, k)| {
            ((i * 7 + j * 3 + k * 5) % 13) as f32
        });
        let transforms = [
            rotation(0.3, [0.5, 0.0, 0.2]),
            rotation(-0.2, [0.0, 1.0, 0.0]),
        ];
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    motion_rigid(
                        volume.view(),
                        &IDENTITY,
                        &transforms,
                        Interpolation::Linear,
                        &[3, 6, 10],
                        &[1, 0, 2],
                    )
                    .unwrap()
                })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn malformed_segments_are_errors() {
        let volume = Array4::<f32>::zeros((1, 2, 2, 4));
        assert!(motion(volume.view(), &[], &[3], &[0]).is_err());
        assert!(motion(volume.view(), &[], &[3, 2, 4], &[0, 0, 0]).is_err());
        assert!(motion(volume.view(), &[], &[4], &[1]).is_err());
        let other = Array4::<f32>::zeros((1, 2, 2, 3));
        assert!(motion(volume.view(), &[other.view()], &[2, 4], &[1, 0]).is_err());
    }
}
