//! Parity: do the backends compute the same function? Every backend runs each model on the
//! same seeded inputs; the CPU backend's output is compared with the plain-loop reference
//! interpreter, and every other backend's with the CPU's. `greenbench verify`, the tests and
//! any importer's check against recorded outputs call this one function.

use greenbench_core::reference::{Diff, diff, run_reference};
use greenbench_core::{Backend, Model};

/// What one backend's output was compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Against {
    /// The plain-loop reference interpreter.
    Reference,
    /// The CPU backend's output on the same inputs.
    Cpu,
}

impl Against {
    pub fn name(self) -> &'static str {
        match self {
            Against::Reference => "reference",
            Against::Cpu => "cpu",
        }
    }
}

/// One comparison: a model at a batch size on a backend.
#[derive(Clone, Debug)]
pub struct ParityCheck {
    pub model: String,
    pub batch: usize,
    pub backend: String,
    pub against: Against,
    /// The differences, or why the backend could not run the model.
    pub outcome: Result<Diff, String>,
    /// Within tolerance (false when the backend failed).
    pub ok: bool,
}

/// Run every model at every batch size on every backend (seeded inputs `seed`, set 0) and
/// compare as the module says; `tolerance` bounds the difference relative to the compared
/// output's largest magnitude. Put the CPU backend first so the others are compared with it;
/// a backend before it (or with no CPU backend at all) is compared with the reference.
pub fn check_parity(
    models: &[Model],
    batches: &[usize],
    backends: &[Box<dyn Backend>],
    tolerance: f32,
    seed: u64,
) -> Vec<ParityCheck> {
    let mut checks = Vec::new();
    for m in models {
        for &batch in batches {
            // Too big to hold (the reference allocates every activation): every backend's
            // check fails with the reason, and nothing is allocated.
            let available = greenbench_core::host::available_memory_bytes();
            if let Err(why) = greenbench_core::memory::check_fits(&m.graph, batch, available) {
                for b in backends {
                    checks.push(ParityCheck {
                        model: m.name.clone(),
                        batch,
                        backend: b.name().to_string(),
                        against: Against::Reference,
                        outcome: Err(why.clone()),
                        ok: false,
                    });
                }
                continue;
            }
            let x = greenbench_core::generate_inputs(&m.graph, batch, seed, 0);
            let reference = run_reference(&m.graph, &m.weights, &x, batch);
            let mut cpu_out: Option<Vec<f32>> = None;
            for b in backends {
                let out = b
                    .prepare(&m.graph, &m.weights, batch)
                    .and_then(|mut p| p.run(&x).map(|o| o.to_vec()));
                let (against, base) = match &cpu_out {
                    Some(c) if b.name() != "cpu" => (Against::Cpu, c.as_slice()),
                    _ => (Against::Reference, reference.as_slice()),
                };
                let (outcome, ok) = match out {
                    Ok(o) => {
                        let d = diff(&o, base);
                        let ok = d.max_rel <= tolerance;
                        if b.name() == "cpu" {
                            cpu_out = Some(o);
                        }
                        (Ok(d), ok)
                    }
                    Err(e) => (Err(e.to_string()), false),
                };
                checks.push(ParityCheck {
                    model: m.name.clone(),
                    batch,
                    backend: b.name().to_string(),
                    against,
                    outcome,
                    ok,
                });
            }
        }
    }
    checks
}
