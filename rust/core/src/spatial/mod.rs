//! Spatial kernels: flips, crops and pads, resampling.

pub mod crop_pad;
pub mod flip;
pub mod bspline;
pub mod displacement;
pub mod interpolation;
pub mod warp;
