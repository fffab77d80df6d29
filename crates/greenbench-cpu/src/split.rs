//! A **split** batch: each worker thread runs its own examples through the whole graph, in
//! L2-sized sub-batches, on one thread, with no synchronisation between layers; a graph's
//! dense tail (`tail`) runs once over all of a worker's examples after its sub-batches. One
//! rayon pool of the backend's size: no oversubscription. The constants were measured on the
//! dev VM; the figures are beside each.

use crate::kernels::SendPtr;
use crate::spin::{FINISH_SPIN, spin_until};
use crate::{CpuPrepared, Settings};
use greenbench_core::backend::BackendError;
use greenbench_core::graph::Graph;
use greenbench_core::weights::Weights;
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sub-batch working-set budget: a worker runs its images this many bytes of activations
/// at a time (largest step input + output, per image, times the sub-batch), so every layer
/// of a sub-batch reads and writes L2 instead of streaming the whole batch through L3.
/// Measured on the dev VM (batch 32, 2 threads, us, three runs each; 128 / 256 / 512 KiB):
/// mobilenet 93-96 / 90-93 / 93-102, ds-cnn 23.1-23.6 / 22.4-23.5 / 25.8-27.1, resnet8
/// 102-105 / 100-118 / 106, lenet5 11.1-11.6 / 9.8-10.1 / 10.0-10.3; 8 MiB (whole
/// per-thread batch) was slower on all (mobilenet 100-104, resnet8 113-116).
const SUB_BATCH_BYTES: usize = 256 * 1024;

/// A batch split across threads: each worker runs its own images through the whole graph,
/// `sub` images at a time, on one thread (no synchronisation between layers).
pub(crate) struct Split {
    workers: Vec<Worker>,
    /// Workers finished in the current run.
    finished: AtomicUsize,
}

impl Split {
    /// The graph nodes its workers run as Winograd convolutions (the same in each).
    pub(crate) fn winograd_nodes(&self) -> Vec<(usize, usize)> {
        self.workers
            .first()
            .map_or_else(Vec::new, |w| w.main.winograd_nodes.clone())
    }

    /// Every plan of every worker (the sub-batch plans and the batch-1 ones for what is left
    /// over), for timing their steps.
    pub(crate) fn plans_mut(&mut self) -> impl Iterator<Item = &mut CpuPrepared> {
        (self.workers.iter_mut()).flat_map(|w| {
            std::iter::once(&mut w.main)
                .chain(w.one.as_mut())
                .chain(w.tail.as_mut().map(|t| &mut t.plan))
        })
    }

    /// Its workers (one a thread).
    pub(crate) fn workers(&self) -> usize {
        self.workers.len()
    }

    /// As [`Self::plans_mut`], to read.
    pub(crate) fn plans(&self) -> impl Iterator<Item = &CpuPrepared> {
        (self.workers.iter()).flat_map(|w| {
            std::iter::once(&w.main)
                .chain(w.one.as_ref())
                .chain(w.tail.as_ref().map(|t| &t.plan))
        })
    }

    /// Images per sub-batch when `batch` is split across `threads` workers (every thread
    /// gets at least two images), or `None` when it runs as one plan.
    pub(crate) fn sub_batch(g: &Graph, batch: usize, threads: usize) -> Option<usize> {
        if batch == 0 || batch < 2 * threads || (threads == 1 && batch == 1) {
            return None;
        }
        let per_image = crate::tail::example_bytes(g, 0..g.nodes.len()).max(1);
        let per_thread = batch / threads;
        let mut sub = 1;
        while sub * 2 <= per_thread && sub * 2 * per_image <= SUB_BATCH_BYTES {
            sub *= 2;
        }
        (threads > 1 || sub < batch).then_some(sub)
    }

