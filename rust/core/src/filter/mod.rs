//! Filters: separable Gaussian smoothing with SciPy's semantics.

pub mod gaussian;
