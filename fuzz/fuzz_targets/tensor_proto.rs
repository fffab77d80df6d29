//! An ONNX TensorProto (test data `input_0.pb` / `output_0.pb`, initializers): decode and
//! convert to values, every claimed size checked against the bytes present.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = greenbench_onnx::decode::decode_tensor(data, "fuzz.pb")
        && let Ok(v) = greenbench_onnx::decode::tensor_values(&t, None)
    {
        assert_eq!(v.len(), v.dims.iter().product::<usize>());
    }
});
