//! Bindings of the patch kernels: extraction, weighted sampling, aggregation.

use ndarray::{Ix3, Ix4, Ix5};
use numpy::{
    Element, IntoPyArray, PyArray, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1,
    PyReadonlyArray2, PyReadwriteArray, PyReadwriteArray1, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use torchvox_core::patches::{aggregate, extract, sampling};

use crate::boundary::{not_contiguous, run, run_here};
use crate::with_volume;

fn corners(starts: &PyReadonlyArray2<'_, i64>) -> PyResult<Vec<[usize; 3]>> {
    let view = starts.as_array();
    if view.ncols() != 3 {
        return Err(PyValueError::new_err(format!(
            "starts must have shape (N, 3), got {:?}",
            view.shape()
        )));
    }
    view.rows()
        .into_iter()
        .map(|row| {
            let mut corner = [0usize; 3];
            for (axis, &v) in row.iter().enumerate() {
                corner[axis] = usize::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!("patch corners must be non-negative, got {v}"))
                })?;
            }
            Ok(corner)
        })
        .collect()
}

/// Copies the region `start + [0, size)` of a `(C, I, J, K)` volume into a new array.
#[pyfunction]
pub fn extract_patch<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    start: [usize; 3],
    size: [usize; 3],
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run_here(py, || extract::extract_patch(view, start, size))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Copies `N` patches of one size (corners `starts`, `(N, 3)` int64) into `(N, C, pi, pj, pk)`.
///
/// With `out` (a C-contiguous array of that shape and the volume's dtype), the
/// patches are written into it and `out` is returned, so that a caller can
/// recycle its batch buffers.
#[pyfunction]
#[pyo3(signature = (volume, starts, size, out=None))]
pub fn extract_patches<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    starts: PyReadonlyArray2<'py, i64>,
    size: [usize; 3],
    out: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let starts = corners(&starts)?;
    with_volume!(volume, "volume", Ix4, |view: T| {
        let Some(out) = out else {
            let patches = run_here(py, || extract::extract_patches(view, &starts, size))?;
            return Ok(patches.into_pyarray(py).into_any());
        };
        let typed = out
            .cast::<PyArray<T, Ix5>>()
            .map_err(|_| PyTypeError::new_err("out must be a 5D array of the volume's dtype"))?;
        if !typed.is_c_contiguous() {
            return Err(not_contiguous("out"));
        }
        let mut guard = typed
            .try_readwrite()
            .map_err(|e| PyValueError::new_err(format!("out: {e}")))?;
        let target = guard.as_array_mut();
        run_here(py, || {
            extract::extract_patches_into(view, &starts, size, target)
        })?;
        Ok(out.clone())
    })
}

/// Calls `$body` with `$view`, the `(I, J, K)` float32, float64 or uint8 map, borrowed read-only.
macro_rules! with_map {
    ($map:expr, |$view:ident| $body:expr) => {{
        macro_rules! attempt {
            ($t:ty) => {
                if let Ok(typed) = $map.cast::<PyArray<$t, Ix3>>() {
                    let guard = typed
                        .try_readonly()
                        .map_err(|e| PyValueError::new_err(format!("probability_map: {e}")))?;
                    let $view = guard.as_array();
                    return $body;
                }
            };
        }
        attempt!(f32);
        attempt!(f64);
        attempt!(u8);
        Err(PyTypeError::new_err(
            "probability_map must be a 3D float32, float64 or uint8 NumPy array",
        ))
    }};
}

fn centres_array<'py>(
    py: Python<'py>,
    centres: &[[usize; 3]],
) -> PyResult<Bound<'py, PyArray<i64, ndarray::Ix2>>> {
    let flat: Vec<i64> = centres.iter().flatten().map(|&v| v as i64).collect();
    let array = ndarray::Array2::from_shape_vec((centres.len(), 3), flat)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

/// Draws one patch centre per uniform number from an `(I, J, K)` probability map.
///
/// Returns an `(N, 3)` int64 array of centre voxels.
#[pyfunction]
pub fn sample_centres<'py>(
    py: Python<'py>,
    probability_map: &Bound<'py, PyAny>,
    patch_size: [usize; 3],
    uniforms: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray<i64, ndarray::Ix2>>> {
    let uniforms = uniforms
        .as_slice()
        .map_err(|_| not_contiguous("uniforms"))?;
    with_map!(probability_map, |view| {
        let centres = run(py, || sampling::sample_centres(view, patch_size, uniforms))?;
        centres_array(py, &centres)
    })
}

