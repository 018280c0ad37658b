//! Bindings of the intensity kernels: masked statistics, rescaling,
//! z-normalisation and clamping.

use ndarray::{Array1, Array2, Ix4};
use numpy::{IntoPyArray, PyArray4, PyArrayMethods, PyReadonlyArray4, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use torchvox_core::intensity::minimum as minimum_core;
use torchvox_core::intensity::radix_percentiles;
use torchvox_core::intensity::rescale::{self as rescale_core, RescaleParams};
use torchvox_core::intensity::statistics::{
    self as statistics_core, HistogramRequest, Statistics, StatisticsRequest, Summary,
};

use crate::boundary::{not_contiguous, run};
use crate::with_volume;

/// A mask array borrowed read-only from NumPy: uint8 (non-zero = inside) or bool.
enum Mask<'py> {
    U8(PyReadonlyArray4<'py, u8>),
    Bool(PyReadonlyArray4<'py, bool>),
}

/// Extracts an optional `(1 or C, I, J, K)` uint8 or bool mask.
fn extract_mask<'py>(mask: Option<&Bound<'py, PyAny>>) -> PyResult<Option<Mask<'py>>> {
    let Some(mask) = mask.filter(|m| !m.is_none()) else {
        return Ok(None);
    };
    let ndim: usize = mask
        .getattr("ndim")
        .and_then(|n| n.extract())
        .map_err(|_| PyTypeError::new_err("mask must be a NumPy array"))?;
    if ndim != 4 {
        return Err(PyValueError::new_err(format!(
            "mask must have 4 dimensions (1 or C, I, J, K), got {ndim}"
        )));
    }
    let readonly_error = |e: numpy::BorrowError| PyValueError::new_err(format!("mask: {e}"));
    if let Ok(array) = mask.cast::<PyArray4<u8>>() {
        if !array.is_c_contiguous() {
            return Err(not_contiguous("mask"));
        }
        return Ok(Some(Mask::U8(
            array.try_readonly().map_err(readonly_error)?,
        )));
    }
    if let Ok(array) = mask.cast::<PyArray4<bool>>() {
        if !array.is_c_contiguous() {
            return Err(not_contiguous("mask"));
        }
        return Ok(Some(Mask::Bool(
            array.try_readonly().map_err(readonly_error)?,
        )));
    }
    let dtype = mask
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| mask.get_type().to_string());
    Err(PyTypeError::new_err(format!(
        "mask has dtype {dtype}; expected uint8 or bool"
    )))
}

fn counts_to_i64(counts: &[u64]) -> Vec<i64> {
    // A histogram count never exceeds the number of voxels, far below i64::MAX.
    counts
        .iter()
        .map(|&c| i64::try_from(c).unwrap_or(i64::MAX))
        .collect()
}

/// Converts the core result to the documented dictionary of NumPy arrays.
fn statistics_to_dict<'py>(
    py: Python<'py>,
    statistics: Statistics,
    histogram: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let channels = &statistics.channels;
    let per_channel = |f: fn(&Summary) -> f64| -> Array1<f64> { channels.iter().map(f).collect() };
    let by_channel = PyDict::new(py);
    let counts: Array1<i64> = channels
        .iter()
        .map(|s| i64::try_from(s.count).unwrap_or(i64::MAX))
        .collect();
    by_channel.set_item("count", counts.into_pyarray(py))?;
    let has_nan: Array1<bool> = channels.iter().map(|s| s.has_nan).collect();
    by_channel.set_item("has_nan", has_nan.into_pyarray(py))?;
    by_channel.set_item("min", per_channel(|s| s.min).into_pyarray(py))?;
    by_channel.set_item("max", per_channel(|s| s.max).into_pyarray(py))?;
    by_channel.set_item("mean", per_channel(|s| s.mean).into_pyarray(py))?;
    by_channel.set_item("std", per_channel(|s| s.std).into_pyarray(py))?;
    by_channel.set_item(
        "std_unbiased",
        per_channel(|s| s.std_unbiased).into_pyarray(py),
    )?;
    let q = statistics.total.percentiles.len();
    let percentiles = Array2::from_shape_vec(
        (channels.len(), q),
        channels
            .iter()
            .flat_map(|s| s.percentiles.iter().copied())
            .collect(),
    )
    .map_err(|e| PyValueError::new_err(e.to_string()))?;
    by_channel.set_item("percentiles", percentiles.into_pyarray(py))?;
    if histogram {
        let bins = statistics.total.histogram.len();
        let hist = Array2::from_shape_vec(
            (channels.len(), bins),
            channels
                .iter()
                .flat_map(|s| counts_to_i64(&s.histogram))
                .collect(),
        )
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        by_channel.set_item("histogram", hist.into_pyarray(py))?;
    } else {
        by_channel.set_item("histogram", py.None())?;
    }

    let total = PyDict::new(py);
    let t = &statistics.total;
    total.set_item("count", t.count)?;
    total.set_item("has_nan", t.has_nan)?;
    total.set_item("min", t.min)?;
    total.set_item("max", t.max)?;
    total.set_item("mean", t.mean)?;
    total.set_item("std", t.std)?;
    total.set_item("std_unbiased", t.std_unbiased)?;
    total.set_item("percentiles", t.percentiles.clone().into_pyarray(py))?;
    if histogram {
        total.set_item("histogram", counts_to_i64(&t.histogram).into_pyarray(py))?;
    } else {
        total.set_item("histogram", py.None())?;
    }

    let result = PyDict::new(py);
    result.set_item("channels", by_channel)?;
    result.set_item("total", total)?;
    if histogram {
        result.set_item("bin_edges", statistics.bin_edges.into_pyarray(py))?;
    } else {
        result.set_item("bin_edges", py.None())?;
    }
    Ok(result)
}

