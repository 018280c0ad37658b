//! FFT helpers shared by the k-space kernels: the compute precision of each
//! voxel type, `fftshift` index conversions, real 1D filters along one axis
//! of a volume, and the maximum magnitude of a full 3D spectrum.
//!
//! Conventions (TorchIO's `fourier.py`): the spectrum is `fftshift(fftn(x))`,
//! so the *shifted* index `s` along an axis of length `n` holds the frequency
//! `f = (s - n / 2) mod n` of the unshifted FFT.

use std::sync::Arc;

use ndarray::{
    s, ArrayView2, ArrayView3, ArrayView4, ArrayViewMut2, ArrayViewMut3, Axis, CowArray, Ix4,
};
use num_complex::Complex;
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_traits::Zero;
use rustfft::{Fft, FftNum, FftPlanner};

use crate::error::{Error, Result};
use crate::volume::Voxel;

/// A floating-point type the FFTs run in (f32 or f64).
pub trait Real: FftNum + Default + PartialOrd {
    /// Converts from `f64` (rounding to nearest for f32).
    fn real_from_f64(value: f64) -> Self;
    /// Converts to `f64` exactly.
    fn real_to_f64(self) -> f64;
    /// Converts to `f32` (rounding to nearest for f64).
    fn real_to_f32(self) -> f32;
}

impl Real for f32 {
    #[inline(always)]
    fn real_from_f64(value: f64) -> Self {
        value as f32
    }
    #[inline(always)]
    fn real_to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn real_to_f32(self) -> f32 {
        self
    }
}

impl Real for f64 {
    #[inline(always)]
    fn real_from_f64(value: f64) -> Self {
        value
    }
    #[inline(always)]
    fn real_to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn real_to_f32(self) -> f32 {
        self as f32
    }
}

/// A voxel type together with the precision its spectrum is computed in:
/// float64 for float64 volumes, float32 for every other type (as
/// `torch.fft.fftn`, which returns complex64 for integer and float32 input).
pub trait SpectralVoxel: Voxel {
    /// Precision of the FFTs of this voxel type.
    type F: Real;
    /// Converts a voxel to the FFT precision.
    fn to_real(self) -> Self::F;
    /// The volume as float32: borrowed for float32, converted otherwise.
    fn as_f32_volume(volume: ArrayView4<'_, Self>) -> CowArray<'_, f32, Ix4> {
        CowArray::from(volume.mapv(|v| v.to_f64() as f32))
    }
}

macro_rules! impl_spectral {
    ($t:ty, $f:ty) => {
        impl SpectralVoxel for $t {
            type F = $f;
            #[inline(always)]
            fn to_real(self) -> $f {
                self as $f
            }
        }
    };
}

impl SpectralVoxel for f32 {
    type F = f32;
    #[inline(always)]
    fn to_real(self) -> f32 {
        self
    }
    fn as_f32_volume(volume: ArrayView4<'_, f32>) -> CowArray<'_, f32, Ix4> {
        CowArray::from(volume)
    }
}
impl_spectral!(f64, f64);
impl_spectral!(u8, f32);
impl_spectral!(i16, f32);
impl_spectral!(i32, f32);
impl_spectral!(i64, f32);

/// Frequency index of the unshifted FFT held at shifted index `shifted`.
#[inline]
pub fn shifted_to_frequency(shifted: usize, n: usize) -> usize {
    (shifted + n - n / 2) % n
}

/// Shifted index (position after `fftshift`) of frequency index `frequency`.
#[inline]
pub fn frequency_to_shifted(frequency: usize, n: usize) -> usize {
    (frequency + n / 2) % n
}

/// Real, symmetric weights over unshifted frequencies that reproduce
/// `Re(ifft(w * fft(x)))` for real lines `x`.
///
/// `weights_shifted[s]` multiplies the spectrum at shifted index `s` of a real
/// line of length `n`. For real `x`, `X[n - f] = conj(X[f])`, so the real part
/// of the inverse FFT only sees the average of the weights of `f` and `-f`:
/// the result equals `ifft(w_sym * fft(x))` with `w_sym[f] = (w[f] + w[-f]) / 2`.
/// Because `w_sym` is real and symmetric, this filter maps real lines to real
/// lines, so two lines can be filtered at once as the real and imaginary parts
/// of one complex line.
pub fn symmetric_weights(weights_shifted: &[f64]) -> Vec<f64> {
    let n = weights_shifted.len();
    (0..n)
        .map(|f| {
            let w = weights_shifted[frequency_to_shifted(f, n)];
            let w_mirror = weights_shifted[frequency_to_shifted((n - f) % n, n)];
            0.5 * (w + w_mirror)
        })
        .collect()
}

/// Complex FFT plans of one line length, used to filter two real lines at once.
pub struct PairPlans<F: Real> {
    /// Line length.
    pub n: usize,
    forward: Arc<dyn Fft<F>>,
    inverse: Arc<dyn Fft<F>>,
}

/// Per-task buffers for [`PairPlans`].
pub struct PairWorkspace<F: Real> {
    /// A complex line holding two real lines (real and imaginary parts).
    pub buffer: Vec<Complex<F>>,
    /// A second complex line for accumulations.
    pub accumulator: Vec<Complex<F>>,
    /// FFT scratch.
    pub scratch: Vec<Complex<F>>,
}

impl<F: Real> PairPlans<F> {
    /// Plans the forward and inverse complex FFTs of length `n`.
    pub fn new(n: usize) -> Self {
        let mut planner = FftPlanner::<F>::new();
        Self {
            n,
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        }
    }