/// Validates an `(I, J, K)` probability map and returns its centre table: the
/// float64 row prefix sums that [`draw_centres`] reuses for every draw.
#[pyfunction]
pub fn centre_table<'py>(
    py: Python<'py>,
    probability_map: &Bound<'py, PyAny>,
    patch_size: [usize; 3],
) -> PyResult<Bound<'py, PyArray<f64, ndarray::Ix1>>> {
    with_map!(probability_map, |view| {
        let table = run(py, || sampling::CentreTable::new(view, patch_size))?;
        Ok(table.prefix().to_vec().into_pyarray(py))
    })
}

/// Draws one patch centre per uniform number from `probability_map` with the
/// `table` that [`centre_table`] built for it; returns `(N, 3)` int64 centres.
#[pyfunction]
pub fn draw_centres<'py>(
    py: Python<'py>,
    probability_map: &Bound<'py, PyAny>,
    patch_size: [usize; 3],
    table: PyReadonlyArray1<'py, f64>,
    uniforms: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray<i64, ndarray::Ix2>>> {
    let uniforms = uniforms
        .as_slice()
        .map_err(|_| not_contiguous("uniforms"))?;
    let prefix = table
        .as_slice()
        .map_err(|_| not_contiguous("table"))?
        .to_vec();
    with_map!(probability_map, |view| {
        let (ni, nj, nk) = view.dim();
        let table = sampling::CentreTable::from_prefix([ni, nj, nk], patch_size, prefix)
            .map_err(crate::boundary::to_py_err)?;
        // A few binary searches and row scans: cheaper than a trip through the pool.
        let centres = table
            .draw(view, uniforms)
            .map_err(crate::boundary::to_py_err)?;
        centres_array(py, &centres)
    })
}

/// Accumulates patches `(B, C, pi, pj, pk)` at `locations` `(B, 6)` into
/// `output` `(C, I, J, K)` in place (and, if given, their weights into `weights`
/// `(1, I, J, K)` in the `average` and `hann` modes); `output`, `weights` and
/// `patches` share one dtype.
///
/// `stale`, a bool array of one flag per output `I` plane, marks planes that
/// hold leftovers instead of zeros (a recycled output): in the `average` and
/// `hann` modes each one a patch reaches is zeroed first and its flag cleared.
#[pyfunction]
#[pyo3(signature = (output, weights, patches, locations, mode, overlap, padded, downsampling_factor, stale=None))]
#[allow(clippy::too_many_arguments)]
pub fn aggregate_patches(
    py: Python<'_>,
    output: &Bound<'_, PyAny>,
    weights: Option<&Bound<'_, PyAny>>,
    patches: &Bound<'_, PyAny>,
    locations: PyReadonlyArray2<'_, i64>,
    mode: &str,
    overlap: [usize; 3],
    padded: bool,
    downsampling_factor: usize,
    mut stale: Option<PyReadwriteArray1<'_, bool>>,
) -> PyResult<()> {
    let mut stale_flags = match stale.as_mut() {
        Some(flags) => Some(flags.as_slice_mut().map_err(|_| not_contiguous("stale"))?),
        None => None,
    };
    let (mode, grid) = overlap_mode_and_grid(mode, overlap, padded, downsampling_factor)?;
    let rows = location_rows(&locations)?;
    macro_rules! accumulate {
        ($t:ty) => {
            if let Some((mut out_guard, batch_guard)) = output_and_patches::<$t>(output, patches)? {
                let mut weight_guard = match weights {
                    Some(w) => {
                        let w = w.cast::<PyArray<$t, Ix4>>().map_err(|_| {
                            PyTypeError::new_err("weights must be a 4D array of the output's dtype")
                        })?;
                        if !w.is_c_contiguous() {
                            return Err(not_contiguous("weights"));
                        }
                        Some(
                            w.try_readwrite()
                                .map_err(|e| PyValueError::new_err(format!("weights: {e}")))?,
                        )
                    }
                    None => None,
                };
                let out_view = out_guard.as_array_mut();
                let weight_view = weight_guard.as_mut().map(|g| g.as_array_mut());
                let batch_view = batch_guard.as_array();
                let stale_flags = stale_flags.take();
                return run_here(py, || match stale_flags {
                    Some(flags) => aggregate::add_batch_zeroing_stale(
                        out_view,
                        weight_view,
                        batch_view,
                        &rows,
                        mode,
                        grid,
                        flags,
                    ),
                    None => {
                        aggregate::add_batch(out_view, weight_view, batch_view, &rows, mode, grid)
                    }
                });
            }
        };
    }
    accumulate!(f32);
    accumulate!(f64);
    accumulate!(u8);
    accumulate!(i16);
    accumulate!(i32);
    accumulate!(i64);
    Err(crate::boundary::unsupported_dtype("output", output))
}

