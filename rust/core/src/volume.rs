//! The voxel types kernels are generic over, and shape checks shared by kernels.
//!
//! Volumes are `(C, I, J, K)` arrays in C order (TorchIO's `(C, W, H, D)`).

use ndarray::{Array, ArrayView4, Dimension, ShapeBuilder};

use crate::error::{Error, Result};

/// A voxel type the kernels accept: the float types of intensity images and
/// the integer types of label maps.
pub trait Voxel: Copy + Send + Sync + PartialOrd + Default + std::fmt::Debug + 'static {
    /// Whether the type is a floating-point type (NaN possible, no rounding).
    const IS_FLOAT: bool;
    /// Smallest representable value.
    const MIN: Self;
    /// Largest representable value.
    const MAX: Self;
    /// Converts to `f64` (exact for every supported type but large `i64`).
    fn to_f64(self) -> f64;
    /// Converts from `f64`: floats cast, integers round half away from zero and saturate.
    fn from_f64(value: f64) -> Self;
    /// The slice as `f32` when `Self` is `f32`, for kernels specialised to it.
    #[inline(always)]
    fn as_f32(data: &[Self]) -> Option<&[f32]> {
        let _ = data;
        None
    }
    /// The mutable slice as `f32` when `Self` is `f32`.
    #[inline(always)]
    fn as_f32_mut(data: &mut [Self]) -> Option<&mut [f32]> {
        let _ = data;
        None
    }
}

macro_rules! impl_float_voxel {
    ($t:ty $(, $extra:item)*) => {
        impl Voxel for $t {
            const IS_FLOAT: bool = true;
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(value: f64) -> Self {
                value as $t
            }
            $($extra)*
        }
    };
}

macro_rules! impl_int_voxel {
    ($t:ty) => {
        impl Voxel for $t {
            const IS_FLOAT: bool = false;
            const MIN: Self = <$t>::MIN;
            const MAX: Self = <$t>::MAX;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(value: f64) -> Self {
                // `as` saturates and maps NaN to 0, so this never panics.
                value.round() as $t
            }
        }
    };
}

impl_float_voxel!(
    f32,
    #[inline(always)]
    fn as_f32(data: &[Self]) -> Option<&[f32]> {
        Some(data)
    },
    #[inline(always)]
    fn as_f32_mut(data: &mut [Self]) -> Option<&mut [f32]> {
        Some(data)
    }
);
impl_float_voxel!(f64);
impl_int_voxel!(u8);
impl_int_voxel!(i16);
impl_int_voxel!(i32);
impl_int_voxel!(i64);

/// A new array of `T::default()` (zero for every voxel type) for a kernel to fill.
///
/// Prefer it to `Array::default`, which writes every element once before the
/// kernel writes it again: `from_elem` with an all-zero value takes the
/// allocator's zeroed path (fresh pages from calloc), so the kernel's own pass
/// is the only one over the output.
pub fn zeroed<T: Voxel, D: Dimension, Sh: ShapeBuilder<Dim = D>>(shape: Sh) -> Array<T, D> {
    Array::from_elem(shape, T::default())
}

/// Fails unless `volume` has at least one voxel and one channel.
pub fn check_not_empty<T>(volume: &ArrayView4<'_, T>, name: &str) -> Result<()> {
    if volume.is_empty() {
        return Err(Error::Empty(format!(
            "{name} has shape {:?}, which holds no voxels",
            volume.shape()
        )));
    }
    Ok(())
}

/// Fails unless two arrays have the same shape.
pub fn check_same_shape(a: &[usize], b: &[usize], what: &str) -> Result<()> {
    if a != b {
        return Err(Error::Shape(format!(
            "{what}: shapes {a:?} and {b:?} differ"
        )));
    }
    Ok(())
}

/// Fails unless a mask `(1, I, J, K)` or `(C, I, J, K)` matches the
/// spatial shape of `volume`.
pub fn check_mask_shape(volume_shape: &[usize], mask_shape: &[usize]) -> Result<()> {
    if mask_shape.len() != 4
        || mask_shape[1..] != volume_shape[1..]
        || !(mask_shape[0] == 1 || mask_shape[0] == volume_shape[0])
    {
        return Err(Error::Shape(format!(
            "mask of shape {mask_shape:?} does not match volume of shape {volume_shape:?}"
        )));
    }
    Ok(())
}
