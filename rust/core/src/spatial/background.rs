//! Where the input rows leave their background, so that the trilinear warp
//! can write the background of an output step without gathering its taps.
//!
//! Medical volumes are often mostly one exact value: the zeros around a
//! skull-stripped brain (78% of the MNI152 T1), the padding outside a CT
//! scanner's field of view. Every tap of such an output point reads that
//! value, and trilinear interpolation of equal values returns it, yet the
//! gather still pays a cache access per tap. Along a K row, the background
//! of a head is a prefix and a suffix, so per input row the first and last
//! voxel that differ from it say where the taps may avoid it.

use rayon::prelude::*;

/// How many consecutive input rows along I (and along J) one neighbourhood
/// of [`RowExtents`] spans: the taps of eight consecutive output points
/// whose lower neighbours differ by at most `ROWS_SPANNED - 2` along I and J.
pub(super) const ROWS_SPANNED: usize = 4;

/// Voxels compared at once when scanning a row for its first non-background voxel.
const SCAN_CHUNK: usize = 16;

/// Per input row neighbourhood, the K range that holds anything but the
/// background value of one `f32` channel.
pub(super) struct RowExtents {
    /// What trilinear interpolation of background taps returns (the
    /// background plus `+0.0`, so a `-0.0` background gives `+0.0` as the
    /// arithmetic does).
    pub(super) value: f32,
    /// `J` of the input.
    nj: usize,
    /// For the rows `i..i + ROWS_SPANNED`, `j..j + ROWS_SPANNED` (those that
    /// exist), the first K index whose voxel is not the background
    /// (bitwise), or `i32::MAX` when there is none.
    first: Vec<i32>,
    /// As `first`, the last such K index, or `-1` when there is none.
    last: Vec<i32>,
}

impl RowExtents {
    /// Scans one `(I, J, K)` channel (C order) whose background is the value
    /// of its first voxel. Returns `None` when that value is not finite
    /// (interpolating infinities does not return them) or the channel is
    /// empty.
    pub(super) fn of(channel: &[f32], dims: [usize; 3]) -> Option<Self> {
        let [ni, nj, nk] = dims;
        let background = *channel.first()?;
        if !background.is_finite() || channel.len() != ni * nj * nk {
            return None;
        }
        let bits = background.to_bits();
        let span_of = span_finder();
        let mut first = vec![i32::MAX; ni * nj];
        let mut last = vec![-1; ni * nj];
        first
            .par_chunks_mut(nj)
            .zip(last.par_chunks_mut(nj))
            .zip(channel.par_chunks(nj * nk))
            .for_each(|((first, last), plane)| {
                for ((first, last), row) in first.iter_mut().zip(last).zip(plane.chunks(nk)) {
                    if let Some((f, l)) = span_of(row, bits) {
                        (*first, *last) = (f as i32, l as i32);
                    }
                }
            });
        spread(&mut first, &mut last, ni, nj);
        Some(Self {
            value: background + 0.0,
            nj,
            first,
            last,
        })
    }

    /// Whether every tap with lower neighbour in `i`, `j`, `k` (inclusive
    /// `[low, high]` ranges) and its upper neighbour (`+ 1` on each axis
    /// where `upper` says the axis has one) reads the background.
    #[inline(always)]
    pub(super) fn covers(&self, i: [i32; 2], j: [i32; 2], k: [i32; 2], upper: [i32; 3]) -> bool {
        let reach = (ROWS_SPANNED - 1) as i32;
        if i[1] + upper[0] - i[0] > reach || j[1] + upper[1] - j[0] > reach {
            return false;
        }
        let row = i[0] as usize * self.nj + j[0] as usize;
        match (self.first.get(row), self.last.get(row)) {
            (Some(&first), Some(&last)) => k[1] + upper[2] < first || k[0] > last,
            _ => false,
        }
    }
}

/// Finds the first and last index of a row whose bits differ from a background's.
type SpanFinder = fn(&[f32], u32) -> Option<(usize, usize)>;

/// The fastest [`SpanFinder`] this CPU runs.
fn span_finder() -> SpanFinder {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the one requirement of the function.
        return |row, bits| unsafe { foreground_span_avx2(row, bits) };
    }
    foreground_span
}

/// First and last index of `row` whose bits differ from `bits`, if any.
fn foreground_span(row: &[f32], bits: u32) -> Option<(usize, usize)> {
    let differs = |chunk: &[f32]| chunk.iter().fold(0, |any, v| any | (v.to_bits() ^ bits)) != 0;
    let is_foreground = |v: &f32| v.to_bits() != bits;
    let head = row.chunks(SCAN_CHUNK).position(differs)? * SCAN_CHUNK;
    let first = head + row[head..].iter().position(is_foreground)?;
    // The scan from the end stops at `first` at the latest.
    let tail = row.len() - row[first..].rchunks(SCAN_CHUNK).position(differs)? * SCAN_CHUNK;
    let last = row[..tail].iter().rposition(is_foreground)?;
    Some((first, last))
}