/// Masked statistics of a `(C, I, J, K)` array per channel and over all channels.
#[pyfunction]
#[pyo3(signature = (volume, mask=None, percentiles=None, num_bins=None, histogram_range=None))]
pub fn statistics<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    mask: Option<&Bound<'py, PyAny>>,
    percentiles: Option<Vec<f64>>,
    num_bins: Option<usize>,
    histogram_range: Option<(f64, f64)>,
) -> PyResult<Bound<'py, PyDict>> {
    if histogram_range.is_some() && num_bins.is_none() {
        return Err(PyValueError::new_err(
            "histogram_range was given without num_bins",
        ));
    }
    let request = StatisticsRequest {
        percentiles: percentiles.unwrap_or_default(),
        histogram: num_bins.map(|num_bins| HistogramRequest {
            num_bins,
            range: histogram_range,
        }),
    };
    let histogram = request.histogram.is_some();
    let mask = extract_mask(mask)?;
    with_volume!(volume, "volume", Ix4, |view: T| {
        let result = match &mask {
            None => run(py, || {
                statistics_core::statistics::<T, u8>(view, None, &request)
            })?,
            Some(Mask::U8(m)) => {
                let m = m.as_array();
                run(py, || statistics_core::statistics(view, Some(m), &request))?
            }
            Some(Mask::Bool(m)) => {
                let m = m.as_array();
                run(py, || statistics_core::statistics(view, Some(m), &request))?
            }
        };
        statistics_to_dict(py, result, histogram)
    })
}

/// Minimum, maximum and percentiles of all the values of a `(C, I, J, K)` array.
#[pyfunction]
pub fn range_percentiles<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    percentiles: Vec<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let summary = run(py, || {
            radix_percentiles::range_and_percentiles(view, &percentiles)
        })?;
        let result = PyDict::new(py);
        result.set_item("has_nan", summary.has_nan)?;
        result.set_item("min", summary.min)?;
        result.set_item("max", summary.max)?;
        result.set_item("percentiles", summary.percentiles)?;
        Ok(result)
    })
}

/// Minimum of every channel of a `(C, I, J, K)` array (NaN for a channel with NaN).
#[pyfunction]
pub fn channel_minima(py: Python<'_>, volume: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        run(py, || minimum_core::channel_minima(view))
    })
}

/// Linear rescaling of `(C, I, J, K)` intensities to float32 (TorchIO's RescaleIntensity).
#[pyfunction]
#[pyo3(signature = (volume, in_min, in_max, out_min=0.0, out_max=1.0, clip_min=None, clip_max=None))]
#[allow(clippy::too_many_arguments)]
pub fn rescale<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    in_min: f64,
    in_max: f64,
    out_min: f64,
    out_max: f64,
    clip_min: Option<f64>,
    clip_max: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let params = RescaleParams {
        in_min,
        in_max,
        out_min,
        out_max,
        clip_min,
        clip_max,
    };
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || rescale_core::rescale(view, &params))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// `(x - mean) / std` of a `(C, I, J, K)` array, as float32.
#[pyfunction]
pub fn z_normalize<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    mean: f64,
    std: f64,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || rescale_core::z_normalize(view, mean, std))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Clips a `(C, I, J, K)` array to `[min, max]`, keeping its dtype.
#[pyfunction]
#[pyo3(signature = (volume, min=None, max=None))]
pub fn clamp<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    min: Option<f64>,
    max: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || rescale_core::clamp(view, min, max))?;
        Ok(out.into_pyarray(py).into_any())
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(statistics, module)?)?;
    module.add_function(wrap_pyfunction!(range_percentiles, module)?)?;
    module.add_function(wrap_pyfunction!(channel_minima, module)?)?;
    module.add_function(wrap_pyfunction!(rescale, module)?)?;
    module.add_function(wrap_pyfunction!(z_normalize, module)?)?;
    module.add_function(wrap_pyfunction!(clamp, module)?)?;
    Ok(())
}