    /// One worker per thread of `s`, each planned on one thread at `sub` images (and at one
    /// image for what is left over); where the graph has a dense tail ([`crate::tail`]) and a
    /// worker more images than `sub`, the sub-batches run the graph up to the tail and the
    /// tail is planned at the worker's images.
    pub(crate) fn new(
        g: &Graph,
        w: &Weights,
        batch: usize,
        sub: usize,
        s: &Settings,
    ) -> Result<Split, BackendError> {
        let threads = s.threads;
        let one_thread = s.with_threads(1);
        let mut workers = Vec::with_capacity(threads);
        for t in 0..threads {
            let start = t * batch / threads;
            let count = (t + 1) * batch / threads - start;
            let cut = match crate::tail::start(g, count) {
                Some(t) if count > sub => Some(t),
                _ => None,
            };
            let parts = match cut {
                Some(t) => Some(crate::tail::cut(g, w, t).map_err(BackendError::Invalid)?),
                None => None,
            };
            let (hg, hw) = parts.as_ref().map_or((g, w), |[(hg, hw), _]| (hg, hw));
            let main = CpuPrepared::plan(hg, hw, sub.min(count), &one_thread)?;
            let one = if !count.is_multiple_of(main.batch) {
                Some(CpuPrepared::plan(hg, hw, 1, &one_thread)?)
            } else {
                None
            };
            let tail = match (&parts, cut) {
                (Some([_, (tg, tw)]), Some(t)) => {
                    let mut plan = CpuPrepared::plan(tg, tw, count, &one_thread)?;
                    // Its steps' nodes as the whole graph numbers them (step timing).
                    for (first, last) in &mut plan.step_nodes {
                        *first += t;
                        *last += t;
                    }
                    // Row-wise steps only (`tail::start`): no convolution borders its input.
                    assert!(
                        plan.mem.input_border.is_none(),
                        "a tail input without border"
                    );
                    Some(Tail {
                        plan,
                        per: tg.input_len(),
                    })
                }
                _ => None,
            };
            workers.push(Worker {
                start,
                count,
                main,
                one,
                tail,
            });
        }
        Ok(Split {
            workers,
            finished: AtomicUsize::new(0),
        })
    }

    /// Run every worker on its images of `input` (read in place) and gather their outputs
    /// into `out`.
    pub(crate) fn run(
        &mut self,
        pool: &rayon::ThreadPool,
        g: &Graph,
        input: &[f32],
        out: &mut [f32],
    ) {
        let (in_per, out_per) = (g.input_len(), g.output_len());
        let Split { workers, finished } = self;
        let finished = &*finished;
        finished.store(0, Ordering::Relaxed);
        let nworkers = workers.len();
        // Each worker writes its images' outputs into its own part of `out` (no gathering
        // copy on the caller's thread afterwards).
        let (base, total) = (SendPtr(out.as_mut_ptr()), out.len());
        pool.install(|| {
            workers.par_iter_mut().with_max_len(1).for_each(|wk| {
                let (off, len) = (wk.start * out_per, wk.count * out_per);
                assert!(off + len <= total, "worker outputs lie inside the output");
                // SAFETY: workers cover disjoint image ranges (`new`), so these parts of
                // `out` do not overlap, and the range is checked above; `out` outlives the
                // pool call.
                let dst = unsafe { std::slice::from_raw_parts_mut(base.get().add(off), len) };
                wk.run(input, in_per, out_per, dst);
                finished.fetch_add(1, Ordering::AcqRel);
                spin_until(finished, nworkers, FINISH_SPIN);
            })
        });
    }
}

struct Worker {
    /// First image and image count of this worker.
    start: usize,
    count: usize,
    /// The graph (up to its tail, where `tail` is set) planned at the sub-batch, and at
    /// batch 1 for what is left over.
    main: CpuPrepared,
    one: Option<CpuPrepared>,
    /// The graph's dense tail, planned at all `count` images.
    tail: Option<Tail>,
}

/// A worker's dense tail: its input buffer gathers the sub-batches' outputs.
struct Tail {
    plan: CpuPrepared,
    /// Input values per image (the head's output).
    per: usize,
}

impl Worker {
    /// Run the worker's images of `input`, their outputs into `out` (`count` examples).
    fn run(&mut self, input: &[f32], in_per: usize, out_per: usize, out: &mut [f32]) {
        let sub = self.main.batch;
        let mut done = 0;
        while done < self.count {
            let plan = if self.count - done >= sub {
                &mut self.main
            } else {
                self.one
                    .as_mut()
                    .expect("planned when the count is not a multiple")
            };
            let b = plan.batch;
            let i0 = (self.start + done) * in_per;
            plan.mem.load_input(&input[i0..i0 + b * in_per]);
            plan.execute();
            let (dst, per) = match &mut self.tail {
                // The sub-batch's output is the tail's input for its images.
                Some(t) => (&mut t.plan.mem.bufs[t.plan.mem.input][..], t.per),
                None => (&mut out[..], out_per),
            };
            dst[done * per..(done + b) * per]
                .copy_from_slice(&plan.mem.bufs[plan.mem.output][..b * per]);
            done += b;
        }
        if let Some(t) = &mut self.tail {
            t.plan.execute();
            out[..self.count * out_per]
                .copy_from_slice(&t.plan.mem.bufs[t.plan.mem.output][..self.count * out_per]);
        }
    }
}
