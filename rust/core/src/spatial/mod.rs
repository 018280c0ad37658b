//! Spatial kernels: flips, crops and pads, resampling.

pub mod flip;
