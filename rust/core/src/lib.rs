//! torchvox-core: the pure-Rust kernels behind torchvox.
//!
//! Every kernel works on `(C, I, J, K)` volumes (`ndarray::ArrayView4`), is
//! generic over [`volume::Voxel`], returns [`error::Result`] instead of
//! panicking, and uses rayon only inside [`parallel::install`].

pub mod error;
pub mod parallel;
pub mod spatial;
pub mod volume;

pub use error::{Error, Result};
