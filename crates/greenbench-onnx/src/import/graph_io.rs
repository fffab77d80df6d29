//! The graph's inputs and outputs: each declared input read (batch, bound dimensions, element
//! type), several named inputs emitted as the IR's `Input` nodes with the role each plays
//! (token ids, type ids, an attention mask, values), and several outputs packed into one.

use super::boundary::{IoTensor, Layout};
use super::dims::Dims;
use super::shape::MAX_INPUT_ELEMENTS;
use super::values::{Act, Importer, Val};
use crate::proto::{
    ValueInfoProto, tensor_proto::DataType, tensor_shape_proto::dimension::Value as DimValue,
    type_proto,
};
use greenbench_core::graph::{DType, InputPart, InputRole, Op, fmt_shape};

/// One declared input of the file.
pub(super) struct GraphInput {
    pub(super) name: String,
    /// Per-example dims (the batch removed, symbolic ones bound).
    pub(super) per: Vec<usize>,
    pub(super) dtype: DType,
    /// The declared leading dimension when it is fixed (torch's default export: 1).
    pub(super) fixed_batch: Option<usize>,
}

/// The tensor type of a graph input/output: element type and dims (`Err` = symbolic).
pub(super) fn value_type(v: &ValueInfoProto) -> Option<(i32, Vec<Result<usize, String>>)> {
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
        return None;
    };
    let dims = t
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(DimValue::DimValue(v)) if *v >= 0 => Ok(*v as usize),
            Some(DimValue::DimParam(p)) => Err(p.clone()),
            _ => Err("?".into()),
        })
        .collect();
    Some((t.elem_type.unwrap_or(0), dims))
}

/// Read declared input `vin`: its batch, its per-example dims with `bound` symbolic ones, and
/// its element type (f32, or int64/int32/bool ids and masks).
pub(super) fn graph_input(vin: &ValueInfoProto, bound: &Dims) -> Result<GraphInput, String> {
    let name = vin.name.clone().unwrap_or_default();
    let (elem, dims) =
        value_type(vin).ok_or_else(|| format!("input `{name}` is not a tensor with a shape"))?;
    if dims.is_empty() {
        return Err(format!(
            "input `{name}` is a scalar; greenbench needs a batch dimension"
        ));
    }
    let fixed_batch = match &dims[0] {
        Ok(1) => Some(1),
        Ok(b) => {
            return Err(format!(
                "input `{name}` has a fixed leading dimension {b}; greenbench takes the leading dimension as the batch (symbolic, or 1)"
            ));
        }
        Err(_) => None,
    };
    let mut per: Vec<usize> = vec![];
    for (i, d) in dims.iter().enumerate().skip(1) {
        match d {
            Ok(v) if *v > 0 => per.push(*v),
            Ok(_) => return Err(format!("input `{name}` dimension {i} is 0")),
            Err(p) => match bound.get(p) {
                Some(&v) => per.push(v),
                None => {
                    return Err(format!(
                        "input `{name}` dimension {i} is symbolic (`{p}`) and unbound: bind it with --dim {p}=SIZE"
                    ));
                }
            },
        }
    }
    if per
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .is_none_or(|n| n > MAX_INPUT_ELEMENTS)
    {
        return Err(format!(
            "input `{name}` declares {} per example: more than the {MAX_INPUT_ELEMENTS} elements greenbench takes",
            fmt_shape(&per)
        ));
    }
    let dtype = match DataType::try_from(elem) {
        Ok(DataType::Float) => DType::F32,
        Ok(DataType::Int64) => DType::I64,
        Ok(DataType::Int32) => DType::I32,
        Ok(DataType::Bool) => DType::Bool,
        _ => {
            return Err(format!(
                "input `{name}` has element type {elem}; float32 values, int64/int32 ids and int64/int32/bool masks are supported"
            ));
        }
    };
    Ok(GraphInput {
        name,
        per,
        dtype,
        fixed_batch,
    })
}

/// Whether an input is an attention mask by its name (`attention_mask`, `mask`,
/// `padding_mask`): its values are then checked to be 0 or 1 wherever it is given.
fn is_mask_name(name: &str) -> bool {
    name.to_ascii_lowercase().contains("mask")
}

impl Importer<'_> {
    /// Several declared inputs: each an `Input` node of the packed graph input, held plain.
    pub(super) fn named_inputs(&mut self, ins: &[GraphInput]) {
        for (k, gi) in ins.iter().enumerate() {
            let ir = self.emit(
                &gi.name,
                Op::Input { index: k },
                vec!["input".into()],
                vec![],
            );
            if gi.dtype != DType::F32 {
                self.integral.insert(ir.clone());
                if is_mask_name(&gi.name) {
                    self.masks.insert(ir.clone());
                }
            }
            self.vals.insert(
                gi.name.clone(),
                Val::Act(Act {
                    ir,
                    dims: gi.per.clone(),
                    layout: Layout::Plain,
                    ir_shape: gi.per.clone(),
                }),
            );
        }
    }

    /// The parts of the packed input, each with the role the walk found it plays (`used`:
    /// whether the IR value of each input is read by a kept node).
    pub(super) fn input_parts(
        &self,
        ins: &[GraphInput],
        used: &[bool],
    ) -> Result<Vec<InputPart>, String> {
        let mut parts = vec![];
        for (k, gi) in ins.iter().enumerate() {
            let ir = match self.vals.get(&gi.name) {
                Some(Val::Act(a)) => a.ir.clone(),
                _ => String::new(),
            };
            let vocab = self.vocabs.get(&ir).copied();
            let lower = gi.name.to_ascii_lowercase();
            let role = if vocab.is_some() {
                if lower.contains("type") || lower.contains("segment") {
                    InputRole::TypeIds
                } else {
                    InputRole::TokenIds
                }
            } else if self.masks.contains(&ir) {
                InputRole::AttentionMask
            } else if gi.dtype == DType::F32 {
                InputRole::Values
            } else if !used[k] {
                // An integer input the outputs do not depend on: zeros.
                InputRole::TypeIds
            } else {
                return Err(format!(
                    "input `{}` holds integers but is neither ids an embedding table reads nor an attention mask (a name with `mask`)",
                    gi.name
                ));
            };
            parts.push(InputPart {
                name: gi.name.clone(),
                shape: gi.per.clone(),
                dtype: gi.dtype,
                role,
                vocab,
            });
        }
        Ok(parts)
    }

    /// Several outputs: each in the file's own order (plain), packed into one last node.
    pub(super) fn pack_outputs(&mut self, outs: Vec<(String, Act)>) -> Act {
        let names: Vec<String> = outs.iter().map(|(n, _)| n.clone()).collect();
        let mut irs = vec![];
        let mut total = 0;
        for (name, a) in outs {
            let p = self.plain_of(&format!("{name}_plain"), a);
            total += p.dims.iter().product::<usize>();
            irs.push(p.ir);
        }
        let ir = self.emit("outputs", Op::Pack { names }, irs, vec![]);
        Act {
            ir,
            dims: vec![total],
            layout: Layout::Plain,
            ir_shape: vec![total],
        }
    }
}

/// The boundary tensors of the declared inputs.
pub(super) fn io_tensors(ins: &[GraphInput]) -> Vec<IoTensor> {
    ins.iter()
        .map(|gi| IoTensor {
            name: gi.name.clone(),
            dims: gi.per.clone(),
            dtype: gi.dtype,
        })
        .collect()
}
