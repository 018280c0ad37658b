//! Exact percentiles, minimum and maximum of a whole volume in one counting
//! pass plus, when needed, one short refining pass (what `RescaleIntensity`
//! needs; no moments).
//!
//! Every value is read as `f32` (exact for `f32`, `i16` and `u8` volumes) and
//! mapped to a `u32` key whose unsigned order is the order of the values
//! (IEEE-754 bit patterns are ordered for positive floats; negative ones are
//! flipped). The first pass counts the values per 16-bit key prefix, so the
//! prefix (bucket) of every wanted rank is known; the second pass counts the
//! low 16 bits of the values in those few buckets only, which gives the exact
//! value of each rank. Ranks whose bucket is known to hold a single value
//! (all zeros, as in a brain's background) or that are the minimum or
//! maximum need no second pass. Other volume types use
//! [`statistics`](super::statistics::statistics).
//!
//! Counts are integers and the minimum and maximum are exact, so the result
//! does not depend on how the work is split between threads.

use ndarray::ArrayView4;
use rayon::prelude::*;

use super::statistics::{percentiles_from_ranks, statistics, StatisticsRequest};
use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, Voxel};

/// Minimum, maximum and percentiles of all the values of a volume.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSummary {
    /// Whether any value is NaN; then `min`, `max` and the percentiles are NaN.
    pub has_nan: bool,
    pub min: f64,
    pub max: f64,
    /// One value per requested percentile, in request order (NumPy's `linear` method).
    pub percentiles: Vec<f64>,
}

/// Number of key-prefix buckets (16 bits).
const BUCKETS: usize = 1 << 16;
/// Independent sub-counts per bucket: runs of equal values (a background of
/// one value) would otherwise chain every increment on the previous one.
const LANES: usize = 4;
/// Values checked at once for the all-zero skip and the vectorised extremes.
const BLOCK: usize = 32;
/// Largest number of values one task counts in its `u32` counters.
const MAX_TASK: usize = 1 << 31;
/// Bucket of the key of `0.0` (and `-0.0`, which shares its key).
const ZERO_BUCKET: u32 = 0x8000;
/// A bucket value no key has: pads the target list of the refining pass.
const NO_BUCKET: u32 = 1 << 16;

/// Order-preserving key of a non-NaN `f32`; `-0.0` and `0.0` share one key.
#[inline(always)]
fn key(x: f32) -> u32 {
    let bits = x.to_bits();
    let bits = if bits == 0x8000_0000 { 0 } else { bits };
    // Negative values: flip every bit (larger magnitude = smaller key);
    // positive values: set the sign bit so they sort above the negatives.
    let flip = (((bits as i32) >> 31) as u32) | 0x8000_0000;
    bits ^ flip
}

/// The `f32` with key `key` (the inverse of [`key`]).
#[inline]
fn value_of_key(key: u32) -> f32 {
    if key & 0x8000_0000 != 0 {
        f32::from_bits(key & 0x7fff_ffff)
    } else {
        f32::from_bits(!key)
    }
}

/// Whether every value of `T` converts to `f32` exactly.
fn exact_in_f32<T: Voxel>() -> bool {
    T::as_f32(&[]).is_some()
        || (!T::IS_FLOAT && T::MIN.to_f64() >= -16_777_216.0 && T::MAX.to_f64() <= 16_777_216.0)
}

/// What the counting pass of one task found.
struct Counts {
    /// `BUCKETS * LANES` interleaved sub-counts.
    counts: Vec<u32>,
    /// Values of all-zero blocks, counted here instead of in `counts`.
    zero_blocks: u64,
    /// Values equal to zero (either sign), including those of `zero_blocks`.
    zeros: u64,
    min: f32,
    max: f32,
    has_nan: bool,
}

