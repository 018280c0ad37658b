//! Synthesising an intensity image from a label map (TorchIO's
//! `LabelsToImage`, after Billot et al.): every label gets a Gaussian
//! intensity `mean + std * noise`, weighted by partial-volume maps where the
//! label map is one, and voxels of unused labels can keep an existing image.
//!
//! Noise comes from an explicit `seed`: plane `i` of the output draws from its
//! own stream derived from `(seed, i)`, so the image is the same whatever the
//! number of threads.

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use super::{flat, flat_mut, standard, LabelVoxel, ValueTable};
use crate::error::{Error, Result};
use crate::volume::{check_not_empty, check_same_shape};

/// What a label contributes to the synthetic image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelRole {
    /// Gaussian intensities `mean + std * N(0, 1)` (weighted in partial-volume maps).
    Tissue {
        /// Mean intensity.
        mean: f32,
        /// Standard deviation of the intensity.
        std: f32,
    },
    /// Left at 0 and not replaced by the background image
    /// (TorchIO's `ignore_background` for label 0).
    Ignored,
    /// Not synthesised: filled from the background image if there is one, else 0.
    Background,
}

fn check_roles<'a>(roles: impl Iterator<Item = &'a LabelRole>) -> Result<()> {
    for role in roles {
        if let LabelRole::Tissue { mean, std } = role {
            if !mean.is_finite() || !std.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "label means and standard deviations must be finite, got mean {mean} and std {std}"
                )));
            }
        }
    }
    Ok(())
}

fn check_background(
    shape: (usize, usize, usize, usize),
    background: &Option<ArrayView4<'_, f32>>,
) -> Result<()> {
    if let Some(image) = background {
        let (_, ni, nj, nk) = shape;
        check_same_shape(
            image.shape(),
            &[1, ni, nj, nk],
            "background image and label map",
        )?;
    }
    Ok(())
}

/// Synthesises a `(1, I, J, K)` float32 image from a single-channel label map.
///
/// `roles` pairs label values with their [`LabelRole`]; values missing from it
/// (such as the -1 TorchIO writes where a discretised partial-volume map has no
/// label) are [`LabelRole::Background`]. `background`, of shape `(1, I, J, K)`,
/// fills background voxels; without it they are 0.
pub fn labels_to_image_discrete<T: LabelVoxel>(
    labels: ArrayView4<'_, T>,
    roles: &[(f64, LabelRole)],
    background: Option<ArrayView4<'_, f32>>,
    seed: u64,
) -> Result<Array4<f32>> {
    check_not_empty(&labels, "label map")?;
    let (channels, ni, nj, nk) = labels.dim();
    if channels != 1 {
        return Err(Error::Shape(format!(
            "a categorical label map must have one channel, got {channels}"
        )));
    }
    check_roles(roles.iter().map(|(_, role)| role))?;
    check_background(labels.dim(), &background)?;
    let table = ValueTable::new(roles)?;
    let plane_len = nj * nk;
    let standard_labels = standard(&labels);
    let input = flat(&standard_labels)?;
    let standard_background = background.as_ref().map(standard);
    let fill = standard_background.as_ref().map(flat).transpose()?;
    let mut output = Array4::<f32>::zeros((1, ni, nj, nk));
    flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .for_each(|(i, plane)| {
            let mut rng = normal::Stream::new(seed, i as u64);
            let range = i * plane_len..(i + 1) * plane_len;
            let source = &input[range.clone()];
            let fill = fill.map(|f| &f[range]);
            for (n, (o, &v)) in plane.iter_mut().zip(source).enumerate() {
                *o = match table.get_voxel(v).unwrap_or(LabelRole::Background) {
                    LabelRole::Tissue { mean, std } => {
                        if std == 0.0 {
                            mean
                        } else {
                            rng.next_normal() * std + mean
                        }
                    }
                    LabelRole::Ignored => 0.0,
                    LabelRole::Background => fill.map_or(0.0, |f| f[n]),
                };
            }
        });
    Ok(output)
}

