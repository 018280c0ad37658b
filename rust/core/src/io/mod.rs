//! Reading and writing image files natively (NIfTI-1 and NIfTI-2).

pub mod nifti;
