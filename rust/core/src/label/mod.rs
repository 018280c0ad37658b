//! Label-map kernels: one-hot encoding and its inverse, label remapping,
//! connected components, binary contours and image synthesis from labels.
//!
//! Label maps are `(C, I, J, K)` volumes of any [`Voxel`] type; integer types
//! are the norm, but TorchIO also accepts float label maps (after resampling,
//! or partial-volume maps), so every kernel is generic.

pub mod components;
pub mod contour;
pub mod labels_to_image;
pub mod one_hot;
pub mod remap;

use ndarray::{Array4, ArrayView4, CowArray, Ix4};

use crate::error::{Error, Result};
use crate::volume::Voxel;

/// `volume` in standard (C-contiguous) layout, borrowed when it already is.
pub(crate) fn standard<'a, T: Clone>(volume: &'a ArrayView4<'_, T>) -> CowArray<'a, T, Ix4> {
    volume.as_standard_layout()
}

/// The elements of a standard-layout array as one slice.
pub(crate) fn flat<'a, T>(array: &'a CowArray<'_, T, Ix4>) -> Result<&'a [T]> {
    array
        .as_slice()
        .ok_or_else(|| Error::Shape("standard-layout volume is not contiguous".into()))
}

/// The output's elements as one mutable slice.
pub(crate) fn flat_mut<T>(array: &mut Array4<T>) -> Result<&mut [T]> {
    array
        .as_slice_mut()
        .ok_or_else(|| Error::Shape("freshly allocated output is not contiguous".into()))
}

/// Label-specific conversions of a [`Voxel`].
pub trait LabelVoxel: Voxel {
    /// Class index as `torch.Tensor.long()` computes it: floats are truncated
    /// toward zero; `None` for NaN, infinities and values outside `i64`.
    fn class_index(self) -> Option<i64>;
    /// Whether the value is integral the way TorchIO tests it
    /// (`x == x.float().round()`, with both sides promoted to the wider type).
    fn is_torch_integral(self) -> bool;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
}

macro_rules! impl_int_label {
    ($t:ty) => {
        impl LabelVoxel for $t {
            #[inline(always)]
            fn class_index(self) -> Option<i64> {
                i64::try_from(self).ok()
            }
            #[inline(always)]
            fn is_torch_integral(self) -> bool {
                // Torch compares an integer tensor with a float32 one in float32,
                // where a value always equals its own rounding.
                true
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                false
            }
        }
    };
}

impl_int_label!(u8);
impl_int_label!(i16);
impl_int_label!(i32);
impl_int_label!(i64);

impl LabelVoxel for f32 {
    #[inline(always)]
    fn class_index(self) -> Option<i64> {
        float_class_index(self as f64)
    }
    #[inline(always)]
    fn is_torch_integral(self) -> bool {
        self.round() == self
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

impl LabelVoxel for f64 {
    #[inline(always)]
    fn class_index(self) -> Option<i64> {
        float_class_index(self)
    }
    #[inline(always)]
    fn is_torch_integral(self) -> bool {
        // `x.float().round()` rounds to float32 first; the comparison is in float64.
        ((self as f32).round() as f64) == self
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.is_nan()
    }
}

#[inline(always)]
fn float_class_index(value: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let truncated = value.trunc();
    if truncated.is_finite() && (-LIMIT..LIMIT).contains(&truncated) {
        Some(truncated as i64)
    } else {
        None
    }
}

/// Converts `value` to `T` exactly, or fails naming `what`.
pub(crate) fn exact_voxel<T: Voxel>(value: f64, what: &str) -> Result<T> {
    let converted = T::from_f64(value);
    // Float label maps take any value (rounded to their precision).
    if T::IS_FLOAT || converted.to_f64() == value {
        Ok(converted)
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} {value} cannot be represented exactly in the label map's data type"
        )))
    }
}

/// A lookup table from label values to payloads, dense when the keys are
/// integers spanning a small range and a sorted list otherwise.
#[derive(Debug, Clone)]
pub(crate) enum ValueTable<P> {
    Dense { min: i64, slots: Vec<Option<P>> },
    Sorted { keys: Vec<f64>, payloads: Vec<P> },
}

/// Largest key span stored densely (entries, not bytes).
const DENSE_SPAN: i64 = 1 << 16;

