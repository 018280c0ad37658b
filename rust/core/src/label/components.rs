//! Connected components of the nonzero voxels of a label map, with the
//! conventions of SimpleITK's `ConnectedComponent` and `RelabelComponent`.
//!
//! Every voxel that is not zero is foreground, whatever its value (as in
//! `sitk.ConnectedComponent`). Channels are labelled independently.
//!
//! The algorithm works on runs of foreground voxels along `K`: each `(c, i)`
//! plane is turned into runs in parallel, runs are joined with the overlapping
//! runs of the previous row and plane by a union-find forest (one slab of
//! planes per task, then the seams between slabs), and the forest always keeps
//! the smallest run id as a root. Run ids follow C order, so the root of a
//! component is its first run in C order and labels come out in the order of
//! each component's first voxel, like `scipy.ndimage.label`, whatever the
//! number of threads.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::{flat, standard, LabelVoxel};
use crate::error::{Error, Result};
use crate::volume::check_not_empty;

/// Which neighbours touch in 3D.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// 6 face neighbours (SimpleITK's default, `fully_connected=False`).
    Face,
    /// All 26 neighbours (`fully_connected=True`).
    Full,
}

impl Connectivity {
    /// Face connectivity for `false`, full for `true`, as SimpleITK's flag.
    pub fn from_fully_connected(fully_connected: bool) -> Self {
        if fully_connected {
            Connectivity::Full
        } else {
            Connectivity::Face
        }
    }
}

/// The scan order that breaks ties between components of equal size.
///
/// SimpleITK numbers components in its raster order (x fastest) and keeps
/// that order among equal sizes. On an array handed to SimpleITK directly
/// (`GetImageFromArray`) that is C order; on TorchIO's `(I, J, K)` tensors,
/// which TorchIO transposes so that x = I, it is Fortran order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    /// Last axis fastest.
    C,
    /// First spatial axis fastest.
    Fortran,
}

#[derive(Debug, Clone, Copy)]
struct Run {
    start: u32,
    end: u32,
}

/// Runs of one `(c, i)` plane; row `j` holds `runs[row_starts[j]..row_starts[j + 1]]`.
struct PlaneRuns {
    runs: Vec<Run>,
    row_starts: Vec<u32>,
}

impl PlaneRuns {
    fn row(&self, j: usize) -> &[Run] {
        &self.runs[self.row_starts[j] as usize..self.row_starts[j + 1] as usize]
    }
}

/// Union-find over a contiguous range of run ids starting at `base`.
struct Forest<'a> {
    parent: &'a mut [u32],
    base: u32,
}

impl Forest<'_> {
    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[(x - self.base) as usize];
            if p == x {
                return x;
            }
            let grand = self.parent[(p - self.base) as usize];
            self.parent[(x - self.base) as usize] = grand;
            x = grand;
        }
    }

    /// Joins two trees, keeping the smaller root so roots stay first in C order.
    #[inline]
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra < rb {
            self.parent[(rb - self.base) as usize] = ra;
        } else if rb < ra {
            self.parent[(ra - self.base) as usize] = rb;
        }
    }

    /// Unions every run of `row` (ids from `row_id`) with the runs of
    /// `other` (ids from `other_id`) that touch it; `reach` is 0 for runs that
    /// must share a `K` index and 1 when diagonal contact counts.
    fn join_rows(&mut self, row: &[Run], row_id: u32, other: &[Run], other_id: u32, reach: u32) {
        let (mut a, mut b) = (0, 0);
        while a < row.len() && b < other.len() {
            let (ra, rb) = (row[a], other[b]);
            if ra.start < rb.end + reach && rb.start < ra.end + reach {
                self.union(row_id + a as u32, other_id + b as u32);
            }
            if ra.end < rb.end {
                a += 1;
            } else {
                b += 1;
            }
        }
    }
}

