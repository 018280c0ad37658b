//! Reading the boxes that restrict a kernel to part of its grid.

use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use torchvox_core::regions::Regions;

use crate::boundary::to_py_err;

/// The voxels of a grid of `shape` inside the boxes of an `(N, 6)` int64
/// array, each row `(i0, j0, k0, i1, j1, k1)`: first corner, then the corner
/// past the end.
pub fn from_boxes(boxes: &PyReadonlyArray2<'_, i64>, shape: [usize; 3]) -> PyResult<Regions> {
    let view = boxes.as_array();
    if view.ncols() != 6 {
        return Err(PyValueError::new_err(format!(
            "boxes must have shape (N, 6), got {:?}",
            boxes.shape()
        )));
    }
    let parsed = view
        .rows()
        .into_iter()
        .map(|row| {
            let mut bounds = [0usize; 6];
            for (slot, &v) in bounds.iter_mut().zip(row.iter()) {
                *slot = usize::try_from(v).map_err(|_| {
                    PyValueError::new_err(format!("box bounds must be non-negative, got {v}"))
                })?;
            }
            Ok(bounds)
        })
        .collect::<PyResult<Vec<_>>>()?;
    Regions::from_boxes(shape, &parsed).map_err(to_py_err)
}