    /// Buffers sized for these plans.
    pub fn workspace(&self) -> PairWorkspace<F> {
        let scratch_len = self
            .forward
            .get_inplace_scratch_len()
            .max(self.inverse.get_inplace_scratch_len());
        PairWorkspace {
            buffer: vec![Complex::zero(); self.n],
            accumulator: vec![Complex::zero(); self.n],
            scratch: vec![Complex::zero(); scratch_len],
        }
    }

    /// In-place forward FFT.
    pub fn forward(&self, buffer: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.forward.process_with_scratch(buffer, scratch);
    }

    /// In-place inverse FFT, not normalised (callers fold `1 / n` into their weights).
    pub fn inverse(&self, buffer: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.inverse.process_with_scratch(buffer, scratch);
    }

    /// In-place inverse FFT divided by `n`.
    pub fn inverse_normalized(&self, buffer: &mut [Complex<F>], scratch: &mut [Complex<F>]) {
        self.inverse.process_with_scratch(buffer, scratch);
        let scale = F::real_from_f64(1.0 / self.n as f64);
        buffer.iter_mut().for_each(|v| *v = *v * scale);
    }
}

/// Largest prime factor of `n` (1 for `n <= 1`).
fn largest_prime_factor(mut n: usize) -> usize {
    let mut largest = 1;
    let mut p = 2;
    while p * p <= n {
        while n.is_multiple_of(p) {
            largest = p;
            n /= p;
        }
        p += 1;
    }
    largest.max(n)
}

/// Lines whose length has a prime factor above this are filtered by a
/// zero-padded circular convolution of power-of-two length instead of FFTs of
/// their own length. rustfft handles lengths built from small factors well,
/// but a prime such as 197 or 233 (the MNI152 grid) falls back to Rader's or
/// Bluestein's algorithm and costs 7-16 times more per point than a power of
/// two (measured: 1.9 us for 197 and 4.4 us for 233 against 0.73 us for 512).
const MAX_DIRECT_PRIME_FACTOR: usize = 13;

/// A real linear filter of lines, `Re(ifft(w * fft(line)))`, applied to two
/// lines per complex FFT pair.
///
/// Filtering a line of length `n` by a real symmetric spectral multiplier is
/// the circular convolution `y = h (*) x` with the real kernel
/// `h = ifft(w_sym)`. Lengths made of small factors run it as written: FFT,
/// multiply, inverse FFT. Other lengths run the same convolution with FFTs of
/// a power-of-two length `m >= 2n - 1`: the line is zero-padded to `m` and the
/// kernel is laid out periodically over the offsets `-(n-1)..=(n-1)`, which
/// `m >= 2n - 1` keeps apart, so the first `n` values of the length-`m`
/// circular convolution are exactly `y`.
pub struct SymmetricLineFilter<F: Real> {
    /// Line length.
    n: usize,
    /// FFT plans of the transform length (`n`, or the padded `m`).
    plans: PairPlans<F>,
    /// Spectral weights of the transform length, with the `1 / length`
    /// normalisation of the inverse FFT folded in.
    weights: Vec<F>,
}

impl<F: Real> SymmetricLineFilter<F> {
    /// Builds the filter that multiplies the *shifted* spectrum of lines of
    /// length `weights_shifted.len()` by `weights_shifted` and keeps the real
    /// part of the inverse FFT.
    pub fn from_shifted_weights(weights_shifted: &[f64]) -> Self {
        let n = weights_shifted.len();
        let symmetric = symmetric_weights(weights_shifted);
        if largest_prime_factor(n) <= MAX_DIRECT_PRIME_FACTOR {
            let scale = 1.0 / n as f64;
            return Self {
                n,
                plans: PairPlans::new(n),
                weights: symmetric
                    .into_iter()
                    .map(|w| F::real_from_f64(w * scale))
                    .collect(),
            };
        }
        // The kernel h = ifft(w_sym) (real and even because w_sym is), in f64.
        let mut planner = FftPlanner::<f64>::new();
        let mut kernel: Vec<Complex<f64>> =
            symmetric.iter().map(|&w| Complex::new(w, 0.0)).collect();
        planner.plan_fft_inverse(n).process(&mut kernel);
        // Lay h out over the offsets -(n-1)..=(n-1) of a length-m line and take
        // its spectrum; it is real up to rounding because the layout is even.
        let m = (2 * n - 1).next_power_of_two();
        let mut padded = vec![Complex::new(0.0, 0.0); m];
        for d in 0..n {
            let tap = Complex::new(kernel[d].re / n as f64, 0.0);
            padded[d] = tap;
            if d > 0 {
                padded[m - d] = Complex::new(kernel[n - d].re / n as f64, 0.0);
            }
        }
        planner.plan_fft_forward(m).process(&mut padded);
        let scale = 1.0 / m as f64;
        Self {
            n,
            plans: PairPlans::new(m),
            weights: padded
                .iter()
                .map(|c| F::real_from_f64(c.re * scale))
                .collect(),
        }
    }