fn plane_runs<T: LabelVoxel>(plane: &[T], nk: usize) -> Result<PlaneRuns> {
    let zero = T::from_f64(0.0);
    let mut runs = Vec::new();
    let mut row_starts = Vec::with_capacity(plane.len() / nk.max(1) + 1);
    for row in plane.chunks_exact(nk) {
        row_starts.push(runs.len() as u32);
        let mut k = 0;
        while k < nk {
            // Skip background, then take the run of foreground.
            while k < nk && row[k] == zero {
                k += 1;
            }
            if k == nk {
                break;
            }
            let start = k;
            while k < nk && row[k] != zero {
                if row[k].is_nan() {
                    return Err(Error::InvalidArgument(
                        "label maps must not contain NaN".into(),
                    ));
                }
                k += 1;
            }
            runs.push(Run {
                start: start as u32,
                end: k as u32,
            });
        }
    }
    row_starts.push(runs.len() as u32);
    Ok(PlaneRuns { runs, row_starts })
}

/// Joins the runs of plane `p` with those of its own previous rows and, when
/// `with_previous_plane`, of plane `p - 1`.
fn join_plane(
    forest: &mut Forest<'_>,
    planes: &[PlaneRuns],
    offsets: &[u32],
    p: usize,
    reach: u32,
    with_own_rows: bool,
    with_previous_plane: bool,
) {
    let plane = &planes[p];
    let nj = plane.row_starts.len() - 1;
    for j in 0..nj {
        let row = plane.row(j);
        if row.is_empty() {
            continue;
        }
        let row_id = offsets[p] + plane.row_starts[j];
        if with_own_rows && j > 0 {
            let other_id = offsets[p] + plane.row_starts[j - 1];
            forest.join_rows(row, row_id, plane.row(j - 1), other_id, reach);
        }
        if with_previous_plane {
            let previous = &planes[p - 1];
            let rows = if reach == 0 {
                j..j + 1
            } else {
                j.saturating_sub(1)..(j + 2).min(nj)
            };
            for jj in rows {
                let other_id = offsets[p - 1] + previous.row_starts[jj];
                forest.join_rows(row, row_id, previous.row(jj), other_id, reach);
            }
        }
    }
}

/// Components of every channel: the run forest flattened to roots.
struct Labelled {
    planes: Vec<PlaneRuns>,
    offsets: Vec<u32>,
    /// Root run id of every run.
    root: Vec<u32>,
    /// 1-based label (within its channel) of every root run; 0 for non-roots.
    label: Vec<u32>,
    /// Per channel: size in voxels of every component, indexed by label - 1.
    sizes: Vec<Vec<u64>>,
    /// Per channel: Fortran-order index of the first voxel of every component.
    fortran_first: Vec<Vec<u64>>,
}

