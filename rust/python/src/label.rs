//! Bindings of the label kernels (one-hot, remapping, components, contours,
//! image synthesis from labels) and of the intensity kernels that TorchIO's
//! label-driven and patch transforms need (patch swaps, histogram
//! standardization's piecewise-linear map).

use ndarray::Ix4;
use numpy::{IntoPyArray, PyArray, PyArrayMethods, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use torchvox_core::intensity::{histogram_standardization, swap};
use torchvox_core::label::components::{self, Connectivity, ScanOrder};
use torchvox_core::label::labels_to_image::{self, LabelRole};
use torchvox_core::label::{contour, one_hot as encoding, remap};

use crate::boundary::{not_contiguous, run};
use crate::with_volume;

/// Extracts an optional C-contiguous 4D array of exactly element type `E`.
fn optional_array<'py, E: numpy::Element>(
    array: Option<&Bound<'py, PyAny>>,
    name: &str,
    dtype: &str,
) -> PyResult<Option<PyReadonlyArray4<'py, E>>> {
    let Some(array) = array.filter(|a| !a.is_none()) else {
        return Ok(None);
    };
    let typed = array.cast::<PyArray<E, Ix4>>().map_err(|_| {
        PyTypeError::new_err(format!("{name} must be a 4D NumPy array of dtype {dtype}"))
    })?;
    if !typed.is_c_contiguous() {
        return Err(not_contiguous(name));
    }
    typed
        .try_readonly()
        .map(Some)
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

fn scan_order(order: &str) -> PyResult<ScanOrder> {
    match order {
        "C" => Ok(ScanOrder::C),
        "F" => Ok(ScanOrder::Fortran),
        other => Err(PyValueError::new_err(format!(
            "order must be 'C' or 'F', got {other:?}"
        ))),
    }
}

fn role(kind: &str, mean: f64, std: f64) -> PyResult<LabelRole> {
    match kind {
        "tissue" => Ok(LabelRole::Tissue {
            mean: mean as f32,
            std: std as f32,
        }),
        "ignored" => Ok(LabelRole::Ignored),
        "background" => Ok(LabelRole::Background),
        other => Err(PyValueError::new_err(format!(
            "label role must be 'tissue', 'ignored' or 'background', got {other:?}"
        ))),
    }
}

/// One-hot encodes a `(1, I, J, K)` label map into `(N, I, J, K)` of the same dtype.
#[pyfunction]
#[pyo3(signature = (labels, num_classes=None))]
pub fn one_hot<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyAny>,
    num_classes: Option<usize>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(labels, "labels", Ix4, |view: T| {
        let out = run(py, || encoding::one_hot(view, num_classes))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// First index of the maximum over channels, `(C, I, J, K)` -> `(1, I, J, K)` int64.
#[pyfunction]
#[pyo3(signature = (volume, zero_max_as=None))]
pub fn argmax<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    zero_max_as: Option<i64>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || encoding::argmax(view, zero_max_as))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Remaps label values through `mapping` (pairs old, new), only where `mask` is nonzero.
#[pyfunction]
#[pyo3(signature = (volume, mapping, mask=None))]
pub fn remap_labels<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    mapping: Vec<(f64, f64)>,
    mask: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mask = optional_array::<u8>(mask, "mask", "uint8")?;
    let mask_view = mask.as_ref().map(|m| m.as_array());
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || remap::remap(view, &mapping, mask_view))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Sorted distinct values of a label map.
#[pyfunction]
pub fn unique_labels(py: Python<'_>, volume: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        run(py, || remap::unique_values(view))
    })
}

/// Whether every value is integral (TorchIO's `x == x.float().round()` test).
#[pyfunction]
pub fn labels_are_integral(py: Python<'_>, volume: &Bound<'_, PyAny>) -> PyResult<bool> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        run(py, || remap::all_integral(view))
    })
}

/// Connected components of nonzero voxels per channel: (int32 labels, counts).
#[pyfunction]
#[pyo3(signature = (volume, fully_connected=false, sort_by_size=false, order="C"))]
pub fn connected_components<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    fully_connected: bool,
    sort_by_size: bool,
    order: &str,
) -> PyResult<(Bound<'py, PyAny>, Vec<usize>)> {
    let order = scan_order(order)?;
    let connectivity = Connectivity::from_fully_connected(fully_connected);
    let sort = sort_by_size.then_some(order);
    with_volume!(volume, "volume", Ix4, |view: T| {
        let (labels, counts) = run(py, || {
            components::connected_components(view, connectivity, sort)
        })?;
        Ok((labels.into_pyarray(py).into_any(), counts))
    })
}