    /// Line length.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the filter is for empty lines (never: lengths are positive).
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Buffers for [`SymmetricLineFilter::apply`]; `buffer` has the transform
    /// length, of which callers load and read the first [`Self::len`] values.
    pub fn workspace(&self) -> PairWorkspace<F> {
        self.plans.workspace()
    }

    /// Filters the two real lines held in the first `len()` values of
    /// `work.buffer` (real and imaginary parts); the results replace them.
    pub fn apply(&self, work: &mut PairWorkspace<F>) {
        work.buffer[self.n..].fill(Complex::zero());
        self.plans.forward(&mut work.buffer, &mut work.scratch);
        work.buffer
            .iter_mut()
            .zip(&self.weights)
            .for_each(|(c, &w)| *c = *c * w);
        self.plans.inverse(&mut work.buffer, &mut work.scratch);
    }
}

/// Plans of the real forward and inverse FFTs of one line length.
pub struct RealPlans<F: Real> {
    /// Line length.
    pub n: usize,
    /// Forward real-to-complex FFT.
    pub forward: Arc<dyn RealToComplex<F>>,
    /// Inverse complex-to-real FFT (unnormalised).
    pub inverse: Arc<dyn ComplexToReal<F>>,
}

impl<F: Real> RealPlans<F> {
    /// Plans both transforms for lines of length `n` (> 0).
    pub fn new(n: usize) -> Self {
        let mut planner = RealFftPlanner::<F>::new();
        Self {
            n,
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        }
    }