/// [`foreground_span`] eight voxels at a time: one comparison and one mask
/// per eight voxels, where the portable scan folds and branches per chunk
/// (which made finding the extents of a 1 mm brain cost twice its minimum).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn foreground_span_avx2(row: &[f32], bits: u32) -> Option<(usize, usize)> {
    use std::arch::x86_64::*;

    const LANES: usize = 8;
    let n = row.len();
    let background = _mm256_set1_epi32(bits as i32);
    // Bit `b` set where voxel `at + b` differs from the background.
    let differing = |at: usize| {
        // SAFETY: callers pass `at + LANES <= n`, so the 32 bytes lie in `row`.
        let lanes = unsafe { _mm256_loadu_si256(row.as_ptr().add(at).cast::<__m256i>()) };
        let same = _mm256_castsi256_ps(_mm256_cmpeq_epi32(lanes, background));
        !(_mm256_movemask_ps(same) as u32) & 0xFF
    };
    let is_foreground = |v: &f32| v.to_bits() != bits;
    let mut at = 0;
    let mut first = None;
    while at + LANES <= n {
        let mask = differing(at);
        if mask != 0 {
            first = Some(at + mask.trailing_zeros() as usize);
            break;
        }
        at += LANES;
    }
    let first = match first {
        Some(first) => first,
        None => at + row[at..].iter().position(is_foreground)?,
    };
    // From the end: whole vectors while they lie after `first`, then the rest.
    let mut end = n;
    while end >= first + LANES {
        let mask = differing(end - LANES);
        if mask != 0 {
            return Some((first, end - LANES + (31 - mask.leading_zeros()) as usize));
        }
        end -= LANES;
    }
    let last = first + row[first..end].iter().rposition(is_foreground)?;
    Some((first, last))
}

