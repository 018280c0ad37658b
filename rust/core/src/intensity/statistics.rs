//! Masked intensity statistics of a `(C, I, J, K)` volume, per channel and over
//! the whole volume: count, min, max, mean, standard deviation, percentiles
//! (NumPy's default `linear` method) and histograms (NumPy's bin rule).
//!
//! Determinism: every floating-point sum is accumulated per `J x K` plane and
//! the plane results are combined in plane order, so the result is the same
//! for any thread count. Counts and histograms are integers.

use std::cmp::Ordering;

use ndarray::ArrayView4;
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::volume::{check_mask_shape, check_not_empty, Voxel};

/// A mask element: `u8` (non-zero = inside) or `bool`.
pub trait MaskElement: Copy + Send + Sync + 'static {
    /// Whether the voxel is inside the mask.
    fn is_on(self) -> bool;
}

impl MaskElement for u8 {
    #[inline(always)]
    fn is_on(self) -> bool {
        self != 0
    }
}

impl MaskElement for bool {
    #[inline(always)]
    fn is_on(self) -> bool {
        self
    }
}

/// A histogram to compute: `num_bins` equal bins over `range`, or over
/// `[min, max]` of the masked values of the whole volume when `range` is `None`
/// (widened by 0.5 on each side when min == max, like NumPy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramRequest {
    pub num_bins: usize,
    pub range: Option<(f64, f64)>,
}

/// What to compute besides the moments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatisticsRequest {
    /// Percentiles in `[0, 100]`, in any order.
    pub percentiles: Vec<f64>,
    pub histogram: Option<HistogramRequest>,
}

/// Statistics of one set of masked values.
///
/// When the values contain NaN, `min`, `max`, `mean`, the standard deviations
/// and the percentiles are NaN (as with NumPy) and `has_nan` is true. When
/// there are no values (`count == 0`, only possible for a channel with a
/// per-channel mask) every float is NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub has_nan: bool,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation (`ddof = 0`, NumPy's default).
    pub std: f64,
    /// Sample standard deviation (`ddof = 1`, torch's default); NaN for one value.
    pub std_unbiased: f64,
    /// One value per requested percentile, in request order.
    pub percentiles: Vec<f64>,
    /// Bin counts (NaN and out-of-range values are not counted); empty when no
    /// histogram was requested.
    pub histogram: Vec<u64>,
}

/// Statistics per channel and over all channels together.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub channels: Vec<Summary>,
    pub total: Summary,
    /// `num_bins + 1` bin edges shared by every histogram; empty when none was requested.
    pub bin_edges: Vec<f64>,
}

/// Count, mean, sum of squared deviations, min and max of one plane (or of
/// several combined); min/max ignore NaN, which `has_nan` reports.
#[derive(Debug, Clone, Copy)]
struct Moments {
    count: u64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
    has_nan: bool,
}

impl Moments {
    const EMPTY: Self = Self {
        count: 0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        has_nan: false,
    };

