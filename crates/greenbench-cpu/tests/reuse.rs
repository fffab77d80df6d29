//! Activation buffers sharing memory (`reuse.rs`) must not change a single output bit: every
//! zoo model at batch 1 and 3, on 1 and 2 threads, with the direct kernels and the portable
//! path, gives the same output with buffers shared as with every buffer its own. (Sharing is
//! the default, so the property tests against the reference run it too.)

use greenbench_cpu::CpuBackend;
use greenbench_testkit::{run_case, zoo_cases};

#[test]
fn shared_buffers_give_the_same_outputs_bit_for_bit() {
    for (m, batch, case) in zoo_cases(&[1, 3], 7) {
        for threads in [1, 2] {
            for direct in [true, false] {
                let base = || {
                    CpuBackend::new(threads)
                        .unwrap()
                        .with_direct_kernels(direct)
                };
                let shared = run_case(&base(), &m.graph, &case, batch);
                let own = run_case(&base().with_buffer_reuse(false), &m.graph, &case, batch);
                assert!(
                    shared
                        .iter()
                        .zip(&own)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} batch {batch}, {threads} threads, direct {direct}: outputs differ",
                    m.name
                );
                assert_eq!(shared.len(), own.len());
            }
        }
    }
}