/// Counting pass over `values` (one task).
fn count<T: Voxel>(values: &[T]) -> Counts {
    let mut counts = vec![0u32; BUCKETS * LANES];
    let mut mins = [f32::INFINITY; BLOCK];
    let mut maxs = [f32::NEG_INFINITY; BLOCK];
    let mut nans = [false; BLOCK];
    let mut zeros = 0u64;
    let mut zero_blocks = 0u64;
    let mut blocks = values.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut x = [0.0f32; BLOCK];
        for (x, &v) in x.iter_mut().zip(block) {
            *x = v.to_f64() as f32;
        }
        // Branch-free over the block: extremes, NaN, zeros (vectorises).
        let mut magnitude_bits = 0u32;
        let mut block_zeros = 0u32;
        for lane in 0..BLOCK {
            let v = x[lane];
            // NaN fails both comparisons, so the extremes skip it.
            mins[lane] = if v < mins[lane] { v } else { mins[lane] };
            maxs[lane] = if v > maxs[lane] { v } else { maxs[lane] };
            nans[lane] |= v.is_nan();
            let m = v.to_bits() & 0x7fff_ffff;
            magnitude_bits |= m;
            block_zeros += u32::from(m == 0);
        }
        zeros += u64::from(block_zeros);
        if magnitude_bits == 0 {
            zero_blocks += BLOCK as u64;
            continue;
        }
        for (lane, &v) in x.iter().enumerate() {
            counts[(key(v) >> 16) as usize * LANES + lane % LANES] += 1;
        }
    }
    let mut min = mins
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let mut max = maxs
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    let mut has_nan = nans.iter().any(|&n| n);
    for &v in blocks.remainder() {
        let v = v.to_f64() as f32;
        min = if v < min { v } else { min };
        max = if v > max { v } else { max };
        has_nan |= v.is_nan();
        zeros += u64::from(v.to_bits() & 0x7fff_ffff == 0);
        counts[(key(v) >> 16) as usize * LANES] += 1;
    }
    Counts {
        counts,
        zero_blocks,
        zeros,
        min,
        max,
        has_nan,
    }
}

/// Refining pass over `values` (one task): per target bucket, the counts of
/// the low 16 key bits of its values (allocated when the bucket is first met).
fn refine<T: Voxel>(values: &[T], targets: &[u32; 4]) -> Vec<Vec<u32>> {
    let mut low_counts: Vec<Vec<u32>> = vec![Vec::new(); 4];
    let mut add = |k: u32| {
        let bucket = k >> 16;
        for (slot, &target) in targets.iter().enumerate() {
            if bucket == target {
                let table = &mut low_counts[slot];
                if table.is_empty() {
                    table.resize(BUCKETS, 0);
                }
                table[(k & 0xffff) as usize] += 1;
            }
        }
    };
    let mut blocks = values.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut keys = [0u32; BLOCK];
        for (k, &v) in keys.iter_mut().zip(block) {
            *k = key(v.to_f64() as f32);
        }
        // Most blocks hold no target value: one vectorised test skips them.
        let mut hit = false;
        for &k in &keys {
            let bucket = k >> 16;
            hit |= (bucket == targets[0])
                | (bucket == targets[1])
                | (bucket == targets[2])
                | (bucket == targets[3]);
        }
        if hit {
            keys.iter().for_each(|&k| add(k));
        }
    }
    for &v in blocks.remainder() {
        add(key(v.to_f64() as f32));
    }
    low_counts
}

/// Splits `len` values into tasks: one per thread, none above [`MAX_TASK`].
fn task_ranges(len: usize) -> Vec<(usize, usize)> {
    let tasks = rayon::current_num_threads()
        .max(len.div_ceil(MAX_TASK))
        .max(1);
    let size = len.div_ceil(tasks).max(1);
    (0..len)
        .step_by(size)
        .map(|start| (start, (start + size).min(len)))
        .collect()
}

/// Minimum, maximum and percentiles (in `[0, 100]`, NumPy's `linear` method)
/// of all the values of `volume`, every channel together.
///
/// # Errors
/// `Error::Empty` for an empty volume; `Error::InvalidArgument` for a
/// percentile outside `[0, 100]` or NaN.
pub fn range_and_percentiles<T: Voxel>(
    volume: ArrayView4<'_, T>,
    percentiles: &[f64],
) -> Result<RangeSummary> {
    check_not_empty(&volume, "volume")?;
    for &q in percentiles {
        ensure((0.0..=100.0).contains(&q), || {
            format!("percentiles must be in [0, 100], got {q}")
        })?;
    }
    if !exact_in_f32::<T>() {
        let request = StatisticsRequest {
            percentiles: percentiles.to_vec(),
            histogram: None,
        };
        let total = statistics::<T, u8>(volume, None, &request)?.total;
        return Ok(RangeSummary {
            has_nan: total.has_nan,
            min: total.min,
            max: total.max,
            percentiles: total.percentiles,
        });
    }
    let volume = volume.as_standard_layout();
    let Some(data) = volume.as_slice() else {
        return Err(Error::Shape(
            "standard-layout volume is not contiguous".into(),
        ));
    };
    let fractions: Vec<f64> = percentiles.iter().map(|q| q / 100.0).collect();
    Ok(summarise(data, &fractions))
}