    /// Chan et al.'s pairwise combination; used in a fixed order.
    fn combine(self, other: Self) -> Self {
        if other.count == 0 {
            return Self {
                has_nan: self.has_nan || other.has_nan,
                ..self
            };
        }
        if self.count == 0 {
            return Self {
                has_nan: self.has_nan || other.has_nan,
                ..other
            };
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        let delta = other.mean - self.mean;
        Self {
            count: self.count + other.count,
            mean: self.mean + delta * (nb / n),
            m2: self.m2 + other.m2 + delta * delta * (na * nb / n),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
            has_nan: self.has_nan || other.has_nan,
        }
    }

    fn summary(&self) -> Summary {
        let nan_or = |v: f64| {
            if self.has_nan || self.count == 0 {
                f64::NAN
            } else {
                v
            }
        };
        let n = self.count as f64;
        Summary {
            count: self.count,
            has_nan: self.has_nan,
            min: nan_or(self.min),
            max: nan_or(self.max),
            mean: nan_or(self.mean),
            std: nan_or((self.m2 / n).sqrt()),
            std_unbiased: if self.count < 2 {
                f64::NAN
            } else {
                nan_or((self.m2 / (n - 1.0)).sqrt())
            },
            percentiles: Vec::new(),
            histogram: Vec::new(),
        }
    }
}

/// Number of independent accumulators per plane: they break the dependency
/// chains of the sums (and let the loop vectorise); voxel `p` always goes to
/// lane `p % LANES`, so the order of additions is fixed.
const LANES: usize = 8;

/// Moments of the masked values of one plane, copying them to `copy` (which
/// has exactly the plane's masked count) when percentiles are needed.
fn plane_moments<T: Voxel, M: MaskElement>(
    values: &[T],
    mask: Option<&[M]>,
    copy: Option<&mut [T]>,
) -> Moments {
    if let Some(copy) = copy {
        match mask {
            None => copy.copy_from_slice(values),
            Some(mask) => {
                let mut written = 0usize;
                for (&value, &on) in values.iter().zip(mask) {
                    if on.is_on() {
                        copy[written] = value;
                        written += 1;
                    }
                }
            }
        }
    }
    // Separate instantiations with and without a mask keep the hot loop branch-free.
    match mask {
        None => masked_moments(values, |_| true),
        Some(mask) => masked_moments(values, |p| mask[p].is_on()),
    }
}

fn masked_moments<T: Voxel>(values: &[T], on: impl Fn(usize) -> bool) -> Moments {
    let mut sums = [0.0f64; LANES];
    let mut counts = [0u64; LANES];
    let mut mins = [f64::INFINITY; LANES];
    let mut maxs = [f64::NEG_INFINITY; LANES];
    let mut nans = [false; LANES];
    for (chunk_index, chunk) in values.chunks(LANES).enumerate() {
        let base = chunk_index * LANES;
        for (lane, &value) in chunk.iter().enumerate() {
            let inside = on(base + lane);
            let x = value.to_f64();
            sums[lane] += if inside { x } else { 0.0 };
            counts[lane] += u64::from(inside);
            nans[lane] |= inside & x.is_nan();
            // NaN fails both comparisons, so min and max skip it.
            if inside && x < mins[lane] {
                mins[lane] = x;
            }
            if inside && x > maxs[lane] {
                maxs[lane] = x;
            }
        }
    }
    let count: u64 = counts.iter().sum();
    if count == 0 {
        return Moments::EMPTY;
    }
    let has_nan = nans.iter().any(|&n| n);
    let sum = pairwise_lanes(sums);
    let mean = sum / count as f64;
    let mut m2 = 0.0;
    if !has_nan {
        let mut squares = [0.0f64; LANES];
        for (chunk_index, chunk) in values.chunks(LANES).enumerate() {
            let base = chunk_index * LANES;
            for (lane, &value) in chunk.iter().enumerate() {
                let d = value.to_f64() - mean;
                squares[lane] += if on(base + lane) { d * d } else { 0.0 };
            }
        }
        m2 = pairwise_lanes(squares);
    }
    Moments {
        count,
        mean,
        m2,
        min: mins.iter().fold(f64::INFINITY, |a, &b| a.min(b)),
        max: maxs.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)),
        has_nan,
    }
}