    /// Scratch buffers sized for these plans.
    pub fn workspace(&self) -> LineWorkspace<F> {
        let scratch_len = self
            .forward
            .get_scratch_len()
            .max(self.inverse.get_scratch_len());
        LineWorkspace {
            line: vec![F::zero(); self.n],
            spectrum: vec![Complex::new(F::zero(), F::zero()); self.n / 2 + 1],
            accumulator: vec![Complex::new(F::zero(), F::zero()); self.n / 2 + 1],
            scratch: vec![Complex::new(F::zero(), F::zero()); scratch_len],
        }
    }

    /// `line <- rfft(line)` into `spectrum` (`line` is clobbered).
    pub fn forward(
        &self,
        line: &mut [F],
        spectrum: &mut [Complex<F>],
        scratch: &mut [Complex<F>],
    ) -> Result<()> {
        self.forward
            .process_with_scratch(line, spectrum, scratch)
            .map_err(|e| Error::InvalidArgument(format!("forward FFT failed: {e}")))
    }

    /// `line <- irfft(spectrum) / n` (`spectrum` is clobbered). The imaginary
    /// parts of the DC and Nyquist terms, which a real signal cannot have,
    /// are discarded first.
    pub fn inverse_normalized(
        &self,
        spectrum: &mut [Complex<F>],
        line: &mut [F],
        scratch: &mut [Complex<F>],
    ) -> Result<()> {
        spectrum[0].im = F::zero();
        if self.n.is_multiple_of(2) {
            let last = spectrum.len() - 1;
            spectrum[last].im = F::zero();
        }
        self.inverse
            .process_with_scratch(spectrum, line, scratch)
            .map_err(|e| Error::InvalidArgument(format!("inverse FFT failed: {e}")))?;
        let scale = F::real_from_f64(1.0 / self.n as f64);
        line.iter_mut().for_each(|v| *v = *v * scale);
        Ok(())
    }
}

/// Per-task buffers for line filtering.
pub struct LineWorkspace<F: Real> {
    /// A real line.
    pub line: Vec<F>,
    /// Its half spectrum.
    pub spectrum: Vec<Complex<F>>,
    /// A second half spectrum for accumulations.
    pub accumulator: Vec<Complex<F>>,
    /// FFT scratch.
    pub scratch: Vec<Complex<F>>,
}

/// Applies `filter` to every line of `channel` along `axis`, writing float32
/// results into `out` (an `(I, J, K)` C-order buffer of the channel's size).
pub fn filter_lines_along_axis<T: SpectralVoxel>(
    channel: ArrayView3<'_, T>,
    axis: usize,
    filter: &SymmetricLineFilter<T::F>,
    out: &mut [f32],
) -> Result<()> {
    let (ni, nj, nk) = channel.dim();
    let n = [ni, nj, nk];
    if axis > 2 {
        return Err(Error::InvalidArgument(format!(
            "axis must be 0, 1 or 2, got {axis}"
        )));
    }
    if filter.len() != n[axis] || out.len() != ni * nj * nk {
        return Err(Error::Shape(format!(
            "filter of length {} or output of {} voxels does not fit a channel of shape {:?}",
            filter.len(),
            out.len(),
            channel.shape()
        )));
    }
    match axis {
        // Lines along K are the rows of each plane: its transpose is a plane
        // whose columns are those lines.
        2 => out.par_chunks_mut(nj * nk).enumerate().for_each_init(
            || filter.workspace(),
            |work, (i, plane_out)| {
                let plane = channel.slice(s![i, .., ..]);
                for j in (0..nj).step_by(2) {
                    load_pair(
                        &mut work.buffer,
                        plane.row(j),
                        (j + 1 < nj).then(|| plane.row(j + 1)),
                    );
                    filter.apply(work);
                    for (o, v) in plane_out[j * nk..(j + 1) * nk].iter_mut().zip(&work.buffer) {
                        *o = v.re.real_to_f32();
                    }
                    if j + 1 < nj {
                        let row = &mut plane_out[(j + 1) * nk..(j + 2) * nk];
                        for (o, v) in row.iter_mut().zip(&work.buffer) {
                            *o = v.im.real_to_f32();
                        }
                    }
                }
            },
        ),
        1 => out.par_chunks_mut(nj * nk).enumerate().try_for_each_init(
            || filter.block_workspace(nk),
            |work, (i, plane_out)| {
                let plane_out = ArrayViewMut2::from_shape((nj, nk), plane_out)
                    .map_err(|e| Error::Shape(e.to_string()))?;
                filter_plane_columns(channel.slice(s![i, .., ..]), plane_out, filter, work);
                Ok::<(), Error>(())
            },
        )?,
        _ => {
            // Lines along I cross every plane: each task filters the (I x K)
            // sheet of one j, writing straight into the strided output sheet.
            let mut out = ArrayViewMut3::from_shape((ni, nj, nk), out)
                .map_err(|e| Error::Shape(e.to_string()))?;
            out.axis_iter_mut(Axis(1))
                .into_par_iter()
                .zip(channel.axis_iter(Axis(1)).into_par_iter())
                .for_each_init(
                    || filter.block_workspace(nk),
                    |work, (sheet_out, sheet)| filter_plane_columns(sheet, sheet_out, filter, work),
                );
        }
    }
    Ok(())
}

/// Loads two real lines into the real and imaginary parts of `buffer` (the
/// imaginary part is zero without a second line).
pub fn load_pair<T: SpectralVoxel>(
    buffer: &mut [Complex<T::F>],
    first: ndarray::ArrayView1<'_, T>,
    second: Option<ndarray::ArrayView1<'_, T>>,
) {
    for (value, &v) in buffer.iter_mut().zip(first.iter()) {
        *value = Complex::new(v.to_real(), T::F::zero());
    }
    if let Some(second) = second {
        for (value, &v) in buffer.iter_mut().zip(second.iter()) {
            value.im = v.to_real();
        }
    }
}

/// Per-task buffers for [`filter_plane_columns`].
pub struct BlockWorkspace<F: Real> {
    /// One complex line per pair of columns of a plane, `stride` apart.
    lines: Vec<Complex<F>>,
    /// Distance between the lines: the transform length plus a cache line, so
    /// that lines do not all map to the same L1 cache sets.
    stride: usize,
    /// FFT scratch.
    scratch: Vec<Complex<F>>,
}

impl<F: Real> SymmetricLineFilter<F> {
    /// Buffers for [`filter_plane_columns`] on planes of `columns` columns.
    pub fn block_workspace(&self, columns: usize) -> BlockWorkspace<F> {
        let stride = self.plans.n + 8;
        let pair = self.plans.workspace();
        BlockWorkspace {
            lines: vec![Complex::zero(); columns.div_ceil(2) * stride],
            stride,
            scratch: pair.scratch,
        }
    }
}

/// Filters the columns (lines along the first axis) of an `(A, B)` plane into
/// the `(A, B)` plane `plane_out`.
///
/// The plane is read and written row by row, in memory order, so that the
/// hardware prefetchers stream it: reading it column by column stalls on
/// every load. Columns `2p` and `2p + 1` share one complex FFT (real and
/// imaginary parts), as in the other paths.
fn filter_plane_columns<T: SpectralVoxel>(
    plane: ArrayView2<'_, T>,
    mut plane_out: ArrayViewMut2<'_, f32>,
    filter: &SymmetricLineFilter<T::F>,
    work: &mut BlockWorkspace<T::F>,
) {
    let n = filter.len();
    let length = filter.plans.n;
    let stride = work.stride;
    let pairs = plane.ncols().div_ceil(2);
    let lines = &mut work.lines[..pairs * stride];
    for (a, row) in plane.rows().into_iter().enumerate() {
        let mut values = row.iter();
        for p in 0..pairs {
            let re = values.next().map_or(T::F::zero(), |&v| v.to_real());
            let im = values.next().map_or(T::F::zero(), |&v| v.to_real());
            lines[p * stride + a] = Complex::new(re, im);
        }
    }
    for line in lines.chunks_mut(stride) {
        let line = &mut line[..length];
        line[n..].fill(Complex::zero());
        filter.plans.forward(line, &mut work.scratch);
        line.iter_mut()
            .zip(&filter.weights)
            .for_each(|(c, &w)| *c = *c * w);
        filter.plans.inverse(line, &mut work.scratch);
    }
    for (a, mut row) in plane_out.rows_mut().into_iter().enumerate() {
        let mut outputs = row.iter_mut();
        for p in 0..pairs {
            let value = lines[p * stride + a];
            if let Some(o) = outputs.next() {
                *o = value.re.real_to_f32();
            }
            if let Some(o) = outputs.next() {
                *o = value.im.real_to_f32();
            }
        }
    }
}

/// The `count` largest magnitudes of a full 3D spectrum with their
/// (unshifted) frequency positions, largest first (ties: smaller position first).
pub type TopMagnitudes = Vec<(f64, [usize; 3])>;

fn insert_top(top: &mut TopMagnitudes, count: usize, magnitude: f64, position: [usize; 3]) {
    let better =
        |a: &(f64, [usize; 3]), b: &(f64, [usize; 3])| a.0 > b.0 || (a.0 == b.0 && a.1 < b.1);
    let entry = (magnitude, position);
    if top.len() == count {
        match top.last() {
            Some(last) if better(&entry, last) => {
                top.pop();
            }
            _ => return,
        }
    }
    let index = top
        .iter()
        .position(|e| better(&entry, e))
        .unwrap_or(top.len());
    top.insert(index, entry);
}

/// The `count` largest values of `|fftn(channel)|` over the whole spectrum,
/// with their frequency positions, computed with a real-to-complex 3D FFT in
/// the channel's spectral precision. NaN magnitudes are reported as NaN
/// first. The result does not depend on the thread count.
pub fn top_spectrum_magnitudes<T: SpectralVoxel>(
    channel: ArrayView3<'_, T>,
    count: usize,
) -> Result<TopMagnitudes> {
    let (ni, nj, nk) = channel.dim();
    let kh = nk / 2 + 1;
    let count = count.max(1);
    // Step 1 and 2, one task per i plane: rfft of each K row, then FFT along J
    // of each half-spectrum column. The plane is stored transposed, (Kh, J).
    let mut spectrum = vec![Complex::new(T::F::zero(), T::F::zero()); ni * kh * nj];
    let plans = RealPlans::<T::F>::new(nk);
    let fft_j: Arc<dyn Fft<T::F>> = FftPlanner::new().plan_fft_forward(nj);
    let fft_i: Arc<dyn Fft<T::F>> = FftPlanner::new().plan_fft_forward(ni);
    spectrum
        .par_chunks_mut(kh * nj)
        .enumerate()
        .try_for_each_init(
            || {
                let work = plans.workspace();
                let scratch_j =
                    vec![Complex::new(T::F::zero(), T::F::zero()); fft_j.get_inplace_scratch_len()];
                (work, scratch_j)
            },
            |(work, scratch_j), (i, plane)| -> Result<()> {
                for j in 0..nj {
                    let row = channel.slice(s![i, j, ..]);
                    work.line
                        .iter_mut()
                        .zip(row.iter())
                        .for_each(|(l, &v)| *l = v.to_real());
                    plans.forward(&mut work.line, &mut work.spectrum, &mut work.scratch)?;
                    for (f, &c) in work.spectrum.iter().enumerate() {
                        plane[f * nj + j] = c;
                    }
                }
                for column in plane.chunks_mut(nj) {
                    fft_j.process_with_scratch(column, scratch_j);
                }
                Ok(())
            },
        )?;
    // Step 3, one task per half-spectrum index fk: FFT along I of each (fk, j)
    // line, keeping only the largest magnitudes.
    let spectrum = &spectrum;
    let tops: Vec<TopMagnitudes> = (0..kh)
        .into_par_iter()
        .map(|fk| {
            let mut line = vec![Complex::new(T::F::zero(), T::F::zero()); ni];
            let mut scratch =
                vec![Complex::new(T::F::zero(), T::F::zero()); fft_i.get_inplace_scratch_len()];
            let mut top = TopMagnitudes::with_capacity(count + 1);
            for j in 0..nj {
                for (i, value) in line.iter_mut().enumerate() {
                    *value = spectrum[(i * kh + fk) * nj + j];
                }
                fft_i.process_with_scratch(&mut line, &mut scratch);
                // Frequencies fk in 1..ceil(nk/2) also stand for their mirror
                // (-fi, -fj, nk - fk), which has the same magnitude.
                let mirrored = fk != 0 && 2 * fk != nk;
                for (fi, value) in line.iter().enumerate() {
                    let magnitude = value.re.real_to_f64().hypot(value.im.real_to_f64());
                    let magnitude = if magnitude.is_nan() {
                        f64::INFINITY
                    } else {
                        magnitude
                    };
                    insert_top(&mut top, count, magnitude, [fi, j, fk]);
                    if mirrored {
                        let mirror = [(ni - fi) % ni, (nj - j) % nj, nk - fk];
                        insert_top(&mut top, count, magnitude, mirror);
                    }
                }
            }
            top
        })
        .collect();
    let mut merged = TopMagnitudes::with_capacity(count + 1);
    for top in tops {
        for (magnitude, position) in top {
            insert_top(&mut merged, count, magnitude, position);
        }
    }
    for entry in merged.iter_mut() {
        if entry.0 == f64::INFINITY {
            entry.0 = f64::NAN;
        }
    }
    Ok(merged)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn naive_dft_magnitude(x: &Array3<f64>, f: [usize; 3]) -> f64 {
        let (ni, nj, nk) = x.dim();
        let mut acc = Complex::new(0.0, 0.0);
        for ((i, j, k), &v) in x.indexed_iter() {
            let phase = -2.0
                * std::f64::consts::PI
                * (f[0] as f64 * i as f64 / ni as f64
                    + f[1] as f64 * j as f64 / nj as f64
                    + f[2] as f64 * k as f64 / nk as f64);
            acc += Complex::new(phase.cos(), phase.sin()) * v;
        }
        acc.norm()
    }

    #[test]
    fn shift_indices_round_trip() {
        for n in 1..9 {
            for f in 0..n {
                assert_eq!(shifted_to_frequency(frequency_to_shifted(f, n), n), f);
            }
            assert_eq!(shifted_to_frequency(n / 2, n), 0);
        }
    }

    #[test]
    fn top_magnitudes_match_naive_dft() {
        let x = Array3::from_shape_fn((5, 4, 7), |(i, j, k)| {
            ((i * 31 + j * 17 + k * 7) % 11) as f64 - 4.5
        });
        let top = top_spectrum_magnitudes(x.view(), 4).unwrap();
        assert_eq!(top.len(), 4);
        let mut all = vec![];
        for fi in 0..5 {
            for fj in 0..4 {
                for fk in 0..7 {
                    all.push(naive_dft_magnitude(&x, [fi, fj, fk]));
                }
            }
        }
        all.sort_by(|a, b| b.partial_cmp(a).unwrap());
        for (t, &a) in top.iter().zip(&all) {
            assert!((t.0 - a).abs() < 1e-9 * a.max(1.0), "{} vs {}", t.0, a);
            assert!((naive_dft_magnitude(&x, t.1) - t.0).abs() < 1e-9 * a.max(1.0));
        }
    }

    #[test]
    fn largest_prime_factors() {
        let cases = [
            (1, 1),
            (2, 2),
            (12, 3),
            (189, 7),
            (197, 197),
            (232, 29),
            (233, 233),
        ];
        for (n, p) in cases {
            assert_eq!(largest_prime_factor(n), p, "n = {n}");
        }
    }

    /// `Re(ifft(w * fft(x)))` of one real line by a naive f64 DFT, with `w`
    /// indexed by shifted position.
    fn naive_line_filter(x: &[f64], weights_shifted: &[f64]) -> Vec<f64> {
        let n = x.len();
        let tau = 2.0 * std::f64::consts::PI / n as f64;
        let spectrum: Vec<Complex<f64>> = (0..n)
            .map(|f| {
                let w = weights_shifted[frequency_to_shifted(f, n)];
                let sum: Complex<f64> = (0..n)
                    .map(|t| Complex::from_polar(x[t], -tau * (f * t % n) as f64))
                    .sum();
                sum * w
            })
            .collect();
        (0..n)
            .map(|t| {
                let sum: Complex<f64> = (0..n)
                    .map(|f| spectrum[f] * Complex::from_polar(1.0, tau * (f * t % n) as f64))
                    .sum();
                sum.re / n as f64
            })
            .collect()
    }

    #[test]
    fn line_filter_matches_naive_dft_for_direct_and_padded_lengths() {
        // 12 and 189 run FFTs of their own length; 17, 23, 29, 31 and 197 have
        // prime factors above MAX_DIRECT_PRIME_FACTOR and run the padded
        // convolution.
        for n in [12usize, 17, 23, 29, 31, 189, 197] {
            let weights: Vec<f64> = (0..n)
                .map(|s| {
                    if s % 3 == 0 {
                        0.2
                    } else {
                        1.0 + 0.01 * s as f64
                    }
                })
                .collect();
            let x: Vec<f64> = (0..n).map(|t| ((t * 37 + 11) % 19) as f64 - 7.5).collect();
            let y: Vec<f64> = (0..n).map(|t| ((t * t + 3) % 23) as f64 * 0.5).collect();
            let filter = SymmetricLineFilter::<f64>::from_shifted_weights(&weights);
            assert_eq!(filter.len(), n);
            let mut work = filter.workspace();
            // Garbage beyond the line must not leak into the result.
            work.buffer.fill(Complex::new(1e3, -1e3));
            for ((v, &a), &b) in work.buffer.iter_mut().zip(&x).zip(&y) {
                *v = Complex::new(a, b);
            }
            filter.apply(&mut work);
            let (ex, ey) = (
                naive_line_filter(&x, &weights),
                naive_line_filter(&y, &weights),
            );
            for t in 0..n {
                let v = work.buffer[t];
                assert!(
                    (v.re - ex[t]).abs() < 1e-9,
                    "n {n} t {t}: {} vs {}",
                    v.re,
                    ex[t]
                );
                assert!(
                    (v.im - ey[t]).abs() < 1e-9,
                    "n {n} t {t}: {} vs {}",
                    v.im,
                    ey[t]
                );
            }
        }
    }

    #[test]
    fn line_filter_with_unit_weights_is_identity() {
        let filter = SymmetricLineFilter::<f64>::from_shifted_weights(&[1.0; 6]);
        let mut work = filter.workspace();
        let (x, y) = (
            [1.0, -2.0, 3.0, 0.5, 7.0, 2.0],
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        );
        for ((v, &a), &b) in work.buffer.iter_mut().zip(&x).zip(&y) {
            *v = Complex::new(a, b);
        }
        filter.apply(&mut work);
        for ((v, &a), &b) in work.buffer.iter().zip(&x).zip(&y) {
            assert!((v.re - a).abs() < 1e-12 && (v.im - b).abs() < 1e-12);
        }
    }
}
