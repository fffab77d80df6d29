//! MNIST IDX files: the input split into an images file and a labels file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = (data[0] as usize * 256 + data[1] as usize).min(data.len() - 2);
    let (im, lb) = data[2..].split_at(cut);
    let _ = greenbench_train::data::parse_mnist(im, lb, Path::new("images"), Path::new("labels"));
});
