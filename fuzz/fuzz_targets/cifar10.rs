//! A CIFAR-10 binary batch.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let _ = greenbench_train::data::parse_cifar10_batch(
        data,
        std::path::Path::new("data_batch_1.bin"),
        &mut images,
        &mut labels,
    );
});
