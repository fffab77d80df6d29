//! Generates the ONNX message types from the official `proto/onnx.proto` with prost, compiling
//! the .proto with protox (pure Rust), so no `protoc` binary is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"]).unwrap_or_else(|e| {
        panic!("proto/onnx.proto does not compile: {e}");
    });
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build failed on proto/onnx.proto: {e}"));
}
