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

/// Crops and/or pads a `(C, I, J, K)` array in one pass (numpy.pad modes); returns a new array.
#[pyfunction]
#[pyo3(signature = (volume, start, shape, mode="constant", value=0.0))]
pub fn crop_pad<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    start: [i64; 3],
    shape: [i64; 3],
    mode: &str,
    value: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let mut out_shape = [0usize; 3];
    for (out, &extent) in out_shape.iter_mut().zip(&shape) {
        *out = usize::try_from(extent).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "shape must hold positive extents, got {shape:?}"
            ))
        })?;
    }
    let mode =
        spatial::crop_pad::PadMode::parse(mode, value).map_err(crate::boundary::to_py_err)?;
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            spatial::crop_pad::crop_pad(view, start, out_shape, mode)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(flip, module)?)?;
    module.add_function(wrap_pyfunction!(crop_pad, module)?)?;
    Ok(())
}