/// Turns per-row extents into extents over the `ROWS_SPANNED x ROWS_SPANNED`
/// rows that start at each row (forward windows, clipped at the volume's end).
///
/// In place: the window of a row reads only rows at or after it, which are
/// not yet overwritten when the rows are visited in order.
fn spread(first: &mut [i32], last: &mut [i32], ni: usize, nj: usize) {
    let reach = ROWS_SPANNED - 1;
    // Along J, within each plane of rows.
    for (first, last) in first.chunks_mut(nj).zip(last.chunks_mut(nj)) {
        for j in 0..nj {
            let end = (j + reach).min(nj - 1);
            for d in j + 1..=end {
                first[j] = first[j].min(first[d]);
                last[j] = last[j].max(last[d]);
            }
        }
    }
    // Along I: whole planes of rows at once.
    for i in 0..ni {
        let end = (i + reach).min(ni - 1);
        for d in i + 1..=end {
            let (head, tail) = first.split_at_mut(d * nj);
            let (row, later) = (&mut head[i * nj..(i + 1) * nj], &tail[..nj]);
            row.iter_mut()
                .zip(later)
                .for_each(|(a, &b)| *a = (*a).min(b));
            let (head, tail) = last.split_at_mut(d * nj);
            let (row, later) = (&mut head[i * nj..(i + 1) * nj], &tail[..nj]);
            row.iter_mut()
                .zip(later)
                .for_each(|(a, &b)| *a = (*a).max(b));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A `(6, 5, 40)` background of `background` with foreground voxels at `points`.
    fn volume(background: f32, points: &[[usize; 3]]) -> (Vec<f32>, [usize; 3]) {
        let dims = [6, 5, 40];
        let mut data = vec![background; dims.iter().product()];
        for &[i, j, k] in points {
            data[(i * dims[1] + j) * dims[2] + k] = 7.0;
        }
        (data, dims)
    }

    /// Whether every voxel of the box `[low, high]` (inclusive) is the background, by brute force.
    fn box_is_background(
        data: &[f32],
        dims: [usize; 3],
        low: [usize; 3],
        high: [usize; 3],
    ) -> bool {
        let background = data[0].to_bits();
        (low[0]..=high[0].min(dims[0] - 1)).all(|i| {
            (low[1]..=high[1].min(dims[1] - 1)).all(|j| {
                (low[2]..=high[2].min(dims[2] - 1))
                    .all(|k| data[(i * dims[1] + j) * dims[2] + k].to_bits() == background)
            })
        })
    }

    #[test]
    fn spans_are_found_across_scan_chunks() {
        let bits = 0f32.to_bits();
        let mut row = vec![0.0f32; 40];
        assert_eq!(foreground_span(&row, bits), None);
        row[17] = 1.0;
        assert_eq!(foreground_span(&row, bits), Some((17, 17)));
        row[3] = -0.0;
        row[39] = f32::NAN;
        assert_eq!(
            foreground_span(&row, bits),
            Some((3, 39)),
            "-0.0 and NaN are not +0.0"
        );
    }

    #[test]
    fn vector_spans_equal_the_portable_scan() {
        let span_of = span_finder();
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let specials = [1.0, -0.0, f32::NAN, f32::INFINITY, 2.5e-39];
        for background in [0.0f32, -1024.0] {
            for len in 0..70 {
                for _ in 0..40 {
                    let mut row = vec![background; len];
                    for _ in 0..next() % 4 {
                        if len > 0 {
                            row[next() % len] = specials[next() % specials.len()];
                        }
                    }
                    let bits = background.to_bits();
                    assert_eq!(span_of(&row, bits), foreground_span(&row, bits), "{row:?}");
                }
            }
        }
    }

    #[test]
    fn spread_takes_the_extremes_of_each_forward_window() {
        let (ni, nj) = (7, 6);
        let firsts: Vec<i32> = (0..ni * nj).map(|n| ((n * 37) % 23) as i32).collect();
        let lasts: Vec<i32> = (0..ni * nj).map(|n| ((n * 53) % 29) as i32).collect();
        let (mut first, mut last) = (firsts.clone(), lasts.clone());
        spread(&mut first, &mut last, ni, nj);
        for i in 0..ni {
            for j in 0..nj {
                let window = || {
                    (i..(i + ROWS_SPANNED).min(ni))
                        .flat_map(move |a| (j..(j + ROWS_SPANNED).min(nj)).map(move |b| a * nj + b))
                };
                assert_eq!(
                    first[i * nj + j],
                    window().map(|r| firsts[r]).min().unwrap()
                );
                assert_eq!(last[i * nj + j], window().map(|r| lasts[r]).max().unwrap());
            }
        }
    }

    #[test]
    fn covers_agrees_with_brute_force_on_every_box() {
        let points = [[1, 1, 5], [4, 3, 30], [5, 4, 12], [2, 0, 21]];
        let (data, dims) = volume(-3.5, &points);
        let extents = RowExtents::of(&data, dims).unwrap();
        assert_eq!(extents.value, -3.5);
        let upper = [1, 1, 1];
        let mut skipped = 0;
        for i0 in 0..dims[0] - 1 {
            for j0 in 0..dims[1] - 1 {
                for k0 in 0..dims[2] - 1 {
                    for (di, dj, dk) in [(0, 0, 7), (1, 1, 7), (2, 2, 3), (0, 1, 0)] {
                        let (i1, j1, k1) = (i0 + di, j0 + dj, (k0 + dk).min(dims[2] - 2));
                        let covered = extents.covers(
                            [i0 as i32, i1 as i32],
                            [j0 as i32, j1 as i32],
                            [k0 as i32, k1 as i32],
                            upper,
                        );
                        let truth =
                            box_is_background(&data, dims, [i0, j0, k0], [i1 + 1, j1 + 1, k1 + 1]);
                        // Never a false claim; spans within the neighbourhood are exact
                        // when the box lies wholly before or after the foreground.
                        assert!(!covered || truth, "box at {i0},{j0},{k0} +{di},{dj},{dk}");
                        skipped += usize::from(covered);
                    }
                }
            }
        }
        assert!(
            skipped > 1000,
            "most background boxes are recognised, got {skipped}"
        );
    }

    #[test]
    fn wide_spans_and_flat_axes() {
        let (data, dims) = volume(0.0, &[]);
        let extents = RowExtents::of(&data, dims).unwrap();
        assert!(extents.covers([0, 2], [0, 0], [0, 30], [1, 1, 1]));
        assert!(
            !extents.covers([0, 3], [0, 0], [0, 30], [1, 1, 1]),
            "more rows than a neighbourhood"
        );
        assert!(
            extents.covers([0, 3], [0, 0], [0, 30], [0, 1, 1]),
            "a flat I axis has no upper row"
        );
    }

    #[test]
    fn negative_zero_background_interpolates_to_positive_zero() {
        let (data, dims) = volume(-0.0, &[[0, 0, 39]]);
        let extents = RowExtents::of(&data, dims).unwrap();
        assert_eq!(extents.value.to_bits(), 0f32.to_bits());
    }

    #[test]
    fn non_finite_backgrounds_are_not_skipped() {
        for background in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let (data, dims) = volume(background, &[]);
            assert!(RowExtents::of(&data, dims).is_none());
        }
        assert!(RowExtents::of(&[], [0, 0, 0]).is_none());
    }
}
