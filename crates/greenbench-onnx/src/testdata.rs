//! ONNX model zoo test data (`test_data_set_N/input_0.pb`, `output_0.pb`): run an imported
//! model on the recorded input and compare with the recorded output.

use crate::decode::{self, Values};
use crate::import::{Dims, Imported, bind_from_shape};
use crate::proto::{tensor_shape_proto::dimension::Value as DimValue, type_proto};
use greenbench_core::Backend;
use greenbench_core::reference::{Diff, diff, run_reference};
use std::path::{Path, PathBuf};

/// One test data set, checked against the model's declared input and output.
#[derive(Clone, Debug)]
pub struct TestData {
    pub dir: PathBuf,
    /// The batch is the test data's own leading dimension.
    pub batch: usize,
    /// The input in the file's layout (token ids as f32).
    pub input: Vec<f32>,
    /// The recorded output in the file's layout.
    pub expected: Vec<f32>,
}

/// Read `dir/input_0.pb` and `dir/output_0.pb`, checked against `imp`'s declared shapes.
pub fn read(imp: &Imported, dir: &Path) -> Result<TestData, String> {
    let io = &imp.io;
    let read = |f: &str| -> Result<decode::Tensor, String> {
        let p = dir.join(f);
        let t = decode::read_tensor(&p).map_err(|e| e.to_string())?;
        decode::tensor_values(&t, Some(dir)).map_err(|e| format!("{}: {e}", p.display()))
    };
    let x = read("input_0.pb")?;
    let y = read("output_0.pb")?;
    let split =
        |t: &decode::Tensor, want: &[usize], what: &str, name: &str| match t.dims.split_first() {
            Some((&b, per)) if per == want && b >= 1 => Ok(b),
            _ => Err(format!(
                "{}: {what} has dims {:?}; the model's `{name}` is [N, {}]",
                dir.display(),
                t.dims,
                want.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
    let batch = split(&x, &io.input_dims, "input_0.pb", &io.input_name)?;
    let yb = split(&y, &io.output_dims, "output_0.pb", &io.output_name)?;
    if yb != batch {
        return Err(format!(
            "{}: input_0.pb holds {batch} examples, output_0.pb {yb}",
            dir.display()
        ));
    }
    io.check_batch(batch)?;
    let input = match (&x.values, io.input_int) {
        (Values::I64(v), true) => v.iter().map(|&t| t as f32).collect(),
        (Values::F32(v), false) => v.clone(),
        _ => {
            return Err(format!(
                "{}: input_0.pb's element type does not match the model's input",
                dir.display()
            ));
        }
    };
    Ok(TestData {
        dir: dir.to_path_buf(),
        batch,
        input,
        expected: y.to_f32(),
    })
}

/// The symbolic dimensions of `model`'s input bound to the sizes `dir/input_0.pb` has there
/// (`verify --test-data` on a model exported with dynamic axes): empty for a model without
/// any.
pub fn dims_from(model: &Path, dir: &Path) -> Result<Dims, String> {
    let m = decode::read_model(model).map_err(|e| e.to_string())?;
    let Some(g) = &m.graph else {
        return Ok(Dims::new());
    };
    let inits: Vec<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let Some(input) = g
        .input
        .iter()
        .find(|v| !inits.contains(&v.name.as_deref().unwrap_or("")))
    else {
        return Ok(Dims::new());
    };
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(Dims::new());
    };
    let declared: Vec<Result<usize, String>> = t
        .shape
        .iter()
        .flat_map(|s| &s.dim)
        .map(|d| match &d.value {
            Some(DimValue::DimParam(p)) => Err(p.clone()),
            Some(DimValue::DimValue(v)) => Ok((*v).max(0) as usize),
            None => Ok(0),
        })
        .collect();
    if declared.iter().skip(1).all(|d| d.is_ok()) {
        return Ok(Dims::new());
    }
    let p = dir.join("input_0.pb");
    let x = decode::read_tensor(&p).map_err(|e| e.to_string())?;
    let mut dims = Dims::new();
    let name = input.name.clone().unwrap_or_default();
    let actual: Vec<usize> = x.dims.iter().map(|&d| d.max(0) as usize).collect();
    bind_from_shape(&name, &declared, &actual, &mut dims)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(dims)
}

/// Run the test data on `backend` (or, with `None`, greenbench's plain-loop reference
/// interpreter) and compare with the recorded output.
pub fn check(imp: &Imported, td: &TestData, backend: Option<&dyn Backend>) -> Result<Diff, String> {
    let m = &imp.model;
    let x = imp.io.input_to_ir(&td.input, td.batch);
    m.graph.check_input(&x, td.batch)?;
    let y = match backend {
        Some(b) => {
            let mut p = b
                .prepare(&m.graph, &m.weights, td.batch)
                .map_err(|e| e.to_string())?;
            p.run(&x).map_err(|e| e.to_string())?.to_vec()
        }
        None => run_reference(&m.graph, &m.weights, &x, td.batch),
    };
    let got = imp.io.output_from_ir(&y, td.batch);
    Ok(diff(&got, &td.expected))
}