/// Synthesises a `(1, I, J, K)` float32 image from a partial-volume label map
/// `(L, I, J, K)` whose channel `l` weighs label `l` (`roles[l]`).
///
/// Each voxel is the sum over tissue channels of `w * (mean + std * noise)`,
/// with independent noise per channel. With a `background` image, voxels whose
/// weights of non-background channels sum to less than 0.5 take its value.
pub fn labels_to_image_partial_volume<T: LabelVoxel>(
    maps: ArrayView4<'_, T>,
    roles: &[LabelRole],
    background: Option<ArrayView4<'_, f32>>,
    seed: u64,
) -> Result<Array4<f32>> {
    check_not_empty(&maps, "label map")?;
    let (channels, ni, nj, nk) = maps.dim();
    if roles.len() != channels {
        return Err(Error::InvalidArgument(format!(
            "{} label roles given for a partial-volume map of {channels} channels",
            roles.len()
        )));
    }
    check_roles(roles.iter())?;
    check_background(maps.dim(), &background)?;
    let plane_len = nj * nk;
    let channel_len = ni * plane_len;
    let standard_maps = standard(&maps);
    let input = flat(&standard_maps)?;
    let standard_background = background.as_ref().map(standard);
    let fill = standard_background.as_ref().map(flat).transpose()?;
    let mut output = Array4::<f32>::zeros((1, ni, nj, nk));
    let errors: Vec<Error> = flat_mut(&mut output)?
        .par_chunks_mut(plane_len)
        .enumerate()
        .map_init(
            || Vec::<f64>::with_capacity(plane_len),
            |weights, (i, plane)| {
                let mut rng = normal::Stream::new(seed, i as u64);
                weights.clear();
                weights.resize(plane_len, 0.0);
                for (channel, role) in roles.iter().enumerate() {
                    let start = channel * channel_len + i * plane_len;
                    let source = &input[start..start + plane_len];
                    if source.iter().any(|v| v.is_nan()) {
                        return Err(Error::InvalidArgument(
                            "partial-volume maps must not contain NaN".into(),
                        ));
                    }
                    match *role {
                        LabelRole::Tissue { mean, std } => {
                            for ((o, w_sum), &v) in
                                plane.iter_mut().zip(weights.iter_mut()).zip(source)
                            {
                                let w = v.to_f64();
                                *w_sum += w;
                                if w != 0.0 {
                                    let intensity = if std == 0.0 {
                                        mean
                                    } else {
                                        rng.next_normal() * std + mean
                                    };
                                    *o += intensity * w as f32;
                                }
                            }
                        }
                        LabelRole::Ignored => {
                            for (w_sum, &v) in weights.iter_mut().zip(source) {
                                *w_sum += v.to_f64();
                            }
                        }
                        LabelRole::Background => {}
                    }
                }
                if let Some(fill) = fill {
                    let fill = &fill[i * plane_len..(i + 1) * plane_len];
                    for ((o, &w_sum), &b) in plane.iter_mut().zip(weights.iter()).zip(fill) {
                        if w_sum < 0.5 {
                            *o = b;
                        }
                    }
                }
                Ok(())
            },
        )
        .filter_map(Result::err)
        .collect();
    match errors.into_iter().next() {
        Some(error) => Err(error),
        None => Ok(output),
    }
}

/// Seeded standard normal streams (xoshiro256++ bits, 256-layer ziggurat).
pub mod normal {
    use std::sync::OnceLock;

    const LAYERS: usize = 256;
    /// Start of the tail of the 256-layer ziggurat of `exp(-x^2 / 2)`.
    const TAIL_START: f64 = 3.654_152_885_361_009;
    /// Area of every layer under `exp(-x^2 / 2)` for that tail start.
    const LAYER_AREA: f64 = 4.928_673_233_99e-3;

    struct Tables {
        /// Layer widths: `x[0]` is the base strip's equivalent width, `x[LAYERS] = 0`.
        x: [f64; LAYERS + 1],
        /// `exp(-x^2 / 2)` at every `x`.
        f: [f64; LAYERS + 1],
    }

    fn density(x: f64) -> f64 {
        (-0.5 * x * x).exp()
    }

