//! Bindings of the intensity augmentation kernels: bias field, noise, gamma.

use ndarray::Ix4;
use numpy::{IntoPyArray, PyArray, PyArrayMethods, PyReadonlyArray2};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use torchvox_core::intensity::{bias_field as core_bias, gamma as core_gamma, noise as core_noise};

use crate::boundary::run;
use crate::regions;
use crate::with_volume;

/// Multiplies every channel by TorchIO's polynomial bias field (or divides by
/// it when `invert`); float64 stays float64, other dtypes become float32.
#[pyfunction]
#[pyo3(signature = (volume, order, coefficients, invert=false))]
pub fn bias_field<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    order: usize,
    coefficients: Vec<f64>,
    invert: bool,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            core_bias::apply_bias_field(view, order, &coefficients, invert)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// The float32 bias field of spatial shape `(I, J, K)`.
#[pyfunction]
pub fn bias_field_map<'py>(
    py: Python<'py>,
    shape: [usize; 3],
    order: usize,
    coefficients: Vec<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let out = run(py, || {
        core_bias::bias_field_map(shape, order, &coefficients)
    })?;
    Ok(out.into_pyarray(py).into_any())
}

/// Adds (or subtracts, `invert`) Gaussian noise drawn from `seed`; float64
/// stays float64, other dtypes become float32.
#[pyfunction]
#[pyo3(signature = (volume, mean, std, seed, invert=false))]
pub fn noise<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    mean: f64,
    std: f64,
    seed: u64,
    invert: bool,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || core_noise::add_noise(view, mean, std, seed, invert))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Adds seeded noise in place to the voxels of a float32 or float64 `(C, I, J,
/// K)` volume inside `boxes` (an `(N, 6)` int64 array of `(i0, j0, k0, i1, j1,
/// k1)` boxes): each gets the value `noise` gives it; the others are left as
/// they are.
#[pyfunction]
pub fn noise_in_boxes<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    mean: f64,
    std: f64,
    seed: u64,
    invert: bool,
    boxes: PyReadonlyArray2<'py, i64>,
) -> PyResult<()> {
    macro_rules! attempt {
        ($t:ty) => {
            if let Ok(typed) = volume.cast::<PyArray<$t, Ix4>>() {
                let mut guard = typed
                    .try_readwrite()
                    .map_err(|e| PyValueError::new_err(format!("volume: {e}")))?;
                let view = guard.as_array_mut();
                let (_, ni, nj, nk) = view.dim();
                let regions = regions::from_boxes(&boxes, [ni, nj, nk])?;
                return run(py, || {
                    core_noise::add_noise_in_regions(view, mean, std, seed, invert, &regions)
                });
            }
        };
    }
    attempt!(f32);
    attempt!(f64);
    Err(PyTypeError::new_err(
        "volume must be a 4D float32 or float64 NumPy array",
    ))
}

/// TorchIO's per-channel gamma (sign-preserving when a channel has negative
/// values); returns float32.
#[pyfunction]
#[pyo3(signature = (volume, gammas, invert=false))]
pub fn gamma<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    gammas: Vec<f64>,
    invert: bool,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || core_gamma::gamma(view, &gammas, invert))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(bias_field, module)?)?;
    module.add_function(wrap_pyfunction!(bias_field_map, module)?)?;
    module.add_function(wrap_pyfunction!(noise, module)?)?;
    module.add_function(wrap_pyfunction!(noise_in_boxes, module)?)?;
    module.add_function(wrap_pyfunction!(gamma, module)?)?;
    Ok(())
}
