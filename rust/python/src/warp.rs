//! Bindings of the warp kernel, B-spline fields and field inversion.

use ndarray::{Ix4, IxDyn};
use numpy::{
    IntoPyArray, PyArray, PyArrayMethods, PyReadonlyArray, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use torchvox_core::affine::{self, Matrix4};
use torchvox_core::spatial::{
    bspline, displacement, interpolation::Interpolation, warp as core_warp,
};

use crate::boundary::{run, to_py_err};
use crate::regions;
use crate::with_volume;

/// Reads a `(4, 4)` float64 array into a validated matrix.
fn matrix(array: &Bound<'_, PyAny>, name: &str) -> PyResult<Matrix4> {
    let typed = array.cast::<PyArray<f64, IxDyn>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a float64 NumPy array of shape (4, 4)"
        ))
    })?;
    let guard = typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))?;
    let view = guard.as_array();
    let view = view.into_dimensionality::<ndarray::Ix2>().map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must have shape (4, 4), got {:?}",
            typed.shape()
        ))
    })?;
    affine::from_view(view, name).map_err(to_py_err)
}

/// Reads a `(3, I, J, K)` float32 C-contiguous displacement field.
fn field_guard<'py>(
    array: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray<'py, f32, Ix4>> {
    let typed = array.cast::<PyArray<f32, Ix4>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a float32 NumPy array of shape (3, I, J, K)"
        ))
    })?;
    if !typed.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{name} must be C-contiguous"
        )));
    }
    typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// Reads `(n0, n1, n2, 3)` float64 B-spline control points.
fn control_points_guard<'py>(
    array: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<PyReadonlyArray<'py, f64, Ix4>> {
    let typed = array.cast::<PyArray<f64, Ix4>>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{name} must be a float64 NumPy array of shape (n0, n1, n2, 3)"
        ))
    })?;
    typed
        .try_readonly()
        .map_err(|e| PyValueError::new_err(format!("{name}: {e}")))
}

