//! Bindings of the NIfTI reader and writer.

use std::path::PathBuf;

use ndarray::Ix4;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use torchvox_core::io::nifti::{self, Header, VolumeData, WriteOptions};

use crate::boundary::{run, run_here};
use crate::with_volume;

fn affine_array<'py>(py: Python<'py>, header: &Header) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let affine = header.affine().map_err(crate::boundary::to_py_err)?;
    let flat: Vec<f64> = affine.iter().flatten().copied().collect();
    let array = ndarray::Array2::from_shape_vec((4, 4), flat)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(array.into_pyarray(py))
}

fn header_dict<'py>(py: Python<'py>, header: &Header) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let [ni, nj, nk] = header.spatial_shape();
    dict.set_item("shape", (header.channels(), ni, nj, nk))?;
    dict.set_item("affine", affine_array(py, header)?)?;
    dict.set_item("version", header.version)?;
    dict.set_item("big_endian", header.big_endian)?;
    dict.set_item("dim", header.dim.to_vec())?;
    dict.set_item("datatype", header.datatype)?;
    dict.set_item("pixdim", header.pixdim.to_vec())?;
    dict.set_item("scaling", header.scaling())?;
    dict.set_item("qform_code", header.qform_code)?;
    dict.set_item("sform_code", header.sform_code)?;
    dict.set_item("quatern", header.quatern.to_vec())?;
    dict.set_item("qoffset", header.qoffset.to_vec())?;
    dict.set_item("srow", header.srow.map(|row| row.to_vec()).to_vec())?;
    dict.set_item("xyzt_units", header.xyzt_units)?;
    dict.set_item("intent_code", header.intent_code)?;
    dict.set_item("descrip", header.descrip.clone())?;
    Ok(dict)
}

/// Reads only the header of a `.nii`/`.nii.gz`: a dict with `shape`
/// `(C, I, J, K)`, `affine` (4x4 RAS), `datatype`, `scaling`, the qform and
/// sform fields and codes, units...
#[pyfunction]
pub fn nifti_read_header<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let header = py
        .detach(|| nifti::read_header(&path))
        .map_err(crate::boundary::to_py_err)?;
    header_dict(py, &header)
}

/// Reads a `.nii`/`.nii.gz` (or only `region`, `((i0, i1), (j0, j1), (k0, k1))`)
/// as a `(C, I, J, K)` array and its 4x4 affine.
#[pyfunction]
#[pyo3(signature = (path, region=None))]
pub fn nifti_read<'py>(
    py: Python<'py>,
    path: PathBuf,
    region: Option<[(usize, usize); 3]>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray2<f64>>)> {
    // `read` decodes small regions on this thread and enters the pool itself
    // for large ones: a hand-off to the pool would cost more than the read.
    let (header, data) = run_here(py, || nifti::read(&path, region))?;
    let array = match data {
        VolumeData::U8(a) => a.into_pyarray(py).into_any(),
        VolumeData::I8(a) => a.into_pyarray(py).into_any(),
        VolumeData::I16(a) => a.into_pyarray(py).into_any(),
        VolumeData::I32(a) => a.into_pyarray(py).into_any(),
        VolumeData::I64(a) => a.into_pyarray(py).into_any(),
        VolumeData::U64(a) => a.into_pyarray(py).into_any(),
        VolumeData::F32(a) => a.into_pyarray(py).into_any(),
        VolumeData::F64(a) => a.into_pyarray(py).into_any(),
    };
    Ok((array, affine_array(py, &header)?))
}

/// Writes a `(C, I, J, K)` array with a 4x4 affine as NIfTI-1 (or NIfTI-2);
/// `compression` is a gzip level (0-12) or None for an uncompressed file.
#[pyfunction]
#[pyo3(signature = (path, volume, affine, compression=None, nifti2=false))]
pub fn nifti_write(
    py: Python<'_>,
    path: PathBuf,
    volume: &Bound<'_, PyAny>,
    affine: PyReadonlyArray2<'_, f64>,
    compression: Option<i32>,
    nifti2: bool,
) -> PyResult<()> {
    let affine_view = affine.as_array();
    if affine_view.shape() != [4, 4] {
        return Err(PyValueError::new_err(format!(
            "affine must have shape (4, 4), got {:?}",
            affine_view.shape()
        )));
    }
    let mut matrix = [[0.0; 4]; 4];
    for ((r, c), &v) in affine_view.indexed_iter() {
        matrix[r][c] = v;
    }
    let options = WriteOptions {
        compression,
        nifti2,
    };
    with_volume!(volume, "volume", Ix4, |view: T| {
        run(py, || nifti::write(&path, view, &matrix, options))
    })
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(nifti_read_header, module)?)?;
    module.add_function(wrap_pyfunction!(nifti_read, module)?)?;
    module.add_function(wrap_pyfunction!(nifti_write, module)?)?;
    Ok(())
}
