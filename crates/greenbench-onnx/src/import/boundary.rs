//! The ONNX boundary of an imported model: how an activation's IR memory order relates to the
//! ONNX tensor it stands for (`Layout`), the adapter that converts the model's own input and
//! output (`Io`), and the imported model itself.

use greenbench_core::Model;
use greenbench_core::graph::DType;
use std::path::PathBuf;

/// How an activation's IR memory order relates to the ONNX tensor it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// The same row-major order as the ONNX dims.
    Plain,
    /// ONNX `[C, H, W]` (NCHW per example), IR `[H, W, C]`.
    Chw { c: usize, h: usize, w: usize },
    /// ONNX `[C*H*W]` flattened from NCHW, IR `[H*W*C]` flattened from NHWC.
    Flat { c: usize, h: usize, w: usize },
}

impl Layout {
    /// For each ONNX element index, the IR element index holding it (None for Plain).
    pub(super) fn gather(&self) -> Option<Vec<usize>> {
        let (c, h, w) = match *self {
            Layout::Plain => return None,
            Layout::Chw { c, h, w } | Layout::Flat { c, h, w } => (c, h, w),
        };
        if h * w == 1 || c == 1 {
            return None;
        }
        let mut idx = Vec::with_capacity(c * h * w);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    idx.push((y * w + x) * c + ch);
                }
            }
        }
        Some(idx)
    }
}

/// Each example of `data` between the file's order and the IR's (`to_ir`: file -> IR).
pub(super) fn reorder(layout: Layout, data: &[f32], batch: usize, to_ir: bool) -> Vec<f32> {
    let Some(g) = layout.gather() else {
        return data.to_vec();
    };
    let n = g.len();
    let mut out = vec![0f32; data.len()];
    for b in 0..batch {
        for (onnx_i, &ir_i) in g.iter().enumerate() {
            let (from, to) = if to_ir {
                (onnx_i, ir_i)
            } else {
                (ir_i, onnx_i)
            };
            out[b * n + to] = data[b * n + from];
        }
    }
    out
}

/// The model's boundary as the ONNX file declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Io {
    pub input_name: String,
    /// Per-example ONNX dims of the input (the batch dimension removed).
    pub input_dims: Vec<usize>,
    /// The input holds integer ids (int64/int32 in the file).
    pub input_int: bool,
    /// The input's declared leading dimension when it is fixed (torch's default export: 1).
    pub fixed_batch: Option<usize>,
    pub output_name: String,
    /// Per-example ONNX dims of the output.
    pub output_dims: Vec<usize>,
    pub(super) input_layout: Layout,
    pub(super) output_layout: Layout,
    /// Every declared input in order (one, or the parts of a packed input).
    pub inputs: Vec<IoTensor>,
    /// Every declared output in order (one, or the names of the graph's `Pack`).
    pub outputs: Vec<IoTensor>,
}

/// A declared input or output: its name, per-example dims and element type.
#[derive(Clone, Debug, PartialEq)]
pub struct IoTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub dtype: DType,
}

impl Io {
    /// True when input or output is reordered between ONNX and IR layouts at the boundary.
    pub fn converts(&self) -> bool {
        self.input_layout.gather().is_some() || self.output_layout.gather().is_some()
    }

    /// A batch of inputs in the file's layout -> the IR's layout.
    pub fn input_to_ir(&self, x: &[f32], batch: usize) -> Vec<f32> {
        reorder(self.input_layout, x, batch, true)
    }

    /// A batch of IR outputs -> the file's layout.
    pub fn output_from_ir(&self, y: &[f32], batch: usize) -> Vec<f32> {
        reorder(self.output_layout, y, batch, false)
    }

    /// Check the batch size against a fixed leading dimension.
    pub fn check_batch(&self, batch: usize) -> Result<(), String> {
        match self.fixed_batch {
            Some(f) if f != batch => Err(format!(
                "input `{}` declares a fixed leading dimension {f}; the graph reshapes with it, \
                 so it runs at batch {f} only (re-export with a dynamic batch axis, e.g. \
                 torch.onnx.export(..., dynamic_axes={{'{}': {{0: 'N'}}}}))",
                self.input_name, self.input_name
            )),
            _ => Ok(()),
        }
    }
}

/// An imported model: the folded model every backend runs, and its ONNX boundary.
#[derive(Clone, Debug)]
pub struct Imported {
    pub model: Model,
    pub io: Io,
    /// The default-domain opset the file imports.
    pub opset: i64,
    /// The file it was imported from (empty for bytes imported directly).
    pub path: PathBuf,
}