/// One parsed chain element before views are taken.
enum Parsed<'py> {
    Affine(Matrix4),
    Field(PyReadonlyArray<'py, f32, Ix4>, Matrix4),
    BSpline(PyReadonlyArray<'py, f64, Ix4>, [usize; 3], Matrix4),
}

/// Resamples `volume` `(C, I, J, K)` with voxel -> world `input_affine` onto the
/// grid (`output_shape`, `output_affine`) through `transforms` (a list of
/// `(4, 4)` float64 world -> world affines, `(field (3, I, J, K) float32 mm,
/// field_affine (4, 4))` tuples and `(control_points (n0, n1, n2, 3) float64 mm,
/// shape (I, J, K), affine (4, 4))` B-spline fields on an image grid, applied in
/// order to output-side world points),
/// with `interpolation` in {'nearest', 'linear', 'bspline', 'cubic', 'label'}
/// and one `fill` value per channel. Returns an array of the input's dtype.
///
/// With `boxes` (an `(N, 6)` int64 array of `(i0, j0, k0, i1, j1, k1)` output
/// boxes), only the voxels inside them are sure to be computed (the others
/// are zero or their value).
#[pyfunction]
#[pyo3(signature = (
    volume, input_affine, output_shape, output_affine, transforms, interpolation, fill, boxes=None
))]
#[allow(clippy::too_many_arguments)]
pub fn warp<'py>(
    py: Python<'py>,
    volume: &Bound<'py, PyAny>,
    input_affine: &Bound<'py, PyAny>,
    output_shape: (usize, usize, usize),
    output_affine: &Bound<'py, PyAny>,
    transforms: Vec<Bound<'py, PyAny>>,
    interpolation: &str,
    fill: Vec<f64>,
    boxes: Option<PyReadonlyArray2<'py, i64>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mode = Interpolation::from_name(interpolation).map_err(to_py_err)?;
    let shape = [output_shape.0, output_shape.1, output_shape.2];
    let regions = boxes
        .map(|boxes| regions::from_boxes(&boxes, shape))
        .transpose()?;
    let input_affine = matrix(input_affine, "input_affine")?;
    let target = core_warp::Grid {
        shape: [output_shape.0, output_shape.1, output_shape.2],
        affine: matrix(output_affine, "output_affine")?,
    };
    let mut parsed = Vec::with_capacity(transforms.len());
    for (position, item) in transforms.iter().enumerate() {
        if let Ok(pair) = item.cast::<PyTuple>() {
            if pair.len() == 3 {
                let points = control_points_guard(
                    &pair.get_item(0)?,
                    &format!("control points of transform {position}"),
                )?;
                let shape: (usize, usize, usize) = pair.get_item(1)?.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "shape of transform {position} must be three non-negative ints"
                    ))
                })?;
                let grid_affine = matrix(
                    &pair.get_item(2)?,
                    &format!("affine of transform {position}"),
                )?;
                parsed.push(Parsed::BSpline(
                    points,
                    [shape.0, shape.1, shape.2],
                    grid_affine,
                ));
                continue;
            }
            if pair.len() != 2 {
                return Err(PyValueError::new_err(format!(
                    "transform {position} must be a (4, 4) affine, a (field, affine) pair \
                     or a (control_points, shape, affine) triple, got a tuple of {}",
                    pair.len()
                )));
            }
            let field = field_guard(
                &pair.get_item(0)?,
                &format!("field of transform {position}"),
            )?;
            let field_affine = matrix(
                &pair.get_item(1)?,
                &format!("affine of transform {position}"),
            )?;
            parsed.push(Parsed::Field(field, field_affine));
        } else {
            parsed.push(Parsed::Affine(matrix(
                item,
                &format!("transform {position}"),
            )?));
        }
    }
    let chain: Vec<core_warp::Step<'_>> = parsed
        .iter()
        .map(|p| match p {
            Parsed::Affine(m) => core_warp::Step::Affine(*m),
            Parsed::Field(guard, m) => core_warp::Step::Field {
                field: guard.as_array(),
                affine: *m,
            },
            Parsed::BSpline(guard, shape, m) => core_warp::Step::BSpline {
                coefficients: guard.as_array(),
                shape: *shape,
                affine: *m,
            },
        })
        .collect();
    with_volume!(volume, "volume", Ix4, |view: T| {
        let out = run(py, || {
            core_warp::warp_regions(
                view,
                &input_affine,
                &target,
                &chain,
                mode,
                &fill,
                regions.as_ref(),
            )
        })?;
        Ok(out.into_pyarray(py).into_any())
    })
}

/// Evaluates cubic B-spline control points `(n0, n1, n2, 3)` (float64, mm,
/// RAS components; `sitk.BSplineTransformInitializer` grid conventions) into a
/// dense `(3, I, J, K)` float32 displacement field for spatial `shape`.
#[pyfunction]
pub fn bspline_field<'py>(
    py: Python<'py>,
    control_points: &Bound<'py, PyAny>,
    shape: (usize, usize, usize),
) -> PyResult<Bound<'py, PyAny>> {
    let guard = control_points_guard(control_points, "control_points")?;
    let view = guard.as_array();
    let out = run(py, || {
        bspline::bspline_field(view, [shape.0, shape.1, shape.2])
    })?;
    Ok(out.into_pyarray(py).into_any())
}

/// Numerically inverts the displacement field `(3, I, J, K)` float32 (mm) on
/// the grid with voxel -> world `affine`: returns `v` with
/// `q + v(q) + u(q + v(q)) = q` (fixed-point iteration).
#[pyfunction]
#[pyo3(signature = (field, affine, iterations = 50, tolerance = 1e-5))]
pub fn invert_field<'py>(
    py: Python<'py>,
    field: &Bound<'py, PyAny>,
    affine: &Bound<'py, PyAny>,
    iterations: usize,
    tolerance: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let guard = field_guard(field, "field")?;
    let affine = matrix(affine, "affine")?;
    let view = guard.as_array();
    let out = run(py, || {
        displacement::invert_field(view, &affine, iterations, tolerance)
    })?;
    Ok(out.into_pyarray(py).into_any())
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(warp, module)?)?;
    module.add_function(wrap_pyfunction!(bspline_field, module)?)?;
    module.add_function(wrap_pyfunction!(invert_field, module)?)?;
    Ok(())
}
