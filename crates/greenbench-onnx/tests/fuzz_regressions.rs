//! Every input the fuzzers (fuzz/: onnx_model, tensor_proto) found a crash with, kept: each must
//! now decode and import to a value or an error, never a panic.

use greenbench_onnx::decode::{decode_model, decode_tensor, tensor_values};
use greenbench_onnx::import::import_model;
use std::path::PathBuf;

#[test]
fn crashes_the_fuzzers_found_are_errors_now() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("onnx_model-") {
            let m = decode_model(&bytes, &name).expect("these decode; the import crashed");
            let r = import_model(&m, "fuzz", &name, None, 0);
            // "add-without-activation": an Add whose only inputs are undefined or constant;
            // "concat-of-scalars": a folded Concat of rank-0 constants.
            let e = r.err().unwrap_or_else(|| panic!("{name}: imported"));
            assert!(!e.to_string().is_empty());
        } else if name.starts_with("tensor_proto-")
            && let Ok(t) = decode_tensor(&bytes, &name)
        {
            let _ = tensor_values(&t, None);
        }
        seen += 1;
    }
    assert!(seen >= 1, "no regression inputs in {}", dir.display());
}