fn label_runs<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    connectivity: Connectivity,
) -> Result<Labelled> {
    check_not_empty(&volume, "labels")?;
    let (channels, ni, nj, nk) = volume.dim();
    if nk > u32::MAX as usize - 1 {
        return Err(Error::Shape(format!(
            "last axis of {nk} voxels is too long"
        )));
    }
    let reach = u32::from(connectivity == Connectivity::Full);
    let num_planes = channels * ni;
    let standard = standard(&volume);
    let data = flat(&standard)?;
    let planes = data
        .par_chunks(nj * nk)
        .map(|plane| plane_runs(plane, nk))
        .collect::<Result<Vec<_>>>()?;
    let mut offsets = Vec::with_capacity(num_planes + 1);
    let mut total: u64 = 0;
    for plane in &planes {
        offsets.push(total as u32);
        total += plane.runs.len() as u64;
        if total >= u64::from(u32::MAX) {
            return Err(Error::InvalidArgument(
                "too many foreground runs to label (more than 2^32)".into(),
            ));
        }
    }
    offsets.push(total as u32);
    let mut parent: Vec<u32> = (0..total as u32).collect();

    // Slabs of whole planes; the result does not depend on their number.
    let num_slabs = (rayon::current_num_threads() * 4).clamp(1, num_planes);
    let bounds: Vec<usize> = (0..=num_slabs)
        .map(|s| s * num_planes / num_slabs)
        .collect();
    {
        let mut slabs = Vec::with_capacity(num_slabs);
        let mut rest: &mut [u32] = &mut parent;
        for s in 0..num_slabs {
            let (lo, hi) = (offsets[bounds[s]], offsets[bounds[s + 1]]);
            let (head, tail) = rest.split_at_mut((hi - lo) as usize);
            slabs.push((
                s,
                Forest {
                    parent: head,
                    base: lo,
                },
            ));
            rest = tail;
        }
        slabs.into_par_iter().for_each(|(s, mut forest)| {
            for p in bounds[s]..bounds[s + 1] {
                let previous_in_slab = p > bounds[s] && p % ni != 0;
                join_plane(
                    &mut forest,
                    &planes,
                    &offsets,
                    p,
                    reach,
                    true,
                    previous_in_slab,
                );
            }
        });
    }
    // Seams between slabs, in order.
    let mut forest = Forest {
        parent: &mut parent,
        base: 0,
    };
    for &p in &bounds[1..num_slabs] {
        if p % ni != 0 {
            join_plane(&mut forest, &planes, &offsets, p, reach, false, true);
        }
    }
    // parent[x] <= x always, so one pass in id order flattens every tree.
    for x in 0..parent.len() {
        let p = parent[x] as usize;
        parent[x] = parent[p];
    }
    let root = parent;

    let mut label = vec![0u32; root.len()];
    let mut sizes = Vec::with_capacity(channels);
    let mut fortran_first = Vec::with_capacity(channels);
    for c in 0..channels {
        let mut channel_sizes: Vec<u64> = Vec::new();
        let mut channel_first: Vec<u64> = Vec::new();
        for i in 0..ni {
            let p = c * ni + i;
            let plane = &planes[p];
            for j in 0..nj {
                let first_id = offsets[p] + plane.row_starts[j];
                for (n, run) in plane.row(j).iter().enumerate() {
                    let id = (first_id + n as u32) as usize;
                    let r = root[id] as usize;
                    if r == id {
                        channel_sizes.push(0);
                        channel_first.push(u64::MAX);
                        label[id] = channel_sizes.len() as u32;
                    }
                    let index = label[r] as usize - 1;
                    channel_sizes[index] += u64::from(run.end - run.start);
                    let key = (u64::from(run.start) * nj as u64 + j as u64) * ni as u64 + i as u64;
                    channel_first[index] = channel_first[index].min(key);
                }
            }
        }
        sizes.push(channel_sizes);
        fortran_first.push(channel_first);
    }
    Ok(Labelled {
        planes,
        offsets,
        root,
        label,
        sizes,
        fortran_first,
    })
}

impl Labelled {
    /// Writes `value(channel, label)` over every run into a zeroed output.
    fn paint<U, F>(&self, shape: (usize, usize, usize, usize), value: F) -> Result<Array4<U>>
    where
        U: Copy + Default + Send + Sync,
        F: Fn(usize, u32) -> U + Sync,
    {
        let (_, ni, nj, nk) = shape;
        // Zero pages from the allocator: only the runs are written.
        let mut output = Array4::<U>::from_elem(shape, U::default());
        let Some(out) = output.as_slice_mut() else {
            return Err(Error::Shape(
                "freshly allocated output is not contiguous".into(),
            ));
        };
        out.par_chunks_mut(nj * nk)
            .enumerate()
            .for_each(|(p, plane_out)| {
                let plane = &self.planes[p];
                for j in 0..nj {
                    let first_id = self.offsets[p] + plane.row_starts[j];
                    let row_out = &mut plane_out[j * nk..(j + 1) * nk];
                    for (n, run) in plane.row(j).iter().enumerate() {
                        let r = self.root[(first_id + n as u32) as usize] as usize;
                        let v = value(p / ni, self.label[r]);
                        row_out[run.start as usize..run.end as usize].fill(v);
                    }
                }
            });
        Ok(output)
    }

    /// Labels of each channel ranked by decreasing size, ties by `order`.
    fn size_ranks(&self, order: ScanOrder) -> Vec<Vec<u32>> {
        self.sizes
            .iter()
            .zip(&self.fortran_first)
            .map(|(sizes, first)| {
                let mut labels: Vec<usize> = (0..sizes.len()).collect();
                // Labels already follow C order, so a stable sort breaks ties for C.
                match order {
                    ScanOrder::C => labels.sort_by(|&a, &b| sizes[b].cmp(&sizes[a])),
                    ScanOrder::Fortran => labels
                        .sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(first[a].cmp(&first[b]))),
                }
                let mut rank = vec![0u32; sizes.len()];
                for (position, &l) in labels.iter().enumerate() {
                    rank[l] = position as u32 + 1;
                }
                rank
            })
            .collect()
    }
}