/// Uint8 mask of the largest connected component of each channel.
#[pyfunction]
#[pyo3(signature = (volume, fully_connected=false, order="C"))]
pub fn keep_largest_component<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    fully_connected: bool,
    order: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let order = scan_order(order)?;
    let connectivity = Connectivity::from_fully_connected(fully_connected);
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            components::keep_largest_component(view, connectivity, order)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Contour of the `foreground` voxels (SimpleITK's `BinaryContourImageFilter`).
#[pyfunction]
#[pyo3(signature = (volume, fully_connected=false, foreground=1.0, background=0.0))]
pub fn binary_contour<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    fully_connected: bool,
    foreground: f64,
    background: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let connectivity = Connectivity::from_fully_connected(fully_connected);
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            let fg = exact_label::<T>(foreground, "foreground")?;
            let bg = exact_label::<T>(background, "background")?;
            contour::binary_contour(view, connectivity, fg, bg)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

fn exact_label<T: torchvox_core::volume::Voxel>(
    value: f64,
    what: &str,
) -> torchvox_core::Result<T> {
    let converted = T::from_f64(value);
    if converted.to_f64() == value || (T::IS_FLOAT && !value.is_nan()) {
        Ok(converted)
    } else {
        Err(torchvox_core::Error::InvalidArgument(format!(
            "{what} value {value} cannot be represented in the label map's data type"
        )))
    }
}

/// Float32 `(1, I, J, K)` image synthesised from a categorical label map.
///
/// `roles` are `(label value, kind, mean, std)` with kind `'tissue'`,
/// `'ignored'` or `'background'`; values not listed are background.
#[pyfunction]
#[pyo3(signature = (labels, roles, seed, background=None))]
pub fn labels_to_image_discrete<'py>(
    py: Python<'py>,
    labels: &Bound<'py, PyAny>,
    roles: Vec<(f64, String, f64, f64)>,
    seed: u64,
    background: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let roles = roles
        .iter()
        .map(|(value, kind, mean, std)| Ok((*value, role(kind, *mean, *std)?)))
        .collect::<PyResult<Vec<_>>>()?;
    let background = optional_array::<f32>(background, "background", "float32")?;
    let background_view = background.as_ref().map(|b| b.as_array());
    with_volume!(labels, "labels", Ix4, |view: T| {
        let out = run(py, || {
            labels_to_image::labels_to_image_discrete(view, &roles, background_view, seed)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Float32 `(1, I, J, K)` image synthesised from a partial-volume map `(L, I, J, K)`.
///
/// `roles[l]` is `(kind, mean, std)` of channel `l`.
#[pyfunction]
#[pyo3(signature = (maps, roles, seed, background=None))]
pub fn labels_to_image_partial_volume<'py>(
    py: Python<'py>,
    maps: &Bound<'py, PyAny>,
    roles: Vec<(String, f64, f64)>,
    seed: u64,
    background: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let roles = roles
        .iter()
        .map(|(kind, mean, std)| role(kind, *mean, *std))
        .collect::<PyResult<Vec<_>>>()?;
    let background = optional_array::<f32>(background, "background", "float32")?;
    let background_view = background.as_ref().map(|b| b.as_array());
    with_volume!(maps, "maps", Ix4, |view: T| {
        let out = run(py, || {
            labels_to_image::labels_to_image_partial_volume(view, &roles, background_view, seed)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Copy of `volume` with each `(a, b)` pair of patches swapped, in order.
#[pyfunction]
pub fn swap_patches<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    patch_size: [usize; 3],
    locations: Vec<([usize; 3], [usize; 3])>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || swap::swap_patches(view, patch_size, &locations))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Float32 piecewise-linear map of every voxel, bins as `np.digitize(x, breakpoints)`.
#[pyfunction]
pub fn piecewise_linear<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    breakpoints: Vec<f64>,
    slopes: Vec<f64>,
    intercepts: Vec<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            histogram_standardization::piecewise_linear(view, &breakpoints, &slopes, &intercepts)
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(one_hot, module)?)?;
    module.add_function(wrap_pyfunction!(argmax, module)?)?;
    module.add_function(wrap_pyfunction!(remap_labels, module)?)?;
    module.add_function(wrap_pyfunction!(unique_labels, module)?)?;
    module.add_function(wrap_pyfunction!(labels_are_integral, module)?)?;
    module.add_function(wrap_pyfunction!(connected_components, module)?)?;
    module.add_function(wrap_pyfunction!(keep_largest_component, module)?)?;
    module.add_function(wrap_pyfunction!(binary_contour, module)?)?;
    module.add_function(wrap_pyfunction!(labels_to_image_discrete, module)?)?;
    module.add_function(wrap_pyfunction!(labels_to_image_partial_volume, module)?)?;
    module.add_function(wrap_pyfunction!(swap_patches, module)?)?;
    module.add_function(wrap_pyfunction!(piecewise_linear, module)?)?;
    Ok(())
}
