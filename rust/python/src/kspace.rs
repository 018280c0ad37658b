//! Bindings of the k-space artefact kernels (ghosting, spike, motion).

use ndarray::Ix4;
use numpy::IntoPyArray;
use pyo3::prelude::*;
use torchvox_core::affine::{check_affine, Matrix4};
use torchvox_core::kspace;
use torchvox_core::spatial::interpolation::Interpolation;

use crate::boundary::{run, to_py_err};
use crate::with_volume;

/// TorchIO's `Ghosting.add_artifact` on every channel of a `(C, I, J, K)`
/// array; returns float32.
#[pyfunction]
#[pyo3(signature = (volume, num_ghosts, axis, intensity, restore=None))]
pub fn ghosting<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    num_ghosts: usize,
    axis: usize,
    intensity: f64,
    restore: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            kspace::ghosting::ghosting(view, num_ghosts, axis, intensity, restore)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// TorchIO's `Spike.add_artifact` on every channel; `positions` are shifted
/// spectrum indices `(i, j, k)`; returns float32.
#[pyfunction]
#[pyo3(signature = (volume, positions, intensity, invert=false))]
pub fn spike<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    positions: Vec<[usize; 3]>,
    intensity: f64,
    invert: bool,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            kspace::spike::spike(view, &positions, intensity, invert)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// TorchIO's `Motion` on every channel: `transforms` are world (RAS) 4x4
/// matrices mapping output points to input points, one per movement;
/// `segment_ends`/`segment_sources` describe the k-space segments along the
/// last axis (source 0 = the input, m + 1 = movement m); returns float32.
#[pyfunction]
pub fn motion<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    affine: [[f64; 4]; 4],
    transforms: Vec<[[f64; 4]; 4]>,
    interpolation: &str,
    segment_ends: Vec<usize>,
    segment_sources: Vec<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    let interpolation = Interpolation::from_name(interpolation).map_err(to_py_err)?;
    check_affine(&affine, "affine").map_err(to_py_err)?;
    for (index, m) in transforms.iter().enumerate() {
        check_affine(m, &format!("transforms[{index}]")).map_err(to_py_err)?;
    }
    let affine: Matrix4 = affine;
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            kspace::motion::motion_rigid(
                view,
                &affine,
                &transforms,
                interpolation,
                &segment_ends,
                &segment_sources,
            )
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(ghosting, module)?)?;
    module.add_function(wrap_pyfunction!(spike, module)?)?;
    module.add_function(wrap_pyfunction!(motion, module)?)?;
    Ok(())
}