/// Sums the lane accumulators in a fixed pairwise order.
fn pairwise_lanes(lanes: [f64; LANES]) -> f64 {
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

fn compare<T: Voxel>(a: &T, b: &T) -> Ordering {
    // Only called on NaN-free data, where the order is total.
    a.partial_cmp(b).unwrap_or(Ordering::Equal)
}

/// Percentiles of `values` (non-empty, NaN-free) with NumPy's `linear` method,
/// reordering `values` in place with O(N) selections (no full sort).
/// Below this many values one selection per rank beats bucketing.
const BUCKET_THRESHOLD: usize = 1 << 15;
/// Number of value buckets of the bucket selection.
const BUCKETS: usize = 1 << 14;
/// Largest whole-numbered value span bucketed one integer per bucket.
const WHOLE_BUCKETS: usize = 1 << 16;
/// Values per task of the bucket passes (fixed, though integer counts and a
/// k-th smallest value do not depend on the split anyway).
const BUCKET_CHUNK: usize = 1 << 16;

/// The values of rank `wanted` (sorted, unique) in `values` (NaN-free, with
/// the given finite `min` and `max`); `values` is only read.
///
/// Large inputs are bucketed by value with a monotone map, so one counting
/// pass finds the bucket of each rank and one gathering pass copies those few
/// buckets; selection then runs on the gathered values only.
fn select_ranks<T: Voxel>(
    values: &[T],
    wanted: &[usize],
    (min, max): (f64, f64),
    threshold: usize,
) -> Vec<(usize, T)> {
    let scale = BUCKETS as f64 / (max - min);
    if values.len() < threshold || max <= min || !scale.is_finite() || !(max - min).is_finite() {
        // Successive selections on a copy (small, or a degenerate range):
        // after placing index `w`, later ranks lie right of it.
        let mut values = values.to_vec();
        let mut selected = Vec::with_capacity(wanted.len());
        let mut low = 0usize;
        for &w in wanted {
            let (_, nth, _) = values[low..].select_nth_unstable_by(w - low, compare::<T>);
            selected.push((w, *nth));
            low = w + 1;
        }
        return selected;
    }
    // Whole-numbered ranges up to WHOLE_BUCKETS get one unit-wide bucket per
    // integer, so integer-valued data (integer dtypes, or floats holding whole
    // numbers) put one distinct value in each bucket and need no gathering.
    let span = max - min;
    let (buckets_len, scale) = if span.fract() == 0.0 && span < WHOLE_BUCKETS as f64 {
        (span as usize + 1, 1.0)
    } else {
        (BUCKETS, scale)
    };
    // (v - min) * scale is non-decreasing in v, so buckets are ordered by value.
    let bucket = |v: T| (((v.to_f64() - min) * scale) as usize).min(buckets_len - 1);
    // Count, and record the smallest and largest value of every bucket.
    let tally = values
        .par_chunks(BUCKET_CHUNK)
        .fold(
            || Tally::<T>::new(buckets_len),
            |mut tally, chunk| {
                tally.add_all(chunk, bucket);
                tally
            },
        )
        .reduce(|| Tally::<T>::new(buckets_len), Tally::merge)
        .finish();
    let counts = &tally.counts;
    // Bucket and rank within the bucket of every wanted rank; a bucket whose
    // smallest and largest values are equal answers its ranks directly.
    let mut slot_of_bucket = vec![usize::MAX; buckets_len];
    let mut buckets: Vec<usize> = Vec::new();
    let mut targets: Vec<(usize, usize, usize)> = Vec::with_capacity(wanted.len());
    let mut selected: Vec<(usize, T)> = Vec::with_capacity(wanted.len());
    let mut before = 0usize;
    let mut b = 0usize;
    for &w in wanted {
        while before + counts[b] <= w {
            before += counts[b];
            b += 1;
        }
        if compare(&tally.lows[b], &tally.highs[b]) == Ordering::Equal {
            selected.push((w, tally.lows[b]));
            continue;
        }
        if slot_of_bucket[b] == usize::MAX {
            slot_of_bucket[b] = buckets.len();
            buckets.push(b);
        }
        targets.push((w, slot_of_bucket[b], w - before));
    }
    if targets.is_empty() {
        return selected;
    }
    let slots = buckets.len();
    let mut gathered = values
        .par_chunks(BUCKET_CHUNK)
        .fold(
            || vec![Vec::new(); slots],
            |mut gathered: Vec<Vec<T>>, chunk| {
                for &v in chunk {
                    let slot = slot_of_bucket[bucket(v)];
                    if slot != usize::MAX {
                        gathered[slot].push(v);
                    }
                }
                gathered
            },
        )
        .reduce(
            || vec![Vec::new(); slots],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, mut y)| x.append(&mut y));
                a
            },
        );
    for (w, slot, rank) in targets {
        let (_, nth, _) = gathered[slot].select_nth_unstable_by(rank, compare::<T>);
        selected.push((w, *nth));
    }
    // Callers look ranks up by binary search.
    selected.sort_unstable_by_key(|&(w, _)| w);
    selected
}

/// Independent sub-tallies per bucket: runs of equal values (a background of
/// zeros) would otherwise chain every update of a bucket on the previous one.
const TALLY_LANES: usize = 4;

/// Per-bucket counts with the smallest and largest value seen in each bucket
/// (`T::MAX` and `T::MIN` while a bucket is empty; empty buckets never hold a
/// rank), kept in [`TALLY_LANES`] interleaved copies until [`Tally::finish`].
struct Tally<T> {
    counts: Vec<usize>,
    lows: Vec<T>,
    highs: Vec<T>,
}

impl<T: Voxel> Tally<T> {
    fn new(len: usize) -> Self {
        let slots = len * TALLY_LANES;
        Self {
            counts: vec![0; slots],
            lows: vec![T::MAX; slots],
            highs: vec![T::MIN; slots],
        }
    }

    /// Counts `values`, value `n` in lane `n % TALLY_LANES` of its bucket.
    #[inline]
    fn add_all(&mut self, values: &[T], bucket: impl Fn(T) -> usize) {
        let mut groups = values.chunks_exact(TALLY_LANES);
        for group in &mut groups {
            for (lane, &v) in group.iter().enumerate() {
                self.add(bucket(v) * TALLY_LANES + lane, v);
            }
        }
        for &v in groups.remainder() {
            self.add(bucket(v) * TALLY_LANES, v);
        }
    }

    #[inline(always)]
    fn add(&mut self, slot: usize, v: T) {
        self.counts[slot] += 1;
        let (low, high) = (&mut self.lows[slot], &mut self.highs[slot]);
        // Selects, not branches: the comparisons depend on the data.
        *low = if v < *low { v } else { *low };
        *high = if v > *high { v } else { *high };
    }

    fn merge(mut self, other: Self) -> Self {
        for (slot, &count) in other.counts.iter().enumerate() {
            self.counts[slot] += count;
            if other.lows[slot] < self.lows[slot] {
                self.lows[slot] = other.lows[slot];
            }
            if other.highs[slot] > self.highs[slot] {
                self.highs[slot] = other.highs[slot];
            }
        }
        self
    }

