//! Intensity kernels.

pub mod histogram_standardization;
pub mod rescale;
pub mod statistics;
pub mod swap;
pub mod bias_field;
pub mod gamma;
pub mod noise;
