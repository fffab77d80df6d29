//! ONNX model zoo test data (`test_data_set_N/input_0.pb`, `output_0.pb`): run an imported
//! model on the recorded input and compare with the recorded output.

use crate::decode::{self, Values};
use crate::import::{Dims, Imported, bind_from_shape};
use crate::proto::{tensor_shape_proto::dimension::Value as DimValue, type_proto};
use greenbench_core::Backend;
use greenbench_core::graph::DType;
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
/// Read `dir/input_K.pb` and `dir/output_K.pb` for each of the model's inputs and outputs,
/// checked against `imp`'s declared shapes and types; several are packed per example as the
/// IR takes and gives them.
pub fn read(imp: &Imported, dir: &Path) -> Result<TestData, String> {
    let (batch, input) = read_inputs(imp, dir)?;
    let mut outputs = vec![];
    for (k, t) in imp.io.outputs.iter().enumerate() {
        let f = format!("output_{k}.pb");
        let y = read_tensor(dir, &f)?;
        let b = split(dir, &y, &t.dims, &f, &t.name)?;
        if b != batch {
            return Err(format!(
                "{}: {f} holds {b} examples, input_0.pb {batch}",
                dir.display()
            ));
        }
        outputs.push(y.to_f32());
    }
    Ok(TestData {
        dir: dir.to_path_buf(),
        batch,
        input,
        expected: pack(&outputs, batch),
    })
}

fn read_tensor(dir: &Path, f: &str) -> Result<decode::Tensor, String> {
    let p = dir.join(f);
    let t = decode::read_tensor(&p).map_err(|e| e.to_string())?;
    decode::tensor_values(&t, Some(dir)).map_err(|e| format!("{}: {e}", p.display()))
}

/// The batch of a recorded tensor whose per-example dims must be `want`.
fn split(
    dir: &Path,
    t: &decode::Tensor,
    want: &[usize],
    what: &str,
    name: &str,
) -> Result<usize, String> {
    match t.dims.split_first() {
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
    }
}

/// The examples in `dir/input_K.pb` (one file per model input, the ONNX test data layout),
/// checked against `imp`'s declared shapes and element types: their count and the values
/// packed per example in the file's layout (`run --inputs DIR` times these).
pub fn read_inputs(imp: &Imported, dir: &Path) -> Result<(usize, Vec<f32>), String> {
    let io = &imp.io;
    let mut batch = None;
    let mut inputs = vec![];
    for (k, t) in io.inputs.iter().enumerate() {
        let f = format!("input_{k}.pb");
        let x = read_tensor(dir, &f)?;
        let b = split(dir, &x, &t.dims, &f, &t.name)?;
        match batch {
            Some(first) if first != b => {
                return Err(format!(
                    "{}: {f} holds {b} examples, input_0.pb {first}",
                    dir.display()
                ));
            }
            _ => batch = Some(b),
        }
        let v: Vec<f32> = match (&x.values, t.dtype) {
            (Values::I64(v), DType::I64 | DType::I32 | DType::Bool) => {
                v.iter().map(|&t| t as f32).collect()
            }
            (Values::F32(v), DType::F32) => v.clone(),
            _ => {
                return Err(format!(
                    "{}: {f}'s element type does not match the model's input `{}` ({})",
                    dir.display(),
                    t.name,
                    t.dtype.name()
                ));
            }
        };
        inputs.push(v);
    }
    let batch = batch.unwrap_or(1);
    io.check_batch(batch)?;
    Ok((batch, pack(&inputs, batch)))
}

/// Batch-major arrays, one per tensor, as one batch of packed examples: each example's values
/// of each tensor in turn (the IR's packed input, a `Pack`'s output).
pub fn pack(tensors: &[Vec<f32>], batch: usize) -> Vec<f32> {
    if tensors.len() == 1 {
        return tensors[0].clone();
    }
    let mut out = Vec::with_capacity(tensors.iter().map(Vec::len).sum());
    for n in 0..batch {
        for t in tensors {
            let per = t.len() / batch;
            out.extend_from_slice(&t[n * per..(n + 1) * per]);
        }
    }
    out
}

/// The symbolic dimensions of `model`'s inputs bound to the sizes `dir/input_K.pb` has there
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
    let mut dims = Dims::new();
    let declared_inputs = g
        .input
        .iter()
        .filter(|v| !inits.contains(&v.name.as_deref().unwrap_or("")));
    for (k, input) in declared_inputs.enumerate() {
        let Some(type_proto::Value::TensorType(t)) =
            input.r#type.as_ref().and_then(|t| t.value.as_ref())
        else {
            continue;
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
            continue;
        }
        let p = dir.join(format!("input_{k}.pb"));
        let x = decode::read_tensor(&p).map_err(|e| e.to_string())?;
        let name = input.name.clone().unwrap_or_default();
        let actual: Vec<usize> = x.dims.iter().map(|&d| d.max(0) as usize).collect();
        bind_from_shape(&name, &declared, &actual, &mut dims)
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
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
