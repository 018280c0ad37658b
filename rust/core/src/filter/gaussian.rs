//! Separable Gaussian filtering with `scipy.ndimage.gaussian_filter`'s
//! semantics: kernel radius `int(truncate * sigma + 0.5)`, weights
//! `exp(-x^2 / (2 sigma^2))` normalised to sum 1, mode `'reflect'`
//! (`d c b a | a b c d | d c b a`, repeated for kernels longer than the
//! axis), axes filtered in the order I, J, K with each intermediate result
//! stored in the volume's own type (integers truncated towards zero, as
//! SciPy's C casts do), and axes with `sigma <= 1e-15` skipped.
//!
//! One task per output `(channel, i)` plane runs all three passes: the I pass
//! reads the input planes it needs, the J and K passes stay inside the plane,
//! so there is no intermediate volume.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{ensure, Error, Result};
use crate::volume::{check_not_empty, zeroed, Voxel};

/// A voxel type with the precision its filter sums run in: float32 for
/// float32 volumes, float64 for the others (SciPy sums in float64).
pub trait FilterVoxel: Voxel {
    /// Accumulator type.
    type Acc: Copy
        + Send
        + Sync
        + Default
        + std::ops::Add<Output = Self::Acc>
        + std::ops::Mul<Output = Self::Acc>;
    /// Converts a voxel to the accumulator type.
    fn load(self) -> Self::Acc;
    /// Converts an accumulated value back (integers truncate towards zero and saturate).
    fn store(value: Self::Acc) -> Self;
    /// Converts a kernel weight to the accumulator type.
    fn weight(w: f64) -> Self::Acc;
}

impl FilterVoxel for f32 {
    type Acc = f32;
    #[inline(always)]
    fn load(self) -> f32 {
        self
    }
    #[inline(always)]
    fn store(value: f32) -> f32 {
        value
    }
    #[inline(always)]
    fn weight(w: f64) -> f32 {
        w as f32
    }
}