/// [`aggregate_patches`] for a float32/float64 `output` of the `average` or
/// `hann` mode without a weight volume, which then divides each output `I`
/// plane flagged in `complete` (one bool per plane; `stale` as in
/// [`aggregate_patches`], all false for a fresh output) by the weights of the full
/// grid of patches starting at every combination of `grid_starts` (three
/// lists of output-space corners): the caller flags the planes that have
/// received every patch of that grid, and they are divided while in cache.
#[pyfunction]
#[pyo3(signature = (output, patches, locations, mode, overlap, padded, downsampling_factor, stale, complete, grid_starts))]
#[allow(clippy::too_many_arguments)]
pub fn aggregate_patches_dividing(
    py: Python<'_>,
    output: &Bound<'_, PyAny>,
    patches: &Bound<'_, PyAny>,
    locations: PyReadonlyArray2<'_, i64>,
    mode: &str,
    overlap: [usize; 3],
    padded: bool,
    downsampling_factor: usize,
    stale: PyReadwriteArray1<'_, bool>,
    complete: PyReadonlyArray1<'_, bool>,
    grid_starts: [Vec<usize>; 3],
) -> PyResult<()> {
    let (mode, grid) = overlap_mode_and_grid(mode, overlap, padded, downsampling_factor)?;
    let rows = location_rows(&locations)?;
    let complete = complete
        .as_slice()
        .map_err(|_| not_contiguous("complete"))?;
    let mut stale = stale;
    let stale_flags = stale.as_slice_mut().map_err(|_| not_contiguous("stale"))?;
    macro_rules! accumulate {
        ($t:ty) => {
            if let Some((mut out_guard, batch_guard)) = output_and_patches::<$t>(output, patches)? {
                let out_view = out_guard.as_array_mut();
                let batch_view = batch_guard.as_array();
                let (_, ni, nj, nk) = out_view.dim();
                let (_, _, pi, pj, pk) = batch_view.dim();
                let axes = [
                    grid_starts[0].as_slice(),
                    grid_starts[1].as_slice(),
                    grid_starts[2].as_slice(),
                ];
                return run_here(py, || {
                    let profiles =
                        aggregate::grid_profiles::<$t>(axes, [pi, pj, pk], [ni, nj, nk], mode)?;
                    aggregate::add_batch_dividing_complete(
                        out_view,
                        batch_view,
                        &rows,
                        mode,
                        grid,
                        stale_flags,
                        complete,
                        &profiles,
                    )
                });
            }
        };
    }
    accumulate!(f32);
    accumulate!(f64);
    Err(PyTypeError::new_err(
        "output must be a 4D float32 or float64 NumPy array",
    ))
}

/// Divides an `average`/`hann` aggregation `output` `(C, I, J, K)` (float32 or
/// float64) by the weights of a full grid of patches of `patch_shape` starting
/// at every combination of `starts` (three lists of output-space corners),
/// without a weight volume; returns a new array (NaN where no patch reached),
/// or, with `in_place`, divides `output` itself (C-contiguous) and returns it;
/// `planes` (one bool per output `I` plane, only with `in_place`) restricts
/// the division to the planes flagged.
#[pyfunction]
#[pyo3(signature = (output, starts, patch_shape, mode, in_place=false, planes=None))]
pub fn divide_by_grid_weights<'py>(
    py: Python<'py>,
    output: &Bound<'py, PyAny>,
    starts: [Vec<usize>; 3],
    patch_shape: [usize; 3],
    mode: &str,
    in_place: bool,
    planes: Option<PyReadonlyArray1<'py, bool>>,
) -> PyResult<Bound<'py, PyAny>> {
    if planes.is_some() && !in_place {
        return Err(PyValueError::new_err(
            "planes restricts an in-place division: pass in_place=True",
        ));
    }
    let planes = match planes.as_ref() {
        Some(flags) => Some(flags.as_slice().map_err(|_| not_contiguous("planes"))?),
        None => None,
    };
    let mode: aggregate::OverlapMode = mode.parse().map_err(crate::boundary::to_py_err)?;
    let axes = [
        starts[0].as_slice(),
        starts[1].as_slice(),
        starts[2].as_slice(),
    ];
    macro_rules! divide {
        ($t:ty) => {
            if let Ok(out) = output.cast::<PyArray<$t, Ix4>>() {
                if in_place {
                    if !out.is_c_contiguous() {
                        return Err(not_contiguous("output"));
                    }
                    let mut guard = out
                        .try_readwrite()
                        .map_err(|e| PyValueError::new_err(format!("output: {e}")))?;
                    let view = guard.as_array_mut();
                    let (_, ni, nj, nk) = view.dim();
                    run(py, || {
                        let profiles =
                            aggregate::grid_profiles::<$t>(axes, patch_shape, [ni, nj, nk], mode)?;
                        match planes {
                            Some(planes) => {
                                aggregate::divide_planes_in_place(view, &profiles, planes)
                            }
                            None => aggregate::divide_by_profiles_in_place(view, &profiles),
                        }
                    })?;
                    return Ok(output.clone());
                }
                let guard = out
                    .try_readonly()
                    .map_err(|e| PyValueError::new_err(format!("output: {e}")))?;
                let view = guard.as_array();
                let (_, ni, nj, nk) = view.dim();
                let result = run(py, || {
                    let profiles =
                        aggregate::grid_profiles::<$t>(axes, patch_shape, [ni, nj, nk], mode)?;
                    aggregate::divide_by_profiles(view, &profiles)
                })?;
                return Ok(result.into_pyarray(py).into_any());
            }
        };
    }
    divide!(f32);
    divide!(f64);
    Err(PyTypeError::new_err(
        "output must be a 4D float32 or float64 NumPy array",
    ))
}

