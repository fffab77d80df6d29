//! Int8 execution of a quantized model ([`QModel`]): uint8 activations stay uint8 between
//! int8 steps; convolutions and dense layers run the packed u8 x s8 GEMM of `gemm` (AVX-512
//! VNNI, AVX2 or portable, chosen at run time) or a direct depthwise loop, each with a fused
//! epilogue (zero-point correction folded into the bias, fixed-point requantization, the
//! ReLU / ReLU6 clamp); pools and residual adds work on uint8; every other op runs the fp32
//! kernels of this crate, with a dequantize / quantize step at each border.
//!
//! Threads: a batch of at least one example per thread is split across the pool, each
//! worker running its examples through every step with its own memory; one example runs as
//! a team (`team`: the large linear steps split into row units the threads share). All
//! memory is allocated in `prepare`, none in `run`. The arithmetic is `greenbench_core::quant`'s, bit for bit
//! (tested against `run_reference_q`).

mod add;
mod conv;
mod depthwise;
mod dw_vnni;
mod epilogue;
mod exec;
pub mod gemm;
mod lanes;
mod lut;
mod plan;
mod pool;
mod quantize;
mod step;
mod team;

use crate::kernels;
use crate::kernels::SendPtr;
use exec::execute;
use gemm::QPath;
use greenbench_core::backend::{BackendError, Prepared};
use greenbench_core::graph::Graph;
use greenbench_core::quant::QModel;
use plan::plan;
use rayon::prelude::*;
use std::sync::Arc;
use step::{Mem, Plan};

/// A quantized model prepared for the CPU at a fixed batch.
pub(crate) struct QPrepared {
    plan: Arc<Plan>,
    /// One per worker (one unless the batch is split).
    workers: Vec<Worker>,
    /// Batch 1 on several threads: the steps split across them (see `team`).
    team: Option<team::QTeam>,
    out: Vec<f32>,
    pool: Arc<rayon::ThreadPool>,
    batch: usize,
    threads: usize,
    /// Set when a planned team was dropped as slower here (`crate::team_choice`).
    team_note: Option<String>,
}

/// A worker's memory: it runs its share of the batch `main.batch` examples at a time (a
/// sub-batch, see [`sub_batch`]), and what is left over at once in `rest`.
struct Worker {
    main: Mem,
    rest: Option<Mem>,
}

/// Sub-batch working-set budget (bytes of the largest step's int32 sums plus its input and
/// output, per example, times the sub-batch), as the fp32 split's `SUB_BATCH_BYTES`: each
/// layer of a sub-batch stays in L2 instead of streaming the worker's whole share through L3.
const SUB_BATCH_BYTES: usize = 256 * 1024;

/// Examples per sub-batch for a worker's `share`: the largest power of two within the budget.
fn sub_batch(g: &Graph, share: usize) -> usize {
    let per_example = (0..g.nodes.len())
        .map(|i| {
            let ins: usize = g.value_shape(g.node_inputs(i)[0]).iter().product();
            let out: usize = g.out_shape(i).iter().product();
            ins + 5 * out
        })
        .max()
        .unwrap_or(1);
    let mut sub = 1;
    while sub * 2 <= share && sub * 2 * per_example <= SUB_BATCH_BYTES {
        sub *= 2;
    }
    sub
}

/// Which GEMM path int8 steps use here (for the device description).
pub fn path() -> QPath {
    QPath::detect()
}

impl QPrepared {
    pub(crate) fn new(
        qm: &QModel,
        batch: usize,
        threads: usize,
        pool: Arc<rayon::ThreadPool>,
        path: QPath,
        min_work: u64,
        team_by_timing: bool,
    ) -> Result<QPrepared, BackendError> {
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        if !path.available() {
            return Err(BackendError::Invalid(format!(
                "the {} int8 kernels need CPU features this machine lacks",
                path.name()
            )));
        }
        let plan = Arc::new(plan(qm, path)?);
        // Batches of at least one example per thread split; one example runs as a team where
        // the team pays (`choose_team`).
        let nworkers = if batch >= threads { threads } else { 1 }.max(1);
        // The int8 kernels do a step's FPO about four times as fast as the fp32 ones, so a
        // step is worth splitting at a quarter of the fp32 threshold it was measured against
        // (250 k, before fp32's dropped to 100 k for fp32's reasons: int8 at 100 k / 4 read
        // the same or slower, lenet5 8.7 -> 9.3 us as a team), i.e. 5/8 of today's. Measured
        // on the dev VM (batch 1, 2 threads, best of 4, us; thresholds 0 / 30 k / 62.5 k / 250
        // k, and one thread): mobilenet 97.5 / 103.2 / 95.5 / 101.7 (133.5), ds-cnn 27.0 /
        // 27.5 / 27.2 / 34.0 (40.5), resnet8 62.1 / 105.0 / 106.2 / 64.1 (88.6; the two middle
        // figures in one of the VM's slow spells: rerun, 0 / 62.5 k read 64.0 / 64.4), lenet5
        // 10.1 / 10.0 / 9.9 / 9.8 (9.2).
        let team = (batch == 1 && threads > 1)
            .then(|| team::QTeam::plan(&plan, threads, min_work.saturating_mul(5) / 8))
            .flatten();
        let mut workers: Vec<Worker> = (0..nworkers)
            .map(|t| {
                let n = share(batch, nworkers, t).1;
                let sub = sub_batch(&plan.graph, n);
                Worker {
                    main: Mem::new(&plan.layout, sub),
                    rest: (!n.is_multiple_of(sub)).then(|| Mem::new(&plan.layout, n % sub)),
                }
            })
            .collect();
        if let Some(t) = &team {
            let cols = &mut workers[0].main.cols;
            if cols.len() < t.cols_len {
                *cols = crate::kernels::AVec::zeroed(t.cols_len);
            }
        }
        let mut p = QPrepared {
            out: vec![0.0; batch * plan.graph.output_len()],
            plan,
            workers,
            team,
            pool,
            batch,
            threads,
            team_note: None,
        };
        if team_by_timing && p.team.is_some() {
            p.choose_team()?;
        }
        Ok(p)
    }

