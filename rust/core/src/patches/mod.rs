//! Patch-based pipelines: extracting patches, weighted sampling of patch
//! centres, and aggregating predicted patches back into a volume.

pub mod aggregate;
pub mod extract;
pub mod sampling;
