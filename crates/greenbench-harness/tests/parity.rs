//! Parity checking against a real CPU backend and fakes: what each backend is compared
//! with, and that wrong outputs and failures count as failed checks.

use greenbench_core::{
    Backend, BackendError, DeviceInfo, DeviceKind, Graph, Model, PrepareResult, Prepared, Weights,
};
use greenbench_cpu::CpuBackend;
use greenbench_harness::parity::{Against, check_parity};

/// A backend that returns the right length of zeros, or fails to prepare.
struct Wrong {
    name: &'static str,
    fail: bool,
}

struct Zeros(Vec<f32>);

impl Prepared for Zeros {
    fn run(&mut self, _input: &[f32]) -> Result<&[f32], BackendError> {
        Ok(&self.0)
    }
}

impl Backend for Wrong {
    fn name(&self) -> &str {
        self.name
    }
    fn device(&self) -> DeviceInfo {
        DeviceInfo {
            name: "wrong".into(),
            kind: DeviceKind::Gpu,
            threads: None,
            driver: None,
        }
    }
    fn prepare(&self, g: &Graph, _w: &Weights, b: usize) -> PrepareResult {
        if self.fail {
            return Err(BackendError::Invalid("no such kernel".into()));
        }
        Ok(Box::new(Zeros(vec![0.0; b * g.output_len()])))
    }
    fn prepare_matmul(&self, _: usize, _: usize, _: usize) -> PrepareResult {
        Err(BackendError::Invalid("no matmul".into()))
    }
}

#[test]
fn backends_are_compared_with_the_cpu_and_the_cpu_with_the_reference() {
    let models = vec![
        Model::load("mlp", 4).unwrap(),
        Model::load("lenet5", 4).unwrap(),
    ];
    let backends: Vec<Box<dyn Backend>> = vec![
        Box::new(Wrong {
            name: "early",
            fail: false,
        }),
        Box::new(CpuBackend::new(1).unwrap()),
        Box::new(Wrong {
            name: "zeros",
            fail: false,
        }),
        Box::new(Wrong {
            name: "broken",
            fail: true,
        }),
    ];
    let checks = check_parity(&models, &[1, 3], &backends, 1e-4, 4);
    assert_eq!(checks.len(), 2 * 2 * 4);
    for c in &checks {
        let (against, ok) = match c.backend.as_str() {
            // Before the CPU has run, only the reference is there to compare with.
            "early" => (Against::Reference, false),
            "cpu" => (Against::Reference, true),
            "zeros" => (Against::Cpu, false),
            _ => (Against::Cpu, false),
        };
        assert_eq!((c.against, c.ok), (against, ok), "{c:?}");
        match c.backend.as_str() {
            "broken" => assert!(c.outcome.as_ref().unwrap_err().contains("no such kernel")),
            "cpu" => assert!(c.outcome.as_ref().unwrap().max_rel < 1e-5, "{c:?}"),
            // Zeros against outputs of scale s: the difference is the whole scale.
            _ => assert_eq!(c.outcome.as_ref().unwrap().max_rel, 1.0, "{c:?}"),
        }
    }
    // A loose enough tolerance passes the zeros too: the verdict follows the tolerance.
    let loose = check_parity(&models[..1], &[1], &backends[1..3], 1.5, 4);
    assert!(loose.iter().all(|c| c.ok), "{loose:?}");
}