    fn tables() -> &'static Tables {
        static TABLES: OnceLock<Tables> = OnceLock::new();
        TABLES.get_or_init(|| {
            let mut x = [0.0; LAYERS + 1];
            x[0] = LAYER_AREA / density(TAIL_START);
            x[1] = TAIL_START;
            for i in 1..LAYERS - 1 {
                let y = (density(x[i]) + LAYER_AREA / x[i]).min(1.0);
                x[i + 1] = (-2.0 * y.ln()).sqrt();
            }
            x[LAYERS] = 0.0;
            let mut f = [0.0; LAYERS + 1];
            for (fi, &xi) in f.iter_mut().zip(x.iter()) {
                *fi = density(xi);
            }
            f[0] = 0.0;
            Tables { x, f }
        })
    }

    #[inline(always)]
    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One stream of standard normal variates.
    pub struct Stream {
        state: [u64; 4],
        tables: &'static Tables,
    }

    impl Stream {
        /// The stream number `index` of `seed`; distinct indices give independent streams.
        pub fn new(seed: u64, index: u64) -> Self {
            // SplitMix64 expansion of a key mixing seed and index.
            let mut key = mix(seed ^ mix(index.wrapping_add(0x632B_E59B_D9B4_E019)));
            let mut state = [0u64; 4];
            for word in &mut state {
                key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                *word = mix(key);
            }
            if state == [0; 4] {
                state[0] = 1;
            }
            Stream {
                state,
                tables: tables(),
            }
        }

        /// Next 64 random bits (xoshiro256++).
        #[inline(always)]
        pub fn next_u64(&mut self) -> u64 {
            let s = &mut self.state;
            let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
            let t = s[1] << 17;
            s[2] ^= s[0];
            s[3] ^= s[1];
            s[1] ^= s[2];
            s[0] ^= s[3];
            s[2] ^= t;
            s[3] = s[3].rotate_left(45);
            result
        }

        /// Uniform in `[0, 1)` with 53 random bits.
        #[inline(always)]
        pub fn next_uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
        }

        /// Next standard normal variate, as float32.
        #[inline(always)]
        pub fn next_normal(&mut self) -> f32 {
            self.next_normal_f64() as f32
        }

        /// Next standard normal variate.
        #[inline]
        pub fn next_normal_f64(&mut self) -> f64 {
            let t = self.tables;
            loop {
                let bits = self.next_u64();
                let layer = (bits & 0xFF) as usize;
                // Bit 8 becomes the sign bit: a random sign without a branch
                // that would be mispredicted half of the time.
                let sign_bit = (bits & 0x100) << 55;
                let sign = |v: f64| f64::from_bits(v.to_bits() | sign_bit);
                let x = (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * t.x[layer];
                if x < t.x[layer + 1] {
                    return sign(x);
                }
                if layer == 0 {
                    // Tail beyond TAIL_START (Marsaglia's method).
                    loop {
                        let a = -(1.0 - self.next_uniform()).ln() / TAIL_START;
                        let b = -(1.0 - self.next_uniform()).ln();
                        if 2.0 * b > a * a {
                            return sign(TAIL_START + a);
                        }
                    }
                }
                let y = t.f[layer] + self.next_uniform() * (t.f[layer + 1] - t.f[layer]);
                if y < density(x) {
                    return sign(x);
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn ziggurat_layers_close_at_the_top() {
            let t = tables();
            let last = LAYERS - 1;
            // The last rectangle must have the same area as the others.
            let area = t.x[last] * (1.0 - t.f[last]);
            assert!(
                (area - LAYER_AREA).abs() < 1e-9 * LAYER_AREA.max(1.0) + 1e-11,
                "{area}"
            );
            assert!(t.x.windows(2).skip(1).all(|w| w[0] > w[1]));
        }

        #[test]
        fn normal_moments_and_tail_frequencies() {
            let mut stream = Stream::new(42, 7);
            let n = 2_000_000;
            let (mut m1, mut m2, mut m3, mut m4) = (0.0, 0.0, 0.0, 0.0);
            let mut beyond_2 = 0usize;
            let mut beyond_tail = 0usize;
            for _ in 0..n {
                let v = stream.next_normal_f64();
                m1 += v;
                m2 += v * v;
                m3 += v * v * v;
                m4 += v * v * v * v;
                beyond_2 += usize::from(v.abs() > 2.0);
                beyond_tail += usize::from(v.abs() > TAIL_START);
            }
            let nf = n as f64;
            assert!((m1 / nf).abs() < 0.003);
            assert!((m2 / nf - 1.0).abs() < 0.005);
            assert!((m3 / nf).abs() < 0.01);
            assert!((m4 / nf - 3.0).abs() < 0.03);
            // P(|Z| > 2) = 0.0455003; P(|Z| > 3.6541) = 2.58e-4.
            assert!((beyond_2 as f64 / nf - 0.045_500_3).abs() < 0.0006);
            assert!((beyond_tail as f64 / nf - 2.58e-4).abs() < 0.00005);
        }

        #[test]
        fn streams_are_reproducible_and_distinct() {
            let a: Vec<u64> = (0..4)
                .map({
                    let mut s = Stream::new(1, 0);
                    move |_| s.next_u64()
                })
                .collect();
            let b: Vec<u64> = (0..4)
                .map({
                    let mut s = Stream::new(1, 0);
                    move |_| s.next_u64()
                })
                .collect();
            let c: Vec<u64> = (0..4)
                .map({
                    let mut s = Stream::new(1, 1);
                    move |_| s.next_u64()
                })
                .collect();
            let d: Vec<u64> = (0..4)
                .map({
                    let mut s = Stream::new(2, 0);
                    move |_| s.next_u64()
                })
                .collect();
            assert_eq!(a, b);
            assert_ne!(a, c);
            assert_ne!(a, d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn label_map() -> Array4<i32> {
        Array::from_shape_fn((1, 20, 16, 12), |(_, i, j, _)| ((i / 5 + j / 4) % 4) as i32)
    }

    #[test]
    fn discrete_labels_get_their_mean_and_std() {
        let labels = label_map();
        let roles = [
            (0.0, LabelRole::Ignored),
            (
                1.0,
                LabelRole::Tissue {
                    mean: 10.0,
                    std: 0.0,
                },
            ),
            (
                2.0,
                LabelRole::Tissue {
                    mean: -3.0,
                    std: 2.0,
                },
            ),
            (3.0, LabelRole::Background),
        ];
        let image = labels_to_image_discrete(labels.view(), &roles, None, 5).unwrap();
        let mut twos = Vec::new();
        for (&l, &v) in labels.iter().zip(image.iter()) {
            match l {
                0 | 3 => assert_eq!(v, 0.0),
                1 => assert_eq!(v, 10.0),
                _ => twos.push(v as f64),
            }
        }
        let mean = twos.iter().sum::<f64>() / twos.len() as f64;
        let var = twos.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / twos.len() as f64;
        assert!((mean + 3.0).abs() < 0.15, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.15, "{var}");
        let background = Array4::<f32>::from_elem((1, 20, 16, 12), 7.0);
        let filled =
            labels_to_image_discrete(labels.view(), &roles, Some(background.view()), 5).unwrap();
        for ((&l, &v), &w) in labels.iter().zip(filled.iter()).zip(image.iter()) {
            assert_eq!(v, if l == 3 { 7.0 } else { w });
        }
    }

    #[test]
    fn results_do_not_depend_on_threads_and_seed_matters() {
        let labels = label_map();
        let roles = [
            (
                1.0,
                LabelRole::Tissue {
                    mean: 1.0,
                    std: 1.0,
                },
            ),
            (
                2.0,
                LabelRole::Tissue {
                    mean: 0.0,
                    std: 0.5,
                },
            ),
        ];
        let maps = Array4::<f32>::from_elem((3, 20, 16, 12), 0.25);
        let pv_roles = [
            LabelRole::Ignored,
            LabelRole::Tissue {
                mean: 1.0,
                std: 0.3,
            },
            LabelRole::Tissue {
                mean: 2.0,
                std: 0.1,
            },
        ];
        let mut results = Vec::new();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let a = pool
                .install(|| labels_to_image_discrete(labels.view(), &roles, None, 11))
                .unwrap();
            let b = pool
                .install(|| labels_to_image_partial_volume(maps.view(), &pv_roles, None, 11))
                .unwrap();
            results.push((a, b));
        }
        assert_eq!(results[0], results[1]);
        let other = labels_to_image_discrete(labels.view(), &roles, None, 12).unwrap();
        assert_ne!(other, results[0].0);
    }

    #[test]
    fn partial_volume_weights_and_background_threshold() {
        let mut maps = Array4::<f64>::zeros((2, 1, 1, 3));
        // Voxel 0: fully label 1; voxel 1: 0.3 of label 1; voxel 2: 0.3 of label 0.
        maps[[1, 0, 0, 0]] = 1.0;
        maps[[1, 0, 0, 1]] = 0.3;
        maps[[0, 0, 0, 2]] = 0.3;
        let roles = [
            LabelRole::Tissue {
                mean: 2.0,
                std: 0.0,
            },
            LabelRole::Tissue {
                mean: 10.0,
                std: 0.0,
            },
        ];
        let image = labels_to_image_partial_volume(maps.view(), &roles, None, 0).unwrap();
        assert_eq!(image.as_slice().unwrap(), &[10.0, 3.0, 0.6]);
        let background = Array4::<f32>::from_elem((1, 1, 1, 3), -1.0);
        let filled =
            labels_to_image_partial_volume(maps.view(), &roles, Some(background.view()), 0)
                .unwrap();
        assert_eq!(filled.as_slice().unwrap(), &[10.0, -1.0, -1.0]);
        let dropped = [
            LabelRole::Background,
            LabelRole::Tissue {
                mean: 10.0,
                std: 0.0,
            },
        ];
        let filled =
            labels_to_image_partial_volume(maps.view(), &dropped, Some(background.view()), 0)
                .unwrap();
        assert_eq!(filled.as_slice().unwrap(), &[10.0, -1.0, -1.0]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let labels = label_map();
        let nan_role = [(
            1.0,
            LabelRole::Tissue {
                mean: f32::NAN,
                std: 0.0,
            },
        )];
        assert!(labels_to_image_discrete(labels.view(), &nan_role, None, 0).is_err());
        let wrong = Array4::<f32>::zeros((1, 2, 2, 2));
        assert!(matches!(
            labels_to_image_discrete(labels.view(), &[], Some(wrong.view()), 0),
            Err(Error::Shape(_))
        ));
        let maps = Array4::<f32>::zeros((2, 2, 2, 2));
        assert!(
            labels_to_image_partial_volume(maps.view(), &[LabelRole::Ignored], None, 0).is_err()
        );
        let two = Array4::<i32>::zeros((2, 2, 2, 2));
        assert!(labels_to_image_discrete(two.view(), &[], None, 0).is_err());
    }
}