/// Connected components of the nonzero voxels of each channel.
///
/// Returns an int32 volume of the input's shape with 0 for background and
/// `1..=n` for the components, and `n` per channel. With `sort_by_size = None`
/// labels follow the first voxel of each component in C order
/// (`scipy.ndimage.label`); with `Some(order)` they are ranked by decreasing
/// size, ties broken by the first voxel in `order` (SimpleITK's
/// `RelabelComponent(ConnectedComponent(x))`).
///
/// Fails on NaN and empty volumes.
pub fn connected_components<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    connectivity: Connectivity,
    sort_by_size: Option<ScanOrder>,
) -> Result<(Array4<i32>, Vec<usize>)> {
    let labelled = label_runs(volume, connectivity)?;
    let counts: Vec<usize> = labelled.sizes.iter().map(Vec::len).collect();
    if counts.iter().any(|&n| n > i32::MAX as usize) {
        return Err(Error::InvalidArgument(
            "more components than int32 can count".into(),
        ));
    }
    let output = match sort_by_size {
        None => labelled.paint(volume.dim(), |_, label| label as i32)?,
        Some(order) => {
            let ranks = labelled.size_ranks(order);
            labelled.paint(volume.dim(), |c, label| ranks[c][label as usize - 1] as i32)?
        }
    };
    Ok((output, counts))
}