/// `output` `(C, I, J, K)` borrowed for writing and `patches` `(B, C, pi, pj,
/// pk)` for reading, both C-contiguous arrays of `T`; `None` if `output` is
/// not an array of `T` (the caller tries the next type).
#[allow(clippy::type_complexity)]
fn output_and_patches<'py, T: Element>(
    output: &Bound<'py, PyAny>,
    patches: &Bound<'py, PyAny>,
) -> PyResult<Option<(PyReadwriteArray<'py, T, Ix4>, PyReadonlyArray<'py, T, Ix5>)>> {
    let Ok(out) = output.cast::<PyArray<T, Ix4>>() else {
        return Ok(None);
    };
    let batch = patches
        .cast::<PyArray<T, Ix5>>()
        .map_err(|_| PyTypeError::new_err("patches must be a 5D array of the output's dtype"))?;
    if !out.is_c_contiguous() {
        return Err(not_contiguous("output"));
    }
    if !batch.is_c_contiguous() {
        return Err(not_contiguous("patches"));
    }
    let out_guard = out
        .try_readwrite()
        .map_err(|e| PyValueError::new_err(format!("output: {e}")))?;
    let batch_guard = batch
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("patches: {e}")))?;
    Ok(Some((out_guard, batch_guard)))
}

/// The parsed overlap `mode` and the grid geometry of an aggregation.
fn overlap_mode_and_grid(
    mode: &str,
    overlap: [usize; 3],
    padded: bool,
    downsampling_factor: usize,
) -> PyResult<(aggregate::OverlapMode, aggregate::Grid)> {
    let mode = mode.parse().map_err(crate::boundary::to_py_err)?;
    let grid = aggregate::Grid {
        overlap,
        padded,
        downsampling_factor,
    };
    Ok((mode, grid))
}

/// The `(B, 6)` rows `i0, j0, k0, i1, j1, k1` of `locations`.
fn location_rows(locations: &PyReadonlyArray2<'_, i64>) -> PyResult<Vec<[i64; 6]>> {
    let view = locations.as_array();
    if view.ncols() != 6 {
        return Err(PyValueError::new_err(format!(
            "locations must have shape (B, 6), got {:?}",
            view.shape()
        )));
    }
    Ok(view
        .rows()
        .into_iter()
        .map(|r| {
            let mut row = [0i64; 6];
            row.iter_mut().zip(r.iter()).for_each(|(o, &v)| *o = v);
            row
        })
        .collect())
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(extract_patch, module)?)?;
    module.add_function(wrap_pyfunction!(extract_patches, module)?)?;
    module.add_function(wrap_pyfunction!(sample_centres, module)?)?;
    module.add_function(wrap_pyfunction!(centre_table, module)?)?;
    module.add_function(wrap_pyfunction!(draw_centres, module)?)?;
    module.add_function(wrap_pyfunction!(aggregate_patches, module)?)?;
    module.add_function(wrap_pyfunction!(aggregate_patches_dividing, module)?)?;
    module.add_function(wrap_pyfunction!(divide_by_grid_weights, module)?)?;
    Ok(())
}