    /// Time the planned team against one thread and drop it where it is slower
    /// (`crate::team_choice`).
    fn choose_team(&mut self) -> Result<(), BackendError> {
        let input = crate::team_choice::probe_input(self.plan.graph.input_len());
        // The team is not `Clone`: it moves into `self.team` for each of its runs and back.
        let mut team_slot = self.team.take();
        let mut failed = None;
        let choice = crate::team_choice::time_both(|with_team| {
            if with_team {
                self.team = team_slot.take();
            }
            if let Err(e) = self.run(&input) {
                failed = Some(e);
            }
            if with_team {
                team_slot = self.team.take();
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if choice.keep_team() {
            self.team = team_slot;
        } else {
            self.team_note = Some(choice.note(self.threads));
        }
        Ok(())
    }
}

/// Worker `t`'s first example and example count.
fn share(batch: usize, workers: usize, t: usize) -> (usize, usize) {
    let (q, r) = (batch / workers, batch % workers);
    (t * q + t.min(r), q + usize::from(t < r))
}

impl Prepared for QPrepared {
    fn execution_note(&self) -> Option<String> {
        self.team_note.clone()
    }

    fn time_steps(&mut self) -> Result<(), String> {
        if let Some(team) = &self.team {
            team.start_clock();
            return Ok(());
        }
        let n = self.plan.steps.len();
        for w in &mut self.workers {
            for m in std::iter::once(&mut w.main).chain(w.rest.as_mut()) {
                m.clock = Some((vec![std::time::Duration::ZERO; n], 0));
            }
        }
        Ok(())
    }

    fn step_times(&self) -> Vec<greenbench_core::backend::StepTime> {
        let mut acc = Vec::new();
        if let Some((runs, per_step)) = self
            .team
            .as_ref()
            .and_then(|t| t.step_seconds(self.plan.steps.len()))
        {
            exec::steps_into(&self.plan, &per_step, runs, &mut acc);
            return acc;
        }
        for w in &self.workers {
            for m in std::iter::once(&w.main).chain(w.rest.as_ref()) {
                exec::clock_into(&self.plan, m, &mut acc);
            }
        }
        // Each worker ran its own examples on its own thread.
        acc.iter_mut().for_each(|t| t.threads = self.workers.len());
        acc
    }

    fn run(&mut self, input: &[f32]) -> Result<&[f32], BackendError> {
        let g = &self.plan.graph;
        g.check_input(input, self.batch)
            .map_err(BackendError::Invalid)?;
        let (inl, outl) = (g.input_len(), g.output_len());
        if let Some(team) = &mut self.team {
            let m = &mut self.workers[0].main;
            if !self.plan.layout.input_direct {
                m.f[self.plan.layout.input].copy_from_slice(input);
            }
            let plan = &self.plan;
            self.pool.install(|| team.run(plan, m, input));
            self.out.copy_from_slice(&m.f[self.plan.layout.output]);
            return Ok(&self.out);
        }
        let nworkers = self.workers.len();
        let plan = &self.plan;
        let batch = self.batch;
        // Each worker writes its examples' outputs into its own part of `out`.
        let (base, total) = (SendPtr(self.out.as_mut_ptr()), self.out.len());
        let work = |t: usize, wk: &mut Worker| {
            let (first, n) = share(batch, nworkers, t);
            assert!(
                (first + n) * outl <= total,
                "worker outputs lie inside the output"
            );
            // SAFETY: workers' shares are disjoint (`share`), inside `out` (checked above),
            // and `out` outlives the pool call.
            let out =
                unsafe { std::slice::from_raw_parts_mut(base.get().add(first * outl), n * outl) };
            let mut done = 0;
            while done < n {
                let m = match &mut wk.rest {
                    Some(r) if n - done < wk.main.batch => r,
                    _ => &mut wk.main,
                };
                let b = m.batch;
                let i0 = (first + done) * inl;
                let x = &input[i0..i0 + b * inl];
                if !plan.layout.input_direct {
                    m.f[plan.layout.input].copy_from_slice(x);
                }
                execute(plan, m, x);
                out[done * outl..(done + b) * outl].copy_from_slice(&m.f[plan.layout.output]);
                done += b;
            }
        };
        self.pool.install(|| {
            if nworkers == 1 {
                work(0, &mut self.workers[0]);
            } else {
                self.workers.par_iter_mut().enumerate().for_each(|(t, wk)| {
                    let was = kernels::set_serial(true);
                    work(t, wk);
                    kernels::set_serial(was);
                });
            }
        });
        Ok(&self.out)
    }
}