impl<P: Copy> ValueTable<P> {
    /// Builds the table; keys must be distinct and not NaN.
    pub(crate) fn new(entries: &[(f64, P)]) -> Result<Self> {
        let mut sorted: Vec<(f64, P)> = entries.to_vec();
        if sorted.iter().any(|(k, _)| k.is_nan()) {
            return Err(Error::InvalidArgument("label keys must not be NaN".into()));
        }
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        for pair in sorted.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(Error::InvalidArgument(format!(
                    "label key {} appears more than once",
                    pair[0].0
                )));
            }
        }
        let integral = sorted
            .iter()
            .all(|(k, _)| k.fract() == 0.0 && k.abs() < 9.0e15);
        if integral {
            if let (Some(first), Some(last)) = (sorted.first(), sorted.last()) {
                let (min, max) = (first.0 as i64, last.0 as i64);
                if max - min < DENSE_SPAN {
                    let mut slots = vec![None; (max - min + 1) as usize];
                    for &(key, payload) in &sorted {
                        slots[(key as i64 - min) as usize] = Some(payload);
                    }
                    return Ok(ValueTable::Dense { min, slots });
                }
            }
        }
        let (keys, payloads) = sorted.into_iter().unzip();
        Ok(ValueTable::Sorted { keys, payloads })
    }

    /// Payload of the key equal to the voxel `value`, if any (integers are
    /// looked up without a float round trip).
    #[inline(always)]
    pub(crate) fn get_voxel<T: LabelVoxel>(&self, value: T) -> Option<P> {
        match self {
            ValueTable::Dense { min, slots } if !T::IS_FLOAT => {
                let offset = value.class_index()?.wrapping_sub(*min);
                if offset < 0 {
                    return None;
                }
                slots.get(offset as usize).copied().flatten()
            }
            _ => self.get(value.to_f64()),
        }
    }

    /// Payload of the key equal to `value`, if any.
    #[inline(always)]
    pub(crate) fn get(&self, value: f64) -> Option<P> {
        match self {
            ValueTable::Dense { min, slots } => {
                // NaN and non-integers fail the fract test; `as` saturates.
                if value.fract() != 0.0 {
                    return None;
                }
                let offset = (value as i64).wrapping_sub(*min);
                if offset < 0 {
                    return None;
                }
                slots.get(offset as usize).copied().flatten()
            }
            ValueTable::Sorted { keys, payloads } => keys
                .binary_search_by(|k| k.total_cmp(&value))
                .ok()
                .map(|index| payloads[index]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_table_dense_and_sorted_agree() {
        let entries = [(3.0, 30u8), (-2.0, 20), (7.0, 70)];
        let dense = ValueTable::new(&entries).unwrap();
        assert!(matches!(dense, ValueTable::Dense { .. }));
        let wide = [(3.0, 30u8), (-2.0, 20), (7.0e6, 70), (0.5, 5)];
        let sorted = ValueTable::new(&wide).unwrap();
        assert!(matches!(sorted, ValueTable::Sorted { .. }));
        assert_eq!(dense.get(3.0), Some(30));
        assert_eq!(dense.get(-2.0), Some(20));
        assert_eq!(dense.get(0.0), None);
        assert_eq!(dense.get(3.5), None);
        assert_eq!(dense.get(f64::NAN), None);
        assert_eq!(dense.get(-100.0), None);
        assert_eq!(sorted.get(7.0e6), Some(70));
        assert_eq!(sorted.get(0.5), Some(5));
        assert_eq!(sorted.get(1.0), None);
        assert_eq!(dense.get_voxel(7i16), Some(70));
        assert_eq!(dense.get_voxel(-2i64), Some(20));
        assert_eq!(dense.get_voxel(0u8), None);
        assert_eq!(dense.get_voxel(200u8), None);
        assert_eq!(dense.get_voxel(3.0f32), Some(30));
        assert_eq!(dense.get_voxel(3.5f32), None);
        assert_eq!(sorted.get_voxel(7_000_000i32), Some(70));
        assert!(ValueTable::new(&[(1.0, 1u8), (1.0, 2)]).is_err());
        assert!(ValueTable::new(&[(f64::NAN, 1u8)]).is_err());
    }

    #[test]
    fn class_index_truncates_like_torch_long() {
        assert_eq!(1.7f32.class_index(), Some(1));
        assert_eq!((-0.5f64).class_index(), Some(0));
        assert_eq!((-1.5f64).class_index(), Some(-1));
        assert_eq!(f32::NAN.class_index(), None);
        assert_eq!(f64::INFINITY.class_index(), None);
        assert_eq!(200u8.class_index(), Some(200));
        assert!(2.0f64.is_torch_integral());
        assert!(!2.5f32.is_torch_integral());
        assert!(!(1.0 + 1e-10f64).is_torch_integral());
    }

    #[test]
    fn exact_voxel_rejects_unrepresentable_values() {
        assert_eq!(exact_voxel::<u8>(255.0, "v").unwrap(), 255);
        assert!(exact_voxel::<u8>(256.0, "v").is_err());
        assert!(exact_voxel::<i16>(1.5, "v").is_err());
        assert_eq!(exact_voxel::<f32>(1.5, "v").unwrap(), 1.5);
        assert_eq!(exact_voxel::<f32>(0.1, "v").unwrap(), 0.1f32);
    }
}
