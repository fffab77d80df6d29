//! The tensors and value descriptions an export writes: initializers, graph inputs and
//! outputs (batch symbolic), and the test data set's input and output tensors.

use super::{BOOL, FLOAT, INPUT, INT32, INT64, OUTPUT};
use crate::proto::{
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    tensor_shape_proto::{Dimension, dimension::Value as DimValue},
    type_proto,
};
use greenbench_core::graph::{DType, Graph};
use prost::Message;

pub(super) fn tensor(name: &str, dims: &[i64], dtype: i32, raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: Some(dtype),
        name: Some(name.into()),
        raw_data: Some(raw),
        ..Default::default()
    }
}

/// A float tensor message.
pub fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> Vec<u8> {
    f32_tensor(name, dims, data).encode_to_vec()
}

pub(super) fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, FLOAT, raw)
}

pub(super) fn i64_tensor(name: &str, dims: &[i64], data: &[i64]) -> TensorProto {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, INT64, raw)
}

/// An int64 tensor message.
pub fn tensor_i64(name: &str, dims: &[i64], data: &[i64]) -> Vec<u8> {
    i64_tensor(name, dims, data).encode_to_vec()
}

pub(super) fn value_info(name: &str, elem: i32, per_example: &[usize]) -> ValueInfoProto {
    let dim = |v| Dimension {
        value: Some(v),
        ..Default::default()
    };
    let mut dims = vec![dim(DimValue::DimParam("N".into()))];
    dims.extend(
        per_example
            .iter()
            .map(|&d| dim(DimValue::DimValue(d as i64))),
    );
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim: dims }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ONNX element type of an input's dtype.
pub(super) fn elem_type(d: DType) -> i32 {
    match d {
        DType::F32 => FLOAT,
        DType::I64 => INT64,
        DType::I32 => INT32,
        DType::Bool => BOOL,
    }
}

/// The graph's inputs: `input` (int64 for token ids), or each named input with its dtype.
pub(super) fn graph_inputs(g: &Graph) -> Vec<ValueInfoProto> {
    if g.input.parts.is_empty() {
        let ty = if g.input.token_vocab.is_some() {
            INT64
        } else {
            FLOAT
        };
        return vec![value_info(INPUT, ty, &g.input.shape)];
    }
    g.input
        .parts
        .iter()
        .map(|p| value_info(&p.name, elem_type(p.dtype), &p.shape))
        .collect()
}

/// The graph's outputs: `output`, or each named output of a [`Op::Pack`](greenbench_core::graph::Op::Pack).
pub(super) fn graph_outputs(g: &Graph) -> Vec<ValueInfoProto> {
    if g.input.parts.is_empty() && g.output_parts().len() == 1 {
        return vec![value_info(OUTPUT, FLOAT, g.output_shape())];
    }
    g.output_parts()
        .iter()
        .map(|(n, s)| value_info(n, FLOAT, s))
        .collect()
}

/// Split a batch of packed per-example values (`len` each) into its parts' batch-major
/// arrays: part `k` has `lens[k]` values per example.
pub fn unpack(packed: &[f32], lens: &[usize]) -> Vec<Vec<f32>> {
    let len: usize = lens.iter().sum();
    let batch = packed.len() / len.max(1);
    let mut out: Vec<Vec<f32>> = lens
        .iter()
        .map(|&l| Vec::with_capacity(batch * l))
        .collect();
    for example in packed.chunks(len) {
        let mut at = 0;
        for (k, &l) in lens.iter().enumerate() {
            out[k].extend_from_slice(&example[at..at + l]);
            at += l;
        }
    }
    out
}

/// The input tensors of a test data set (`input_0.pb`, ...): f32 values, or int64 (int32,
/// bool) for ids and masks, each named as the graph's input.
pub fn input_tensors(g: &Graph, batch: usize, input: &[f32]) -> Vec<Vec<u8>> {
    let parts = g.input.parts_or_whole();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    parts
        .iter()
        .zip(unpack(input, &lens))
        .map(|(p, v)| {
            let mut dims = vec![batch as i64];
            dims.extend(p.shape.iter().map(|&d| d as i64));
            let name = if g.input.parts.is_empty() {
                INPUT
            } else {
                p.name.as_str()
            };
            let raw: Vec<u8> = match p.dtype {
                DType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                DType::I64 => v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(),
                DType::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
                DType::Bool => v.iter().map(|&x| u8::from(x != 0.0)).collect(),
            };
            tensor(name, &dims, elem_type(p.dtype), raw).encode_to_vec()
        })
        .collect()
}

/// The output tensors of a test data set (`output_0.pb`, ...), named as the graph's outputs.
pub fn output_tensors(g: &Graph, batch: usize, output: &[f32]) -> Vec<Vec<u8>> {
    let parts = g.output_parts();
    let lens: Vec<usize> = parts.iter().map(|(_, s)| s.iter().product()).collect();
    let single = g.input.parts.is_empty() && parts.len() == 1;
    parts
        .iter()
        .zip(unpack(output, &lens))
        .map(|((n, s), v)| {
            let mut dims = vec![batch as i64];
            dims.extend(s.iter().map(|&d| d as i64));
            tensor_f32(if single { OUTPUT } else { n }, &dims, &v)
        })
        .collect()
}
