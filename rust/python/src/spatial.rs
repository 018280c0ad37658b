//! Bindings of the spatial kernels.

use ndarray::Ix4;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use torchvox_core::spatial;

use crate::boundary::run;
use crate::with_volume;

/// Flips a `(C, I, J, K)` array along spatial axes (0, 1, 2); returns a new array.
#[pyfunction]
pub fn flip<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    axes: Vec<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || spatial::flip::flip(view, &axes))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(flip, module)?)?;
    Ok(())
}