/// A uint8 mask of the largest connected component of each channel's nonzero
/// voxels (all zeros for a channel without foreground), ties broken by the
/// first voxel in `order`: TorchIO's `KeepLargestComponent`, i.e.
/// `RelabelComponent(ConnectedComponent(x)) == 1`.
pub fn keep_largest_component<T: LabelVoxel>(
    volume: ArrayView4<'_, T>,
    connectivity: Connectivity,
    order: ScanOrder,
) -> Result<Array4<u8>> {
    let labelled = label_runs(volume, connectivity)?;
    let ranks = labelled.size_ranks(order);
    labelled.paint(volume.dim(), |c, label| {
        u8::from(ranks[c][label as usize - 1] == 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    /// Deterministic pseudo-random binary volume with the given foreground fraction.
    fn blobs(shape: (usize, usize, usize, usize), fraction: f64, seed: u64) -> Array4<u8> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        Array::from_shape_simple_fn(shape, || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            u8::from((state >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - fraction)
        })
    }

    /// Plain flood fill, the reference partition.
    fn flood(volume: &Array4<u8>, full: bool) -> (Array4<i32>, usize) {
        let (nc, ni, nj, nk) = volume.dim();
        let mut out = Array4::<i32>::zeros(volume.dim());
        let mut offsets = Vec::new();
        for di in -1i64..=1 {
            for dj in -1i64..=1 {
                for dk in -1i64..=1 {
                    let d = di.abs() + dj.abs() + dk.abs();
                    if d > 0 && (full || d == 1) {
                        offsets.push((di, dj, dk));
                    }
                }
            }
        }
        let mut n = 0;
        for c in 0..nc {
            let mut count = 0;
            for i in 0..ni {
                for j in 0..nj {
                    for k in 0..nk {
                        if volume[[c, i, j, k]] == 0 || out[[c, i, j, k]] != 0 {
                            continue;
                        }
                        count += 1;
                        let mut stack = vec![(i, j, k)];
                        out[[c, i, j, k]] = count;
                        while let Some((a, b, d)) = stack.pop() {
                            for &(x, y, z) in &offsets {
                                let (a2, b2, d2) = (a as i64 + x, b as i64 + y, d as i64 + z);
                                if a2 < 0
                                    || b2 < 0
                                    || d2 < 0
                                    || a2 >= ni as i64
                                    || b2 >= nj as i64
                                    || d2 >= nk as i64
                                {
                                    continue;
                                }
                                let idx = [c, a2 as usize, b2 as usize, d2 as usize];
                                if volume[idx] != 0 && out[idx] == 0 {
                                    out[idx] = count;
                                    stack.push((idx[1], idx[2], idx[3]));
                                }
                            }
                        }
                    }
                }
            }
            n = n.max(count as usize);
        }
        (out, n)
    }

    #[test]
    fn labels_match_flood_fill_in_c_order_for_both_connectivities() {
        for (seed, fraction) in [(1, 0.3), (2, 0.5), (3, 0.7)] {
            let volume = blobs((2, 9, 8, 11), fraction, seed);
            for full in [false, true] {
                let (expected, _) = flood(&volume, full);
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let (labels, counts) = pool
                        .install(|| {
                            connected_components(
                                volume.view(),
                                Connectivity::from_fully_connected(full),
                                None,
                            )
                        })
                        .unwrap();
                    assert_eq!(
                        labels, expected,
                        "seed {seed} full {full} threads {threads}"
                    );
                    assert_eq!(counts.len(), 2);
                }
            }
        }
    }

    #[test]
    fn relabel_by_size_breaks_ties_by_scan_order() {
        let mut volume = Array4::<i16>::zeros((1, 2, 1, 3));
        volume[[0, 0, 0, 1]] = 3;
        volume[[0, 1, 0, 0]] = 1;
        volume[[0, 1, 0, 2]] = 2;
        volume[[0, 0, 0, 2]] = 9; // joins (1, 0, 2) by face: size 2
        let (c_sorted, counts) =
            connected_components(volume.view(), Connectivity::Face, Some(ScanOrder::C)).unwrap();
        assert_eq!(counts, vec![2]);
        // (0,0,1), (0,0,2) and (1,0,2) touch: the component of 3 comes first.
        assert_eq!(c_sorted[[0, 0, 0, 1]], 1);
        assert_eq!(c_sorted[[0, 1, 0, 0]], 2);
        let mut ties = Array4::<u8>::zeros((1, 2, 1, 3));
        ties[[0, 0, 0, 2]] = 1; // first in C order
        ties[[0, 1, 0, 0]] = 1; // first in Fortran order
        let (c_order, _) =
            connected_components(ties.view(), Connectivity::Face, Some(ScanOrder::C)).unwrap();
        assert_eq!((c_order[[0, 0, 0, 2]], c_order[[0, 1, 0, 0]]), (1, 2));
        let (f_order, _) =
            connected_components(ties.view(), Connectivity::Face, Some(ScanOrder::Fortran))
                .unwrap();
        assert_eq!((f_order[[0, 0, 0, 2]], f_order[[0, 1, 0, 0]]), (2, 1));
        let largest =
            keep_largest_component(ties.view(), Connectivity::Face, ScanOrder::Fortran).unwrap();
        assert_eq!(largest.sum(), 1);
        assert_eq!(largest[[0, 1, 0, 0]], 1);
    }

    #[test]
    fn keep_largest_keeps_the_biggest_blob_per_channel() {
        let volume = blobs((2, 12, 10, 9), 0.4, 7);
        let (labels, counts) =
            connected_components(volume.view(), Connectivity::Face, Some(ScanOrder::C)).unwrap();
        assert!(counts.iter().all(|&n| n > 1));
        let largest =
            keep_largest_component(volume.view(), Connectivity::Face, ScanOrder::C).unwrap();
        assert_eq!(largest, labels.mapv(|l| u8::from(l == 1)));
        let empty = Array4::<f32>::zeros((1, 3, 3, 3));
        assert_eq!(
            keep_largest_component(empty.view(), Connectivity::Full, ScanOrder::C)
                .unwrap()
                .sum(),
            0
        );
    }

    #[test]
    fn nan_and_empty_are_errors() {
        let mut volume = Array4::<f32>::zeros((1, 2, 2, 2));
        volume[[0, 1, 1, 1]] = f32::NAN;
        assert!(connected_components(volume.view(), Connectivity::Face, None).is_err());
        let empty = Array4::<u8>::zeros((1, 0, 2, 2));
        assert!(matches!(
            keep_largest_component(empty.view(), Connectivity::Face, ScanOrder::C),
            Err(Error::Empty(_))
        ));
    }
}