    /// Folds the lanes of every bucket into one (`len` buckets).
    fn finish(self) -> Self {
        let buckets = self.counts.len() / TALLY_LANES;
        let mut done = Self {
            counts: vec![0; buckets],
            lows: vec![T::MAX; buckets],
            highs: vec![T::MIN; buckets],
        };
        for slot in 0..self.counts.len() {
            let b = slot / TALLY_LANES;
            done.counts[b] += self.counts[slot];
            if self.lows[slot] < done.lows[b] {
                done.lows[b] = self.lows[slot];
            }
            if self.highs[slot] > done.highs[b] {
                done.highs[b] = self.highs[slot];
            }
        }
        done
    }
}

fn percentiles_of<T: Voxel>(values: &[T], fractions: &[f64], range: (f64, f64)) -> Vec<f64> {
    percentiles_with_threshold(values, fractions, range, BUCKET_THRESHOLD)
}

fn percentiles_with_threshold<T: Voxel>(
    values: &[T],
    fractions: &[f64],
    range: (f64, f64),
    threshold: usize,
) -> Vec<f64> {
    let wanted = wanted_ranks(values.len(), fractions);
    let selected = select_ranks(values, &wanted, range, threshold);
    percentiles_from_ranks(values.len(), fractions, &selected)
}

/// For each fraction of `n` values: (previous index, next index, gamma)
/// exactly as NumPy's `linear` method computes them.
fn rank_plans(n: usize, fractions: &[f64]) -> Vec<(usize, usize, f64)> {
    let last = n - 1;
    fractions
        .iter()
        .map(|&fraction| {
            let virtual_index = last as f64 * fraction;
            if virtual_index >= last as f64 {
                // numpy marks these with index -1 and computes gamma from it.
                (last, last, virtual_index + 1.0)
            } else {
                let previous = virtual_index.floor();
                let p = previous as usize;
                (p, p + 1, virtual_index - previous)
            }
        })
        .collect()
}

