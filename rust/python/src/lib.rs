//! `torchvox._native`: the Python extension module. The only crate that knows
//! pyo3 and numpy. Each binding extracts arrays, releases the GIL, runs one
//! core kernel on the process-local pool ([`boundary::run`]) and returns new
//! NumPy arrays.

use pyo3::prelude::*;

/// mimalloc (freed outputs are reused, not returned to the kernel) with
/// transparent huge pages for large outputs: see [`torchvox_core::alloc`].
#[global_allocator]
static ALLOCATOR: torchvox_core::alloc::HugePageAllocator<mimalloc::MiMalloc> =
    torchvox_core::alloc::HugePageAllocator(mimalloc::MiMalloc);

mod augment;
pub mod boundary;
mod filter;
mod intensity;
mod kspace;
mod label;
mod nifti;
mod patches;
mod regions;
mod spatial;
mod warp;

/// Sets the number of threads kernels use in this process (0 = all cores).
#[pyfunction]
fn set_num_threads(threads: usize) {
    torchvox_core::parallel::set_num_threads(threads);
}

/// Number of threads kernels use in this process.
#[pyfunction]
fn get_num_threads() -> usize {
    torchvox_core::parallel::num_threads()
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(set_num_threads, module)?)?;
    module.add_function(wrap_pyfunction!(get_num_threads, module)?)?;
    spatial::register(module)?;
    intensity::register(module)?;
    kspace::register(module)?;
    filter::register(module)?;
    augment::register(module)?;
    warp::register(module)?;
    label::register(module)?;
    patches::register(module)?;
    nifti::register(module)?;
    Ok(())
}