fn summarise<T: Voxel>(data: &[T], fractions: &[f64]) -> RangeSummary {
    let ranges = task_ranges(data.len());
    let parts: Vec<Counts> = ranges
        .par_iter()
        .map(|&(start, end)| count(&data[start..end]))
        .collect();
    let mut counts = vec![0u64; BUCKETS];
    let (mut min, mut max, mut has_nan, mut zeros) = (f32::INFINITY, f32::NEG_INFINITY, false, 0);
    for part in &parts {
        for (total, lanes) in counts.iter_mut().zip(part.counts.chunks_exact(LANES)) {
            *total += lanes.iter().map(|&c| u64::from(c)).sum::<u64>();
        }
        counts[ZERO_BUCKET as usize] += part.zero_blocks;
        min = if part.min < min { part.min } else { min };
        max = if part.max > max { part.max } else { max };
        has_nan |= part.has_nan;
        zeros += part.zeros;
    }
    drop(parts);
    if has_nan {
        return RangeSummary {
            has_nan,
            min: f64::NAN,
            max: f64::NAN,
            percentiles: vec![f64::NAN; fractions.len()],
        };
    }
    let n = data.len();
    let last = n - 1;
    // Bucket and rank within it of every wanted rank.
    let wanted = super::statistics::wanted_ranks(n, fractions);
    let mut known: Vec<(usize, f32)> = Vec::with_capacity(wanted.len());
    let mut pending: Vec<(usize, u32, u64)> = Vec::new();
    let (mut before, mut bucket) = (0u64, 0usize);
    for &w in &wanted {
        while before + counts[bucket] <= w as u64 {
            before += counts[bucket];
            bucket += 1;
        }
        if w == 0 {
            known.push((w, min));
        } else if w == last {
            known.push((w, max));
        } else if bucket == ZERO_BUCKET as usize && counts[bucket] == zeros {
            known.push((w, 0.0));
        } else {
            pending.push((w, bucket as u32, w as u64 - before));
        }
    }
    if !pending.is_empty() {
        let mut targets = [NO_BUCKET; 4];
        let mut distinct: Vec<u32> = pending.iter().map(|&(_, b, _)| b).collect();
        distinct.dedup();
        // At most 4 distinct buckets (two ranks per percentile, but sorted
        // ranks share buckets); refine in rounds of 4 in general.
        for round in distinct.chunks(4) {
            targets.fill(NO_BUCKET);
            targets[..round.len()].copy_from_slice(round);
            let parts: Vec<Vec<Vec<u32>>> = ranges
                .par_iter()
                .map(|&(start, end)| refine(&data[start..end], &targets))
                .collect();
            let mut tables = vec![vec![0u64; BUCKETS]; round.len()];
            for part in parts {
                for (table, low_counts) in tables.iter_mut().zip(part) {
                    for (t, c) in table.iter_mut().zip(low_counts) {
                        *t += u64::from(c);
                    }
                }
            }
            for &(w, b, rank) in &pending {
                let Some(slot) = round.iter().position(|&t| t == b) else {
                    continue;
                };
                let table = &tables[slot];
                let mut seen = 0u64;
                let mut low = 0usize;
                while low + 1 < table.len() && seen + table[low] <= rank {
                    seen += table[low];
                    low += 1;
                }
                known.push((w, value_of_key((b << 16) | low as u32)));
            }
        }
    }
    known.sort_unstable_by_key(|&(w, _)| w);
    let selected: Vec<(usize, T)> = known
        .into_iter()
        .map(|(w, v)| (w, T::from_f64(f64::from(v))))
        .collect();
    RangeSummary {
        has_nan: false,
        min: f64::from(min),
        max: f64::from(max),
        percentiles: percentiles_from_ranks(n, fractions, &selected),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array4;
    use proptest::prelude::*;

    /// The reference: full statistics (selection on a copy) over the whole volume.
    fn reference<T: Voxel>(volume: &Array4<T>, qs: &[f64]) -> RangeSummary {
        let request = StatisticsRequest {
            percentiles: qs.to_vec(),
            histogram: None,
        };
        let total = statistics::<T, u8>(volume.view(), None, &request)
            .unwrap()
            .total;
        RangeSummary {
            has_nan: total.has_nan,
            min: total.min,
            max: total.max,
            percentiles: total.percentiles,
        }
    }

    fn same(a: &RangeSummary, b: &RangeSummary) -> bool {
        let eq = |x: f64, y: f64| x == y || (x.is_nan() && y.is_nan());
        a.has_nan == b.has_nan
            && eq(a.min, b.min)
            && eq(a.max, b.max)
            && a.percentiles.len() == b.percentiles.len()
            && a.percentiles
                .iter()
                .zip(&b.percentiles)
                .all(|(&x, &y)| eq(x, y))
    }

    #[test]
    fn keys_are_ordered_like_values() {
        let values = [
            f32::NEG_INFINITY,
            -f32::MAX,
            -1.5,
            -f32::MIN_POSITIVE,
            -1e-45,
            0.0,
            1e-45,
            f32::MIN_POSITIVE,
            1.0,
            f32::MAX,
            f32::INFINITY,
        ];
        for pair in values.windows(2) {
            assert!(key(pair[0]) < key(pair[1]), "{pair:?}");
        }
        assert_eq!(key(-0.0), key(0.0));
        for &v in &values {
            assert_eq!(value_of_key(key(v)), v);
        }
    }

    #[test]
    fn brain_like_volume_matches_selection() {
        // A zero background (whole blocks skipped) around noisy tissue.
        let volume = Array4::from_shape_fn((1, 40, 30, 33), |(_, i, j, k)| {
            if (8..32).contains(&i) && (5..25).contains(&j) && (4..29).contains(&k) {
                ((i * 7919 + j * 104_729 + k * 1299) % 1000) as f32 * 0.173 + 3.0
            } else {
                0.0
            }
        });
        let qs = [0.0, 0.5, 2.0, 50.0, 99.5, 100.0];
        let got = range_and_percentiles(volume.view(), &qs).unwrap();
        assert!(same(&got, &reference(&volume, &qs)), "{got:?}");
    }

    #[test]
    fn special_values() {
        let mut volume = Array4::from_shape_fn((2, 3, 5, 7), |(c, i, j, k)| {
            (c * 105 + i * 35 + j * 7 + k) as f32 - 100.0
        });
        volume[[0, 0, 0, 0]] = f32::INFINITY;
        volume[[1, 2, 4, 6]] = f32::NEG_INFINITY;
        volume[[0, 1, 1, 1]] = -0.0;
        volume[[0, 1, 1, 2]] = 1e-40;
        volume[[0, 1, 1, 3]] = -1e-40;
        let qs = [0.0, 0.3, 1.0, 50.0, 99.0, 100.0];
        let got = range_and_percentiles(volume.view(), &qs).unwrap();
        assert!(same(&got, &reference(&volume, &qs)), "{got:?}");
        volume[[1, 0, 2, 2]] = f32::NAN;
        let got = range_and_percentiles(volume.view(), &qs).unwrap();
        assert!(got.has_nan && got.min.is_nan() && got.percentiles.iter().all(|p| p.is_nan()));
        assert!(range_and_percentiles(volume.view(), &[101.0]).is_err());
        assert!(range_and_percentiles(volume.view(), &[f64::NAN]).is_err());
        let empty = Array4::<f32>::zeros((1, 0, 2, 2));
        assert!(matches!(
            range_and_percentiles(empty.view(), &[1.0]),
            Err(Error::Empty(_))
        ));
    }

    #[test]
    fn integer_and_wide_types() {
        let shorts = Array4::from_shape_fn((1, 9, 11, 13), |(_, i, j, k)| {
            ((i * 1237 + j * 311 + k * 17) % 4001) as i16 - 1000
        });
        let qs = [0.5, 25.0, 99.5];
        let got = range_and_percentiles(shorts.view(), &qs).unwrap();
        assert!(same(&got, &reference(&shorts, &qs)));
        let bytes = shorts.mapv(|v| (v.rem_euclid(256)) as u8);
        let got = range_and_percentiles(bytes.view(), &qs).unwrap();
        assert!(same(&got, &reference(&bytes, &qs)));
        // float64 is not exact in f32: answered by the statistics kernel.
        let wide = shorts.mapv(|v| f64::from(v) / 3.0);
        let got = range_and_percentiles(wide.view(), &qs).unwrap();
        assert!(same(&got, &reference(&wide, &qs)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_selection_on_random_data(
            values in prop::collection::vec(
                prop_oneof![
                    3 => Just(0.0f32),
                    2 => -50.0f32..50.0,
                    1 => (-3i32..3).prop_map(|v| v as f32),
                    1 => any::<f32>().prop_filter("not NaN", |v| !v.is_nan()),
                ],
                1..3000,
            ),
            qs in prop::collection::vec(0.0f64..=100.0, 1..5),
        ) {
            let n = values.len();
            let volume = Array4::from_shape_vec((1, 1, 1, n), values).unwrap();
            let got = range_and_percentiles(volume.view(), &qs).unwrap();
            let want = reference(&volume, &qs);
            prop_assert!(same(&got, &want), "{:?} vs {:?}", got, want);
        }

        #[test]
        fn thread_count_does_not_change_the_result(seed in 0u64..1000) {
            let volume = Array4::from_shape_fn((2, 9, 17, 13), |(c, i, j, k)| {
                let h = (seed as usize + c * 31 + i * 17 + j * 7 + k * 3) % 101;
                if h < 40 { 0.0 } else { h as f32 * 0.37 - 11.0 }
            });
            let qs = [0.5, 33.3, 99.5];
            let run = |threads| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
                    .install(|| range_and_percentiles(volume.view(), &qs).unwrap())
            };
            prop_assert_eq!(run(1), run(3));
        }
    }
}
