//! The one path every binding takes: release the GIL, run the kernel inside the
//! process-local pool, and map core errors to Python exceptions.

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use torchvox_core::{parallel, Error};

/// Maps a core error to the Python exception a user should see.
pub fn to_py_err(error: Error) -> PyErr {
    match error {
        Error::Shape(_) | Error::InvalidArgument(_) | Error::Empty(_) => {
            PyValueError::new_err(error.to_string())
        }
        Error::ThreadPool(_) => PyRuntimeError::new_err(error.to_string()),
    }
}

/// Runs `kernel` without the GIL, inside the pool, and maps its error.
pub fn run<T, F>(py: Python<'_>, kernel: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> torchvox_core::Result<T> + Send,
{
    py.detach(|| parallel::install(kernel)).map_err(to_py_err)
}

/// Runs `kernel` without the GIL on the calling thread, and maps its error.
///
/// For kernels that are cheaper than a hand-off to the pool (a small read),
/// and for those that share their work between the caller and the pool
/// themselves (see `torchvox_core::parallel::share_items`).
pub fn run_here<T, F>(py: Python<'_>, kernel: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> torchvox_core::Result<T> + Send,
{
    py.detach(kernel).map_err(to_py_err)
}

/// Error for an array whose dtype no kernel accepts.
pub fn unsupported_dtype(argument: &str, array: &Bound<'_, PyAny>) -> PyErr {
    let dtype = array
        .getattr("dtype")
        .map(|d| d.to_string())
        .unwrap_or_else(|_| array.get_type().to_string());
    PyTypeError::new_err(format!(
        "{argument} has dtype {dtype}; expected one of float32, float64, uint8, int16, int32, int64"
    ))
}

/// Error for an array that is not C-contiguous.
pub fn not_contiguous(argument: &str) -> PyErr {
    PyValueError::new_err(format!(
        "{argument} must be a C-contiguous array (torchvox._backend makes tensors contiguous)"
    ))
}

/// Calls `$body` with `$view` bound to a read-only `ArrayView<T, D>` of the
/// NumPy array `$array`, for whichever supported voxel type `T` it holds.
///
/// `$dim` is the ndarray dimension type (e.g. `Ix4`); arrays of another
/// dimensionality or dtype raise a clear `ValueError`/`TypeError`.
#[macro_export]
macro_rules! with_volume {
    ($array:expr, $name:expr, $dim:ty, |$view:ident: $t:ident| $body:expr) => {{
        let array: &pyo3::Bound<'_, pyo3::PyAny> = $array;
        let ndim: usize = array
            .getattr("ndim")
            .and_then(|n| n.extract())
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err(format!("{} must be a NumPy array", $name)))?;
        let expected = <$dim as ndarray::Dimension>::NDIM.unwrap_or(ndim);
        if ndim != expected {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "{} must have {} dimensions, got {}", $name, expected, ndim
            )));
        }
        $crate::with_volume!(@try array, $name, $dim, $view, $t, $body, f32, f64, u8, i16, i32, i64)
    }};
    (@try $array:ident, $name:expr, $dim:ty, $view:ident, $t:ident, $body:expr, $($ty:ty),*) => {{
        $(
            if let Ok(typed) = $array.cast::<numpy::PyArray<$ty, $dim>>() {
                if !numpy::PyUntypedArrayMethods::is_c_contiguous(typed) {
                    return Err($crate::boundary::not_contiguous($name));
                }
                let guard = numpy::PyArrayMethods::try_readonly(typed).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!("{}: {}", $name, e))
                })?;
                #[allow(dead_code)]
                type $t = $ty;
                let $view = guard.as_array();
                return $body;
            }
        )*
        return Err($crate::boundary::unsupported_dtype($name, $array));
    }};
}
