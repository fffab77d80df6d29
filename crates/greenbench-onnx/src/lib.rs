//! greenbench-onnx: ONNX files in and out of greenbench-core's one model description.
//!
//! * [`decode`]: the protobuf side, through prost with the messages generated from the official
//!   `onnx.proto` ([`proto`]); every size a file claims is checked against the bytes present
//!   before anything is allocated, and tensors may live in external data files.
//! * [`import`]: an ONNX graph as greenbench-core's [`Graph`](greenbench_core::graph::Graph) and
//!   weights, with the layout adapter that lets the model take and return tensors exactly as
//!   the file declares them.
//! * [`export`]: a greenbench model as ONNX (opset 17, standard ops) plus a test data set in the
//!   ONNX model zoo's layout (`test_data_set_0/input_0.pb`, `output_0.pb`).
//!
//! It knows nothing of timing or runtimes: scripts/onnx/ runs files in ONNX Runtime.

pub mod decode;
pub mod export;
pub mod import;
pub mod proto;
pub mod testdata;

pub use export::{
    INPUT, OPSET, OUTPUT, export, input_tensors, output_tensors, tensor_f32, tensor_i64, unpack,
};
pub use import::{Imported, import_file, load_model};
