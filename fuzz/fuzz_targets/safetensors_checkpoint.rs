//! A safetensors checkpoint for a zoo model, incl. the shape check against the model.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static G: OnceLock<Vec<greenbench_core::Graph>> = OnceLock::new();
    let graphs = G.get_or_init(|| {
        ["mlp", "lenet5"]
            .iter()
            .map(|n| greenbench_core::zoo::zoo_model(n).expect("zoo"))
            .collect()
    });
    let g = &graphs[data.first().map_or(0, |b| (*b as usize) % graphs.len())];
    let _ = greenbench_core::checkpoint::from_bytes(g, data, std::path::Path::new("w.safetensors"));
});
