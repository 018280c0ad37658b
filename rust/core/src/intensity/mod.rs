//! Intensity kernels.

pub mod bias_field;
pub mod gamma;
pub mod histogram_standardization;
pub mod minimum;
pub mod noise;
pub mod radix_percentiles;
pub mod rescale;
pub mod statistics;
pub mod swap;
