//! Import: an ONNX graph as greenbench-core's one model description.
//!
//! The importer walks the ONNX nodes in order and keeps, for every ONNX value, one of:
//!
//! * a **constant** (an initializer, a `Constant`, or anything computed only from constants,
//!   including shapes: `Shape → Gather → Unsqueeze → Concat → Reshape`, with the batch as a
//!   symbolic entry), folded away here and never run;
//! * an **activation**: an IR value (a node of the [`Graph`] or its input) together with the
//!   ONNX dims it stands for and how its memory order relates to ONNX's ([`Layout`]).
//!
//! The IR is NHWC; ONNX images are NCHW. A Conv's output is therefore kept as an IR `[H, W, C]`
//! standing for ONNX `[C, H, W]`: no transpose is ever executed. Transposes between the two
//! layouts (tf2onnx's NHWC models) are relabellings; a flatten of an NCHW image feeding a
//! Gemm/MatMul is absorbed by permuting the weight rows. Where the model's own input or output
//! is NCHW, the [`Io`] adapter converts at the boundary, so the model takes and returns tensors
//! exactly as the file declares them.
//!
//! Anything outside what the IR can express is an error that names every operator that cannot
//! be imported (with node names and counts) or the one node whose form is not supported.
mod array;
mod attention;
mod boundary;
mod contrib;
mod dims;
mod error;
mod expr;
mod fold;
mod fuse;
mod graph_io;
mod logic;
mod masks;
mod math;
mod matmul;
mod nn;
mod shape;
mod shuffle;
mod values;
mod walk;

pub use boundary::{Imported, Io, IoTensor, Layout};
pub use dims::{DimSweep, Dims, Symbolic, bind_from_shape, bound_name, dims_label};
pub use error::ImportError;
pub use shape::{MAX_FOLDED_ELEMENTS, MAX_INPUT_ELEMENTS};
pub use walk::{
    LoadError, import_file, import_file_swept, import_file_with, import_model,
    import_model_limited, import_model_with, load_model, load_models_swept, model_name,
    supported_ops,
};