/// The sorted, unique ranks (0-based positions in sorted order) that the
/// percentiles `fractions` of `n` values (n > 0) interpolate between.
pub(crate) fn wanted_ranks(n: usize, fractions: &[f64]) -> Vec<usize> {
    let mut wanted: Vec<usize> = rank_plans(n, fractions)
        .iter()
        .flat_map(|&(p, q, _)| [p, q])
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// The percentiles `fractions` of `n` values, with NumPy's `linear` rule,
/// from `selected`: the value of every rank of [`wanted_ranks`], sorted by rank.
pub(crate) fn percentiles_from_ranks<T: Voxel>(
    n: usize,
    fractions: &[f64],
    selected: &[(usize, T)],
) -> Vec<f64> {
    let value_at = |index: usize| -> T {
        let position = selected.partition_point(|&(w, _)| w < index);
        selected.get(position).map_or(T::default(), |&(_, v)| v)
    };
    rank_plans(n, fractions)
        .iter()
        .map(|&(p, q, gamma)| {
            let (a, b) = (value_at(p), value_at(q));
            let (af, bf) = (a.to_f64(), b.to_f64());
            // numpy subtracts in the array's own float type.
            let diff = if T::IS_FLOAT {
                T::from_f64(bf - af).to_f64()
            } else {
                bf - af
            };
            if gamma >= 0.5 {
                bf - diff * (1.0 - gamma)
            } else {
                af + diff * gamma
            }
        })
        .collect()
}

/// `numpy.linspace(first, last, n + 1)` in float64.
fn linspace_f64(first: f64, last: f64, bins: usize) -> Vec<f64> {
    let delta = last - first;
    let step = delta / bins as f64;
    let mut edges: Vec<f64> = (0..=bins)
        .map(|t| {
            if step == 0.0 {
                (t as f64 / bins as f64) * delta + first
            } else {
                t as f64 * step + first
            }
        })
        .collect();
    edges[bins] = last;
    edges
}

/// `numpy.linspace(first, last, n + 1)` computed in float32 (NumPy does this
/// when the range comes from float32 data).
fn linspace_f32(first: f32, last: f32, bins: usize) -> Vec<f64> {
    let delta = last - first;
    let step = delta / bins as f32;
    let mut edges: Vec<f64> = (0..=bins)
        .map(|t| {
            let y = if step == 0.0 {
                (t as f32 / bins as f32) * delta
            } else {
                t as f32 * step
            };
            f64::from(y + first)
        })
        .collect();
    edges[bins] = f64::from(last);
    edges
}

/// Bin edges NumPy's `histogram` uses for `values` of type `T`; for float32
/// data they are float32 values (stored exactly in f64).
fn bin_edges<T: Voxel>(request: &HistogramRequest, total: &Summary) -> Result<Vec<f64>> {
    let bins = request.num_bins;
    let is_f32 = T::IS_FLOAT && T::from_f64(0.1).to_f64() != 0.1;
    let edges = match request.range {
        Some((first, last)) => {
            ensure(first.is_finite() && last.is_finite(), || {
                format!("histogram range ({first}, {last}) is not finite")
            })?;
            ensure(first <= last, || {
                format!("histogram range ({first}, {last}) has min larger than max")
            })?;
            let (first, last) = if first == last {
                (first - 0.5, last + 0.5)
            } else {
                (first, last)
            };
            let edges = linspace_f64(first, last, bins);
            if is_f32 {
                edges.iter().map(|&e| f64::from(e as f32)).collect()
            } else {
                edges
            }
        }
        None => {
            let (first, last) = (total.min, total.max);
            ensure(first.is_finite() && last.is_finite(), || {
                format!(
                    "cannot choose a histogram range: the masked values span [{first}, {last}], \
                     which is not finite; pass an explicit range"
                )
            })?;
            if is_f32 {
                let (mut a, mut b) = (first as f32, last as f32);
                if a == b {
                    a -= 0.5;
                    b += 0.5;
                }
                linspace_f32(a, b, bins)
            } else {
                let (first, last) = if first == last {
                    (first - 0.5, last + 0.5)
                } else {
                    (first, last)
                };
                linspace_f64(first, last, bins)
            }
        }
    };
    ensure(edges.windows(2).all(|w| w[0] < w[1]), || {
        format!("too many bins ({bins}) for the histogram range")
    })?;
    Ok(edges)
}

/// Adds the masked values of one plane to `counts` with NumPy's rule: bin `b`
/// holds `edges[b] <= v < edges[b + 1]`, the last bin also `v == edges[n]`.
fn histogram_plane<T: Voxel, M: MaskElement>(
    values: &[T],
    mask: Option<&[M]>,
    edges: &[f64],
    counts: &mut [u64],
) {
    match mask {
        None => histogram_masked(values, |_| true, edges, counts),
        Some(mask) => histogram_masked(values, |p| mask[p].is_on(), edges, counts),
    }
}

fn histogram_masked<T: Voxel>(
    values: &[T],
    on: impl Fn(usize) -> bool,
    edges: &[f64],
    counts: &mut [u64],
) {
    let bins = counts.len();
    let (first, last) = (edges[0], edges[bins]);
    let scale = bins as f64 / (last - first);
    for (position, &value) in values.iter().enumerate() {
        let v = value.to_f64();
        // Outside the range or NaN: not counted.
        if !(v >= first && v <= last && on(position)) {
            continue;
        }
        // Estimate, then correct against the exact edges (within one bin).
        let mut bin = (((v - first) * scale) as usize).min(bins - 1);
        while bin > 0 && v < edges[bin] {
            bin -= 1;
        }
        while bin + 1 < bins && v >= edges[bin + 1] {
            bin += 1;
        }
        counts[bin] += 1;
    }
}

/// Statistics of the values of `volume` where `mask` is on (all values without
/// a mask), per channel and over the whole volume.
///
/// `mask` has shape `(1, I, J, K)` (shared by every channel) or `(C, I, J, K)`.
///
/// # Errors
/// `Error::Empty` for an empty volume or a mask selecting no voxel;
/// `Error::Shape` for a mask of another shape; `Error::InvalidArgument` for a
/// percentile outside `[0, 100]` or NaN, zero bins, a bad range, or an automatic
/// histogram range over non-finite values.
pub fn statistics<T: Voxel, M: MaskElement>(
    volume: ArrayView4<'_, T>,
    mask: Option<ArrayView4<'_, M>>,
    request: &StatisticsRequest,
) -> Result<Statistics> {
    check_not_empty(&volume, "volume")?;
    for &q in &request.percentiles {
        ensure((0.0..=100.0).contains(&q), || {
            format!("percentiles must be in [0, 100], got {q}")
        })?;
    }
    if let Some(histogram) = &request.histogram {
        ensure(histogram.num_bins > 0, || {
            "num_bins must be positive, got 0".into()
        })?;
    }
    let (channels, ni, nj, nk) = volume.dim();
    if let Some(mask) = &mask {
        check_mask_shape(volume.shape(), mask.shape())?;
    }
    let volume = volume.as_standard_layout();
    let Some(data) = volume.as_slice() else {
        return Err(Error::Shape(
            "standard-layout volume is not contiguous".into(),
        ));
    };
    let mask_view = mask;
    let mask = mask_view.as_ref().map(|m| m.as_standard_layout());
    let mask_data: Option<&[M]> = match &mask {
        Some(m) => Some(
            m.as_slice()
                .ok_or_else(|| Error::Shape("standard-layout mask is not contiguous".into()))?,
        ),
        None => None,
    };
    let mask_channels = mask.as_ref().map_or(1, |m| m.dim().0);
    let plane_len = nj * nk;
    let planes = channels * ni;
    let mask_plane = |plane: usize| -> Option<&[M]> {
        mask_data.map(|m| {
            let (c, i) = (plane / ni, plane % ni);
            let mc = if mask_channels == 1 { 0 } else { c };
            &m[(mc * ni + i) * plane_len..][..plane_len]
        })
    };

    // Masked values are copied, channel after channel, when percentiles are
    // needed; without a mask the percentiles read the volume itself.
    let need_percentiles = !request.percentiles.is_empty();
    let need_copy = need_percentiles && mask_data.is_some();
    let mut copy: Vec<T> = Vec::new();
    let mut plane_counts: Vec<usize> = vec![0; planes];
    if need_copy {
        match mask_data {
            None => plane_counts.fill(plane_len),
            Some(_) => {
                plane_counts
                    .par_iter_mut()
                    .enumerate()
                    .for_each(|(plane, count)| {
                        *count = mask_plane(plane)
                            .map_or(plane_len, |m| m.iter().filter(|v| v.is_on()).count());
                    });
            }
        }
        let total: usize = plane_counts.iter().sum();
        copy.try_reserve_exact(total).map_err(|_| {
            Error::InvalidArgument(format!("cannot allocate a copy of {total} masked values"))
        })?;
        copy.resize(total, T::default());
    }
    let mut destinations: Vec<Option<&mut [T]>> = Vec::with_capacity(planes);
    {
        let mut rest: &mut [T] = &mut copy;
        for &count in &plane_counts {
            if need_copy {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(count);
                destinations.push(Some(head));
                rest = tail;
            } else {
                destinations.push(None);
            }
        }
    }
    let plane_moments: Vec<Moments> = destinations
        .into_par_iter()
        .enumerate()
        .map(|(plane, destination)| {
            plane_moments(
                &data[plane * plane_len..][..plane_len],
                mask_plane(plane),
                destination,
            )
        })
        .collect();

    // Combine in plane order: fixed whatever the thread count.
    let channel_moments: Vec<Moments> = plane_moments
        .chunks(ni)
        .map(|chunk| chunk.iter().fold(Moments::EMPTY, |acc, &m| acc.combine(m)))
        .collect();
    let total_moments = channel_moments
        .iter()
        .fold(Moments::EMPTY, |acc, &m| acc.combine(m));
    if total_moments.count == 0 {
        return Err(Error::Empty("the mask selects no voxel".into()));
    }
    let mut channel_summaries: Vec<Summary> =
        channel_moments.iter().map(Moments::summary).collect();
    let mut total = total_moments.summary();

    if need_percentiles {
        let fractions: Vec<f64> = request.percentiles.iter().map(|q| q / 100.0).collect();
        let nan_row = vec![f64::NAN; fractions.len()];
        // The selected values: the masked copy, or the whole volume.
        let values: &[T] = if need_copy { &copy } else { data };
        // Split them into channel segments and select within each.
        let mut segments: Vec<&[T]> = Vec::with_capacity(channels);
        let mut rest: &[T] = values;
        for c in 0..channels {
            let len: usize = if need_copy {
                plane_counts[c * ni..(c + 1) * ni].iter().sum()
            } else {
                ni * plane_len
            };
            let (head, tail) = rest.split_at(len);
            segments.push(head);
            rest = tail;
        }
        let per_channel: Vec<Vec<f64>> = segments
            .into_par_iter()
            .zip(channel_summaries.par_iter())
            .map(|(segment, summary)| {
                if summary.has_nan || segment.is_empty() {
                    nan_row.clone()
                } else {
                    percentiles_of(segment, &fractions, (summary.min, summary.max))
                }
            })
            .collect();
        total.percentiles = if channels == 1 {
            per_channel[0].clone()
        } else if total.has_nan {
            nan_row.clone()
        } else {
            percentiles_of(values, &fractions, (total.min, total.max))
        };
        for (summary, values) in channel_summaries.iter_mut().zip(per_channel) {
            summary.percentiles = values;
        }
    }
    drop(copy);

    let mut edges = Vec::new();
    if let Some(histogram) = &request.histogram {
        edges = bin_edges::<T>(histogram, &total)?;
        let bins = histogram.num_bins;
        let counts = (0..planes)
            .into_par_iter()
            .fold(
                || vec![0u64; channels * bins],
                |mut counts, plane| {
                    let c = plane / ni;
                    histogram_plane(
                        &data[plane * plane_len..][..plane_len],
                        mask_plane(plane),
                        &edges,
                        &mut counts[c * bins..(c + 1) * bins],
                    );
                    counts
                },
            )
            .reduce(
                || vec![0u64; channels * bins],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    a
                },
            );
        total.histogram = vec![0; bins];
        for (summary, row) in channel_summaries.iter_mut().zip(counts.chunks(bins)) {
            total
                .histogram
                .iter_mut()
                .zip(row)
                .for_each(|(t, v)| *t += v);
            summary.histogram = row.to_vec();
        }
    }
    Ok(Statistics {
        channels: channel_summaries,
        total,
        bin_edges: edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Array4};
    use proptest::prelude::*;

    fn request(
        percentiles: &[f64],
        bins: Option<(usize, Option<(f64, f64)>)>,
    ) -> StatisticsRequest {
        StatisticsRequest {
            percentiles: percentiles.to_vec(),
            histogram: bins.map(|(num_bins, range)| HistogramRequest { num_bins, range }),
        }
    }

    fn no_mask() -> Option<ArrayView4<'static, u8>> {
        None
    }

    /// Reference percentile by full sort and numpy's formula.
    fn sorted_percentile(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let index = (sorted.len() - 1) as f64 * (q / 100.0);
        let lo = index.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        let g = index - index.floor();
        let d = sorted[hi] - sorted[lo];
        if g >= 0.5 {
            sorted[hi] - d * (1.0 - g)
        } else {
            sorted[lo] + d * g
        }
    }

    #[test]
    fn moments_of_a_known_volume() {
        let volume = Array::from_iter((0..24).map(|v| v as f64))
            .into_shape_with_order((2, 2, 3, 2))
            .unwrap();
        let stats = statistics(
            volume.view(),
            no_mask(),
            &request(&[0.0, 50.0, 100.0], None),
        )
        .unwrap();
        let c0 = &stats.channels[0];
        assert_eq!((c0.count, c0.min, c0.max, c0.mean), (12, 0.0, 11.0, 5.5));
        assert!((c0.std - (143.0f64 / 12.0).sqrt()).abs() < 1e-12);
        assert!((c0.std_unbiased - 13.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(c0.percentiles, [0.0, 5.5, 11.0]);
        assert_eq!(stats.channels[1].mean, 17.5);
        assert_eq!(stats.total.count, 24);
        assert_eq!(stats.total.mean, 11.5);
        assert_eq!(stats.total.percentiles, [0.0, 11.5, 23.0]);
    }

    #[test]
    fn shared_and_per_channel_masks() {
        let volume = Array::from_iter((0..16).map(|v| v as i16))
            .into_shape_with_order((2, 2, 2, 2))
            .unwrap();
        let shared = Array4::from_shape_vec((1, 2, 2, 2), vec![1u8, 0, 0, 0, 0, 0, 0, 3]).unwrap();
        let stats =
            statistics(volume.view(), Some(shared.view()), &request(&[50.0], None)).unwrap();
        assert_eq!(stats.channels[0].count, 2);
        assert_eq!(stats.channels[0].mean, 3.5);
        assert_eq!(stats.channels[1].mean, 11.5);
        assert_eq!(stats.total.percentiles, [7.5]);
        let mut per_channel = Array4::from_elem((2, 2, 2, 2), false);
        per_channel[[1, 0, 0, 1]] = true;
        let stats = statistics(
            volume.view(),
            Some(per_channel.view()),
            &request(&[10.0], Some((2, None))),
        )
        .unwrap();
        assert_eq!(stats.channels[0].count, 0);
        assert!(stats.channels[0].mean.is_nan() && stats.channels[0].percentiles[0].is_nan());
        assert_eq!(stats.channels[1].percentiles, [9.0]);
        assert_eq!(stats.total.mean, 9.0);
        assert!(stats.total.std_unbiased.is_nan());
        // Range widened by 0.5 around the single value.
        assert_eq!(stats.bin_edges, [8.5, 9.0, 9.5]);
        assert_eq!(stats.total.histogram, [0, 1]);
    }

    #[test]
    fn nan_propagates_and_is_reported() {
        let mut volume = Array4::<f32>::ones((2, 2, 2, 2));
        volume[[1, 0, 1, 0]] = f32::NAN;
        let stats = statistics(
            volume.view(),
            no_mask(),
            &request(&[50.0], Some((2, Some((0.0, 2.0))))),
        )
        .unwrap();
        assert!(!stats.channels[0].has_nan && stats.channels[0].mean == 1.0);
        let c1 = &stats.channels[1];
        assert!(c1.has_nan && c1.mean.is_nan() && c1.min.is_nan() && c1.percentiles[0].is_nan());
        assert_eq!(c1.count, 8);
        assert_eq!(c1.histogram, [0, 7]);
        assert!(stats.total.has_nan && stats.total.std.is_nan());
        let auto = statistics(volume.view(), no_mask(), &request(&[], Some((2, None))));
        assert!(matches!(auto, Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn histogram_last_bin_is_closed() {
        let volume = Array4::from_shape_vec((1, 1, 1, 5), vec![0.0, 0.5, 1.0, 2.0, 3.0]).unwrap();
        let stats = statistics(
            volume.view(),
            no_mask(),
            &request(&[], Some((2, Some((0.0, 2.0))))),
        )
        .unwrap();
        assert_eq!(stats.bin_edges, [0.0, 1.0, 2.0]);
        assert_eq!(stats.total.histogram, [2, 2]);
    }

    #[test]
    fn invalid_requests_are_errors() {
        let volume = Array4::<u8>::ones((1, 2, 2, 2));
        let v = volume.view();
        for q in [-1.0, 100.5, f64::NAN] {
            assert!(matches!(
                statistics(v, no_mask(), &request(&[q], None)),
                Err(Error::InvalidArgument(_))
            ));
        }
        assert!(matches!(
            statistics(v, no_mask(), &request(&[], Some((0, None)))),
            Err(Error::InvalidArgument(_))
        ));
        for range in [(1.0, 0.0), (f64::NAN, 1.0), (0.0, f64::INFINITY)] {
            assert!(matches!(
                statistics(v, no_mask(), &request(&[], Some((4, Some(range))))),
                Err(Error::InvalidArgument(_))
            ));
        }
        let empty_mask = Array4::<u8>::zeros((1, 2, 2, 2));
        assert!(matches!(
            statistics(v, Some(empty_mask.view()), &request(&[], None)),
            Err(Error::Empty(_))
        ));
        let wrong = Array4::<u8>::ones((1, 2, 2, 3));
        assert!(matches!(
            statistics(v, Some(wrong.view()), &request(&[], None)),
            Err(Error::Shape(_))
        ));
        let empty = Array4::<f32>::zeros((0, 2, 2, 2));
        assert!(matches!(
            statistics(empty.view(), no_mask(), &request(&[], None)),
            Err(Error::Empty(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        #[test]
        fn percentiles_match_full_sort(
            values in prop::collection::vec(-1000i32..1000, 1..300),
            qs in prop::collection::vec(0.0f64..=100.0, 1..5),
        ) {
            let n = values.len();
            let volume = Array4::from_shape_vec((1, 1, 1, n), values.iter().map(|&v| f64::from(v) / 7.0).collect()).unwrap();
            let stats = statistics(volume.view(), no_mask(), &request(&qs, None)).unwrap();
            let flat: Vec<f64> = volume.iter().copied().collect();
            for (q, got) in qs.iter().zip(&stats.total.percentiles) {
                prop_assert_eq!(*got, sorted_percentile(&flat, *q));
            }
            // The bucketed selection (forced with threshold 0) gives the same values.
            let fractions: Vec<f64> = qs.iter().map(|q| q / 100.0).collect();
            let range = (stats.total.min, stats.total.max);
            prop_assert_eq!(
                percentiles_with_threshold(&flat, &fractions, range, 0),
                stats.total.percentiles.clone()
            );
        }

        #[test]
        fn tied_and_whole_valued_percentiles_match_full_sort(
            values in prop::collection::vec(0u8..=255, 1..400),
            zeros in 0usize..400,
            halves in any::<bool>(),
            qs in prop::collection::vec(0.0f64..=100.0, 1..5),
        ) {
            // Heavy ties at 0 like a brain background; integer and whole-valued float
            // data take the one-value-per-bucket path, halves force gathering.
            let mut bytes = values.clone();
            bytes.extend(std::iter::repeat_n(0u8, zeros));
            let floats: Vec<f32> = bytes
                .iter()
                .map(|&v| if halves && v % 3 == 0 { f32::from(v) + 0.5 } else { f32::from(v) })
                .collect();
            let fractions: Vec<f64> = qs.iter().map(|q| q / 100.0).collect();
            let bytes_f64: Vec<f64> = bytes.iter().map(|&v| f64::from(v)).collect();
            let floats_f64: Vec<f64> = floats.iter().map(|&v| f64::from(v)).collect();
            let range = |v: &[f64]| (v.iter().copied().fold(f64::INFINITY, f64::min),
                                     v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            let got_bytes = percentiles_with_threshold(&bytes, &fractions, range(&bytes_f64), 0);
            let got_floats = percentiles_with_threshold(&floats, &fractions, range(&floats_f64), 0);
            for (i, q) in qs.iter().enumerate() {
                prop_assert_eq!(got_bytes[i], sorted_percentile(&bytes_f64, *q));
                prop_assert_eq!(got_floats[i], sorted_percentile(&floats_f64, *q));
            }
        }

        #[test]
        fn thread_count_does_not_change_the_result(seed in 0u64..1000) {
            let volume = Array4::from_shape_fn((2, 9, 7, 5), |(c, i, j, k)| {
                ((seed as usize + c * 31 + i * 17 + j * 7 + k * 3) % 101) as f32 * 0.37 - 11.0
            });
            let req = request(&[1.0, 33.3, 99.0], Some((7, None)));
            let run = |threads| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
                    .install(|| statistics(volume.view(), no_mask(), &req).unwrap())
            };
            prop_assert_eq!(run(1), run(3));
        }
    }
}
