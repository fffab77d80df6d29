//! An ONNX model file: protobuf decode, import into the IR (constant folding, layouts, shape
//! inference), batch-norm folding and the FPO/MAC count.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = greenbench_onnx::decode::decode_model(data, "fuzz.onnx") else {
        return;
    };
    // Folded constants of at most 16 M elements: far below the 2 GiB the fuzzer allows.
    if let Ok(imp) =
        greenbench_onnx::import::import_model_limited(&m, "fuzz", "fuzz.onnx", None, 0, 1 << 24)
    {
        let c = imp.model.cost.total;
        assert!(c.fpo() >= 2 * c.macs);
        let _ = imp.io.converts();
    }
});
