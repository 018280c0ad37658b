//! Bindings of the separable Gaussian filter.

use ndarray::Ix4;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use torchvox_core::filter::gaussian;

use crate::boundary::run;
use crate::with_volume;

/// `scipy.ndimage.gaussian_filter` of every channel of a `(C, I, J, K)` array
/// with per-axis sigmas in voxels (mode 'reflect'); keeps the dtype.
#[pyfunction]
#[pyo3(signature = (volume, sigmas, truncate=4.0))]
pub fn gaussian_filter<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    sigmas: [f64; 3],
    truncate: f64,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || gaussian::gaussian_filter(view, sigmas, truncate))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Correlation of every channel with one symmetric odd-length kernel per
/// spatial axis (`None` skips the axis), SciPy's 'reflect' mode; keeps the dtype.
#[pyfunction]
pub fn correlate_separable<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    kernels: [Option<Vec<f64>>; 3],
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            gaussian::correlate_separable(
                view,
                [
                    kernels[0].as_deref(),
                    kernels[1].as_deref(),
                    kernels[2].as_deref(),
                ],
            )
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(gaussian_filter, module)?)?;
    module.add_function(wrap_pyfunction!(correlate_separable, module)?)?;
    Ok(())
}
