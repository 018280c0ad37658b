//! torchvox-core: the pure-Rust kernels behind torchvox.
//!
//! Every kernel works on `(C, I, J, K)` volumes (`ndarray::ArrayView4`), is
//! generic over [`volume::Voxel`], returns [`error::Result`] instead of
//! panicking, and uses rayon only inside [`parallel::install`].

pub mod affine;
pub mod alloc;
pub mod error;
pub mod filter;
pub mod intensity;
pub mod io;
pub mod kspace;
pub mod label;
pub mod parallel;
pub mod patches;
pub mod regions;
pub mod spatial;
pub mod stream;
pub mod volume;

pub use error::{Error, Result};
