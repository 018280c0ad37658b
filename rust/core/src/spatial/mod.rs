//! Spatial kernels: flips, crops and pads, resampling.

mod background;
pub mod bspline;
pub mod crop_pad;
pub mod displacement;
pub mod flip;
pub mod interpolation;
mod rows;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod warp;