macro_rules! impl_filter_f64 {
    ($($t:ty),*) => {$(
        impl FilterVoxel for $t {
            type Acc = f64;
            #[inline(always)]
            fn load(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn store(value: f64) -> $t {
                // `as` truncates towards zero and saturates (NaN -> 0).
                value as $t
            }
            #[inline(always)]
            fn weight(w: f64) -> f64 {
                w
            }
        }
    )*};
}

impl_filter_f64!(f64, u8, i16, i32, i64);

/// SciPy's Gaussian kernel: `2 r + 1` weights with `r = int(truncate * sigma + 0.5)`.
pub fn gaussian_kernel(sigma: f64, truncate: f64) -> Result<Vec<f64>> {
    ensure(sigma.is_finite() && sigma > 0.0, || {
        format!("sigma must be positive and finite, got {sigma}")
    })?;
    ensure(truncate.is_finite() && truncate >= 0.0, || {
        format!("truncate must be non-negative and finite, got {truncate}")
    })?;
    let radius_f = truncate * sigma + 0.5;
    ensure(radius_f < 1e6, || {
        format!("sigma {sigma} with truncate {truncate} gives a kernel radius above 1e6")
    })?;
    let radius = radius_f as i64;
    let factor = -0.5 / (sigma * sigma);
    let weights: Vec<f64> = (-radius..=radius)
        .map(|x| (factor * (x * x) as f64).exp())
        .collect();
    let sum = pairwise_sum(&weights);
    Ok(weights.into_iter().map(|w| w / sum).collect())
}

/// NumPy's pairwise summation (`np.sum` of a contiguous float64 array), so
/// normalised kernels match SciPy's to the last bit.
fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for (acc, &v) in r.iter_mut().zip(&a[i..i + 8]) {
                *acc += v;
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

/// Index of `t` in an axis of length `n` under SciPy's `'reflect'` extension.
#[inline]
fn reflect(t: i64, n: usize) -> usize {
    let n = n as i64;
    let m = t.rem_euclid(2 * n);
    (if m >= n { 2 * n - 1 - m } else { m }) as usize
}

/// A validated symmetric kernel: centre weight and the weights of taps
/// `radius, radius - 1, ..., 1` (SciPy's summation order).
struct Taps<A> {
    centre: A,
    /// `(offset, weight)` from the outermost tap inwards.
    sides: Vec<(i64, A)>,
}

fn taps<T: FilterVoxel>(kernel: &[f64]) -> Result<Taps<T::Acc>> {
    ensure(kernel.len() % 2 == 1, || {
        format!("kernels must have odd length, got {}", kernel.len())
    })?;
    ensure(kernel.iter().all(|w| w.is_finite()), || {
        "kernel weights must be finite".to_string()
    })?;
    let radius = kernel.len() / 2;
    for t in 1..=radius {
        ensure(
            (kernel[radius + t] - kernel[radius - t]).abs() <= f64::EPSILON,
            || "kernels must be symmetric".to_string(),
        )?;
    }
    Ok(Taps {
        centre: T::weight(kernel[radius]),
        sides: (1..=radius)
            .rev()
            .map(|t| (t as i64, T::weight(kernel[radius - t])))
            .collect(),
    })
}

/// Correlates a `(C, I, J, K)` volume with one symmetric odd-length kernel per
/// spatial axis (`None` skips the axis), SciPy-style (see the module docs).
/// Returns a volume of the input's type.
pub fn correlate_separable<T: FilterVoxel>(
    volume: ArrayView4<'_, T>,
    kernels: [Option<&[f64]>; 3],
) -> Result<Array4<T>> {
    check_not_empty(&volume, "volume")?;
    let taps: Vec<Option<Taps<T::Acc>>> = kernels
        .iter()
        .map(|k| k.map(taps::<T>).transpose())
        .collect::<Result<_>>()?;
    let (c, ni, nj, nk) = volume.dim();
    let input = volume.as_standard_layout();
    let Some(data) = input.as_slice() else {
        return Err(Error::Shape("input could not be made contiguous".into()));
    };
    let plane_len = nj * nk;
    let mut output = zeroed((c, ni, nj, nk));
    let Some(out) = output.as_slice_mut() else {
        return Err(Error::Shape("output is not contiguous".into()));
    };
    let max_radius = taps
        .iter()
        .flatten()
        .map(|t| t.sides.first().map_or(0, |s| s.0 as usize))
        .max()
        .unwrap_or(0);
    out.par_chunks_mut(plane_len).enumerate().for_each_init(
        || {
            (
                vec![T::Acc::default(); plane_len],
                vec![T::default(); plane_len],
                vec![T::Acc::default(); nk + 2 * max_radius],
            )
        },
        |(acc, plane, padded), (index, plane_out)| {
            let (channel, i) = (index / ni, index % ni);
            let channel_start = channel * ni * plane_len;
            let plane_at = |t: usize| &data[channel_start + t * plane_len..][..plane_len];
            // Pass along I, into `plane_out`.
            match &taps[0] {
                Some(t) => {
                    let centre = plane_at(i);
                    acc.iter_mut()
                        .zip(centre)
                        .for_each(|(a, &v)| *a = v.load() * t.centre);
                    for &(offset, w) in &t.sides {
                        let below = plane_at(reflect(i as i64 - offset, ni));
                        let above = plane_at(reflect(i as i64 + offset, ni));
                        for ((a, &b), &u) in acc.iter_mut().zip(below).zip(above) {
                            *a = *a + (b.load() + u.load()) * w;
                        }
                    }
                    plane_out
                        .iter_mut()
                        .zip(acc.iter())
                        .for_each(|(o, &a)| *o = T::store(a));
                }
                None => plane_out.copy_from_slice(plane_at(i)),
            }
            // Pass along J, through `plane`.
            if let Some(t) = &taps[1] {
                plane.copy_from_slice(plane_out);
                for j in 0..nj {
                    let row_acc = &mut acc[j * nk..(j + 1) * nk];
                    row_acc
                        .iter_mut()
                        .zip(&plane[j * nk..(j + 1) * nk])
                        .for_each(|(a, &v)| *a = v.load() * t.centre);
                    for &(offset, w) in &t.sides {
                        let jb = reflect(j as i64 - offset, nj);
                        let ja = reflect(j as i64 + offset, nj);
                        let below = &plane[jb * nk..(jb + 1) * nk];
                        let above = &plane[ja * nk..(ja + 1) * nk];
                        for ((a, &b), &u) in row_acc.iter_mut().zip(below).zip(above) {
                            *a = *a + (b.load() + u.load()) * w;
                        }
                    }
                }
                plane_out
                    .iter_mut()
                    .zip(acc.iter())
                    .for_each(|(o, &a)| *o = T::store(a));
            }
            // Pass along K, row by row through a reflect-padded copy.
            if let Some(t) = &taps[2] {
                let radius = t.sides.first().map_or(0, |s| s.0 as usize);
                let padded = &mut padded[..nk + 2 * radius];
                let row_acc = &mut acc[..nk];
                for row in plane_out.chunks_mut(nk) {
                    // Interior by copy, only the 2 * radius edge values through `reflect`.
                    for (value, &v) in padded[radius..radius + nk].iter_mut().zip(row.iter()) {
                        *value = v.load();
                    }
                    for p in (0..radius).chain(radius + nk..nk + 2 * radius) {
                        padded[p] = row[reflect(p as i64 - radius as i64, nk)].load();
                    }
                    // Tap by tap over the whole row (vectorisable), summing each output
                    // in the same order as a per-output loop: centre, then sides.
                    row_acc
                        .iter_mut()
                        .zip(&padded[radius..radius + nk])
                        .for_each(|(a, &v)| *a = v * t.centre);
                    for &(offset, w) in &t.sides {
                        let offset = offset as usize;
                        let below = &padded[radius - offset..radius - offset + nk];
                        let above = &padded[radius + offset..radius + offset + nk];
                        for ((a, &b), &u) in row_acc.iter_mut().zip(below).zip(above) {
                            *a = *a + (b + u) * w;
                        }
                    }
                    row.iter_mut()
                        .zip(row_acc.iter())
                        .for_each(|(o, &a)| *o = T::store(a));
                }
            }
        },
    );
    Ok(output)
}

/// `scipy.ndimage.gaussian_filter(volume[c], sigmas, truncate=truncate)` for
/// every channel `c` of a `(C, I, J, K)` volume, sigmas in voxels per spatial axis.
pub fn gaussian_filter<T: FilterVoxel>(
    volume: ArrayView4<'_, T>,
    sigmas: [f64; 3],
    truncate: f64,
) -> Result<Array4<T>> {
    ensure(sigmas.iter().all(|s| s.is_finite() && *s >= 0.0), || {
        format!("sigmas must be finite and non-negative, got {sigmas:?}")
    })?;
    let kernels: Vec<Option<Vec<f64>>> = sigmas
        .iter()
        .map(|&s| {
            if s > 1e-15 {
                gaussian_kernel(s, truncate).map(Some)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<_>>()?;
    correlate_separable(
        volume,
        [
            kernels[0].as_deref(),
            kernels[1].as_deref(),
            kernels[2].as_deref(),
        ],
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn kernel_radius_and_normalisation_match_scipy() {
        let k = gaussian_kernel(1.0, 4.0).unwrap();
        assert_eq!(k.len(), 9);
        assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        assert_eq!(gaussian_kernel(0.1, 4.0).unwrap().len(), 1);
        assert_eq!(gaussian_kernel(0.7, 4.0).unwrap().len(), 7);
        assert!(gaussian_kernel(-1.0, 4.0).is_err());
    }

    #[test]
    fn reflect_extension_repeats() {
        // scipy 'reflect' on [a b c]: ... c b a | a b c | c b a | a b c ...
        let idx: Vec<usize> = (-7..10).map(|t| reflect(t, 3)).collect();
        assert_eq!(idx, vec![0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0, 0, 1, 2, 2]);
        assert_eq!(reflect(-3, 1), 0);
    }

    #[test]
    fn constant_image_keeps_its_value_and_1d_matches_direct_sum() {
        let volume = Array4::<f32>::from_elem((1, 4, 5, 6), 3.0);
        let out = gaussian_filter(volume.view(), [1.0, 2.0, 0.5], 4.0).unwrap();
        assert!(out.iter().all(|&v| (v - 3.0).abs() < 1e-5));
        // Along K only, compare with a direct reflect-extended correlation.
        let volume = Array::from_shape_fn((1, 1, 1, 5), |(_, _, _, k)| (k * k) as f64);
        let out = gaussian_filter(volume.view(), [0.0, 0.0, 1.0], 4.0).unwrap();
        let w = gaussian_kernel(1.0, 4.0).unwrap();
        for k in 0..5 {
            let expected: f64 = (0..9)
                .map(|t| w[t] * volume[[0, 0, 0, reflect(k as i64 + t as i64 - 4, 5)]])
                .sum();
            assert!((out[[0, 0, 0, k]] - expected).abs() < 1e-12);
        }
    }

    #[test]
    fn bad_kernels_are_errors() {
        let volume = Array4::<f32>::zeros((1, 2, 2, 2));
        assert!(correlate_separable(volume.view(), [Some(&[0.5, 0.5]), None, None]).is_err());
        assert!(correlate_separable(volume.view(), [Some(&[0.2, 0.5, 0.3]), None, None]).is_err());
        assert!(gaussian_filter(volume.view(), [f64::NAN, 1.0, 1.0], 4.0).is_err());
    }
}
