//! The voxels of a spatial grid that a set of boxes covers, as runs along K.
//!
//! A patch pipeline crops a few boxes out of each augmented volume: ten
//! random 96^3 patches of the MNI152 grid cover about half of its voxels.
//! Kernels that compute voxels independently of one another (the row warp,
//! the seeded noise) take [`Regions`] to compute only those voxels. Each
//! `(i, j)` row holds the union of the boxes' K ranges that reach it, merged
//! into disjoint runs in increasing order, so no voxel is computed twice.

use crate::error::{Error, Result};

/// Disjoint, increasing runs `[k0, k1)` of every `(i, j)` row of a grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regions {
    shape: [usize; 3],
    /// Runs of row `r = i * J + j` are `runs[starts[r]..starts[r + 1]]`.
    starts: Vec<usize>,
    runs: Vec<[usize; 2]>,
}

impl Regions {
    /// The voxels of a grid of `shape` inside at least one of `boxes`, each box
    /// given as its first corner and the corner past its end:
    /// `[i0, j0, k0, i1, j1, k1]`.
    ///
    /// # Errors
    /// A box that is empty or reaches outside the grid.
    pub fn from_boxes(shape: [usize; 3], boxes: &[[usize; 6]]) -> Result<Self> {
        for b in boxes {
            let inside = (0..3).all(|d| b[d] < b[d + 3] && b[d + 3] <= shape[d]);
            if !inside {
                return Err(Error::Shape(format!(
                    "box from {:?} to {:?} is empty or outside the grid of shape {shape:?}",
                    &b[..3],
                    &b[3..]
                )));
            }
        }
        let [ni, nj, _] = shape;
        let mut starts = Vec::with_capacity(ni * nj + 1);
        let mut runs: Vec<[usize; 2]> = Vec::new();
        let mut row: Vec<[usize; 2]> = Vec::with_capacity(boxes.len());
        for i in 0..ni {
            // The boxes that reach plane i, once per plane rather than per row.
            let plane: Vec<&[usize; 6]> = boxes.iter().filter(|b| b[0] <= i && i < b[3]).collect();
            for j in 0..nj {
                starts.push(runs.len());
                row.clear();
                row.extend(
                    plane
                        .iter()
                        .filter(|b| b[1] <= j && j < b[4])
                        .map(|b| [b[2], b[5]]),
                );
                row.sort_unstable();
                let row_start = runs.len();
                for &[k0, k1] in &row {
                    // Overlapping or touching the run before (of this row): extend it.
                    let merged = match runs[row_start..].last_mut() {
                        Some(last) if k0 <= last[1] => {
                            last[1] = last[1].max(k1);
                            true
                        }
                        _ => false,
                    };
                    if !merged {
                        runs.push([k0, k1]);
                    }
                }
            }
        }
        starts.push(runs.len());
        Ok(Self {
            shape,
            starts,
            runs,
        })
    }

    /// Every voxel of a grid of `shape` (one run per row).
    pub fn whole(shape: [usize; 3]) -> Self {
        let [ni, nj, nk] = shape;
        let rows = ni * nj;
        let runs = if nk == 0 {
            Vec::new()
        } else {
            vec![[0, nk]; rows]
        };
        let starts = if nk == 0 {
            vec![0; rows + 1]
        } else {
            (0..=rows).collect()
        };
        Self {
            shape,
            starts,
            runs,
        }
    }

    /// Spatial shape `(I, J, K)` of the grid.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// The runs `[k0, k1)` of row `(i, j)`, in increasing order.
    #[inline]
    pub fn row(&self, i: usize, j: usize) -> &[[usize; 2]] {
        let r = i * self.shape[1] + j;
        &self.runs[self.starts[r]..self.starts[r + 1]]
    }

    /// Whether no run lies in plane `i`.
    pub fn plane_is_empty(&self, i: usize) -> bool {
        let nj = self.shape[1];
        self.starts[i * nj] == self.starts[(i + 1) * nj]
    }

    /// Number of voxels covered.
    pub fn len(&self) -> usize {
        self.runs.iter().map(|[k0, k1]| k1 - k0).sum()
    }

    /// Whether no voxel is covered.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Whether voxel `(i, j, k)` is covered.
    pub fn contains(&self, i: usize, j: usize, k: usize) -> bool {
        self.row(i, j).iter().any(|&[k0, k1]| k0 <= k && k < k1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(shape: [usize; 3], boxes: &[[usize; 6]], i: usize, j: usize, k: usize) -> bool {
        let _ = shape;
        boxes.iter().any(|b| {
            (b[0]..b[3]).contains(&i) && (b[1]..b[4]).contains(&j) && (b[2]..b[5]).contains(&k)
        })
    }

    #[test]
    fn runs_are_the_union_of_the_boxes() {
        let shape = [7, 6, 20];
        let boxes = [
            [0, 0, 0, 3, 4, 5],
            [2, 1, 3, 5, 6, 9],  // overlaps the first in K
            [1, 2, 9, 4, 5, 12], // touches the second: merged
            [4, 0, 15, 7, 3, 20],
            [6, 5, 19, 7, 6, 20], // the last voxel
        ];
        let regions = Regions::from_boxes(shape, &boxes).unwrap();
        let mut count = 0;
        for i in 0..7 {
            for j in 0..6 {
                let runs = regions.row(i, j);
                // Disjoint, increasing, not touching (merged).
                for pair in runs.windows(2) {
                    assert!(pair[0][1] < pair[1][0], "row {i} {j}: {runs:?}");
                }
                for k in 0..20 {
                    let expected = brute_force(shape, &boxes, i, j, k);
                    assert_eq!(regions.contains(i, j, k), expected, "{i} {j} {k}");
                    count += usize::from(expected);
                }
            }
            let expected_empty = (0..6).all(|j| regions.row(i, j).is_empty());
            assert_eq!(regions.plane_is_empty(i), expected_empty);
        }
        assert_eq!(regions.len(), count);
        assert_eq!(regions.row(2, 2), &[[0, 12]]);
    }

    #[test]
    fn whole_grid_and_no_boxes() {
        let whole = Regions::whole([2, 3, 4]);
        assert_eq!(whole.len(), 24);
        assert_eq!(whole.row(1, 2), &[[0, 4]]);
        assert_eq!(
            whole,
            Regions::from_boxes([2, 3, 4], &[[0, 0, 0, 2, 3, 4]]).unwrap()
        );
        let none = Regions::from_boxes([2, 3, 4], &[]).unwrap();
        assert!(none.is_empty() && none.plane_is_empty(0) && none.plane_is_empty(1));
    }

    #[test]
    fn boxes_outside_the_grid_or_empty_are_errors() {
        for b in [[0, 0, 0, 3, 1, 1], [0, 0, 2, 1, 1, 2], [1, 0, 0, 0, 1, 1]] {
            assert!(Regions::from_boxes([2, 2, 2], &[b]).is_err(), "{b:?}");
        }
    }
}
