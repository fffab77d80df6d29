//! A **team** run (batches too small to split across threads, see `split` for those): every
//! thread walks the same list of phases, takes units of each large step (direct steps by
//! pixel range and channel block; pools, concatenations, scale-shifts and channel shuffles by
//! rows; a transformer's attention by (example, head), its norms and softmax by row,
//! elementwise steps by element), and spins between steps instead of sleeping. One rayon pool
//! of the backend's size: no oversubscription.
//!
//! Threads that finish early spin for a bounded time so the next run finds them awake. The
//! constants were measured on the dev VM; the figures are beside each.

use crate::CpuPrepared;
use crate::buffers::RawBuf;
use crate::crew::Crew;
use crate::crew::StepSeconds;
use crate::step::{Step, step_work};
use greenbench_core::graph::Graph;
use std::sync::Arc;

/// A pointer to the plan, for the threads of a team run.
#[derive(Clone, Copy)]
struct PlanPtr(*mut CpuPrepared);
// SAFETY: see `execute_team`: threads only touch the plan through units of the current phase.
unsafe impl Send for PlanPtr {}
// SAFETY: as above.
unsafe impl Sync for PlanPtr {}

#[derive(Clone, Copy, Debug)]
enum PhaseKind {
    /// The whole step, on whichever thread claims it.
    Whole,
    /// Units of a direct step's padded-input copy.
    Copy,
    /// Units of a direct step's compute.
    Compute,
    /// Ranges of output rows of a direct pool, or of outer blocks of a concatenation.
    Rows,
    /// Lines of the caller's input copied into the input buffer (`Buffers::input_lines`),
    /// the run's first phase: loaded after the helpers are called, their wake-up overlaps it.
    Input,
}

#[derive(Debug)]
struct Phase {
    step: usize,
    kind: PhaseKind,
    units: usize,
}

/// Steps with less work than this (FPO, whole batch) run whole on the calling thread in a
/// team run; bigger direct steps are split into units the team's threads share. Measured on
/// the dev VM at batch 1, 2 threads (us). First (2026-11): 250 k / 500 k / 1 M / no split:
/// resnet8 142-148 / 140-144 / 143-147 / 209, mobilenet 157-164 / 173 / 165-170 / 189,
/// tiny-transformer 289-294 / 288-293 / 289-296 / 301. Then (2026-12-04, the kernels about
/// twice as fast, best / median of 4-5 alternating rounds, 250 k -> 100 k): ds-cnn 47.9 / 49.8
/// -> 40.5 / 41.0 (its four depthwise layers, 152 k FPO each, had run on one thread while the
/// other spun), autoencoder 14.2 -> 10.9, mlp 9.2 -> 8.1, lenet5 16.9 -> 14.7, ShuffleNet (onnx
/// light model) 3.14 -> 2.31 ms; resnet8, mobilenet, tiny-transformer, ResNet-50, DenseNet-121
/// the same within the VM's spread. 50 k and 30 k were no better (ds-cnn 39.3-39.8) and
/// 10 k slower (lenet5 33, resnet8 153).
pub const TEAM_MIN_WORK: u64 = 100_000;

/// A team runs only when the steps it splits have at least this many times [`TEAM_MIN_WORK`]
/// of work together: below that, waking the helper costs what sharing saves. Measured (batch
/// 1, 2 threads, us, best of 4, with / without): the onnx fixtures torch_cnn (one 112 k FPO
/// convolution to split) 4.6 / 3.5 and fire_module (126 k) 5.4 / 4.8; autoencoder (two 164 k
/// dense layers) keeps its team.
const TEAM_MIN_TOTAL: u64 = 3;

/// Inputs of at least this many values (the whole batch) that the steps cannot read in place
/// are copied into the input buffer by the team's first phase, in parts; smaller ones by the
/// calling thread before the crew starts.
const INPUT_SPLIT_MIN: usize = 16 * 1024;

/// Units per thread of a pool or concatenation split by rows (enough for the faster thread to
/// take over the slower one's tail).
const ROW_UNITS_PER_THREAD: usize = 4;

/// A run shared by a team of threads (walked by a [`Crew`]): every thread walks the same
/// list of phases, claims units of the current phase, and waits (spinning) until all of the
/// phase's units are done before the next.
pub(crate) struct Team {
    phases: Vec<Phase>,
    crew: Crew,
    /// How a run's input reaches the steps (see [`Team::plan`]).
    input: InputLoad,
}

/// How a team run's input reaches its steps.
#[derive(Clone, Copy, Debug, PartialEq)]
enum InputLoad {
    /// Read where the caller holds it: no copy.
    InPlace,
    /// Copied by the run's first phase, split in lines.
    Phase,
    /// Copied by the calling thread before the crew starts (small inputs).
    Before,
}

impl Team {
    #[cfg(target_arch = "x86_64")]
    /// `None` when no step is big enough to split, or the split steps together have less than
    /// [`TEAM_MIN_TOTAL`] times `min_work` (then the steps just run in order).
    pub(crate) fn plan(
        g: &Graph,
        steps: &[Step],
        step_nodes: &[usize],
        batch: usize,
        threads: usize,
        min_work: u64,
        bordered_input: bool,
    ) -> Option<Team> {
        // The input's copy, split into lines where it is large (SqueezeNet's 150 k values:
        // ~600 KB); dropped below where the steps read the caller's input in place.
        let input = batch * g.input_len();
        let mut phases = vec![Phase {
            step: steps.len(),
            kind: PhaseKind::Input,
            units: ROW_UNITS_PER_THREAD * threads,
        }];
        let mut split_work = 0u64;
        for ((i, step), &node) in steps.iter().enumerate().zip(step_nodes) {
            let work = step_work(g, node, batch);
            let big = work >= min_work;
            // (copy units, compute units) of a direct step.
            let units = match step {
                Step::Direct { plan, .. } => Some((plan.copy_units(), plan.compute_units(threads))),
                Step::DirectDw { plan, .. } => Some((plan.copy_units(), plan.compute_units())),
                _ => None,
            };
            // Pools and concatenations: memory-bound, split by output rows (a whole step on
            // one thread left the others spinning: SqueezeNet's pools and fire-module concats).
            let rows = match step {
                Step::Pool {
                    geom, direct: true, ..
                } => Some(batch * geom.ho),
                Step::Concat { outer, .. } => Some(*outer),
                // Per-channel scale and shift (batch norms): rows of `c` values.
                Step::ScaleShift { scale, .. } => {
                    Some(batch * g.out_shape(node).iter().product::<usize>() / scale.len())
                }
                // A transformer's steps between its dense layers, split so that at batch 1
                // both threads work (they ran whole on one thread while the other spun):
                // attention by (example, head), norms and softmax by row, elementwise steps
                // by element.
                Step::Attention { h, .. } => Some(batch * h),
                Step::LayerNorm { n, .. } | Step::Softmax { n, .. } => {
                    Some(batch * g.out_shape(node).iter().product::<usize>() / n)
                }
                Step::Relu { .. } | Step::Gelu { .. } | Step::Unary { .. } | Step::Add { .. } => {
                    Some(batch * g.out_shape(node).iter().product::<usize>())
                }
                // Channel shuffles (ShuffleNet): by pixel.
                Step::ChannelShuffle { c, border, .. } => Some(match border {
                    // Stored with a border: by image row.
                    Some(lines) => batch * lines.h,
                    None => batch * g.out_shape(node).iter().product::<usize>() / c,
                }),
                _ => None,
            };
            if let Some(rows) = rows
                && big
                && rows >= threads
            {
                split_work += work;
                phases.push(Phase {
                    step: i,
                    kind: PhaseKind::Rows,
                    units: rows.min(ROW_UNITS_PER_THREAD * threads),
                });
                continue;
            }
            match units {
                Some((copy, compute)) if big => {
                    split_work += work;
                    if copy > 0 {
                        phases.push(Phase {
                            step: i,
                            kind: PhaseKind::Copy,
                            units: copy,
                        });
                    }
                    phases.push(Phase {
                        step: i,
                        kind: PhaseKind::Compute,
                        units: compute,
                    });
                }
                _ => phases.push(Phase {
                    step: i,
                    kind: PhaseKind::Whole,
                    units: 1,
                }),
            }
        }
        if split_work < TEAM_MIN_TOTAL * min_work
            || !phases
                .iter()
                .any(|p| !matches!(p.kind, PhaseKind::Whole | PhaseKind::Input))
        {
            return None;
        }
        // The input: read where the caller holds it when it has no border and every step
        // reading it is split (units read through the run's pointers, which then point at the
        // caller's input; a whole step reads the buffer itself). Else a large input is
        // copied by the first phase, after the helpers are called, so that their wake-up
        // overlaps it (woken after the copy, the helper started 45-57 us after the run began,
        // SqueezeNet, Ice Lake VM, a temporary build clocking each thread's start), and a small
        // one before the crew starts.
        let in_place = !bordered_input
            && phases.iter().all(|p| {
                !matches!(p.kind, PhaseKind::Whole)
                    || p.step >= steps.len()
                    || !steps[p.step].reads().contains(&0)
            });
        let input_load = if in_place {
            InputLoad::InPlace
        } else if input >= INPUT_SPLIT_MIN {
            InputLoad::Phase
        } else {
            // ds-cnn's 490 values: a phase (one more wait between phases) cost more than
            // the copy it shares.
            InputLoad::Before
        };
        if input_load != InputLoad::Phase {
            phases.remove(0);
        }
        let crew = Crew::new(
            phases
                .iter()
                .map(|p| (p.units, matches!(p.kind, PhaseKind::Whole)))
                .collect(),
            threads,
        );
        Some(Team {
            phases,
            crew,
            input: input_load,
        })
    }
}

impl Team {
    /// Whether the run's first phase copies the input (a timed phase; else the steps read it
    /// in place, or the calling thread copied it before the crew started).
    pub(crate) fn copies_input(&self) -> bool {
        self.input == InputLoad::Phase
    }

    /// Time the team's steps from the next run on (`Prepared::time_steps`).
    pub(crate) fn start_clock(&self) {
        self.crew.start_clock();
    }

    /// The timed runs and each step's wall and per-thread busy seconds
    /// ([`Crew::step_seconds`]), the input's copy after the `steps` steps; `None` when the
    /// clock was not started.
    pub(crate) fn step_seconds(&self, steps: usize) -> Option<(u64, Vec<StepSeconds>)> {
        self.crew
            .step_seconds(self.phases.iter().map(|p| p.step), steps + 1)
    }
}

impl CpuPrepared {
    /// Run the steps as a team of `threads` threads (see [`Team`]): the calling thread
    /// starts at once; the others join when rayon wakes them.
    /// `input` (checked) is read in place, copied by the run's first phase, or copied here
    /// before the crew starts ([`InputLoad`]).
    pub(crate) fn execute_team(&mut self, team: &Arc<Team>, input: &[f32]) {
        if team.input == InputLoad::Before {
            self.mem.load_input(input);
        }
        self.mem.refresh_ptrs();
        if team.input == InputLoad::InPlace {
            let buf = &mut self.mem.buf_ptrs[self.mem.input];
            assert_eq!(
                buf.len,
                input.len(),
                "a direct input is the input buffer's size"
            );
            // Only ever read: no step writes the input buffer (`Team::plan`).
            *buf = RawBuf {
                ptr: input.as_ptr().cast_mut(),
                len: input.len(),
            };
        }
        let this = PlanPtr(self as *mut CpuPrepared);
        let threads = team.crew.threads();
        // SAFETY: `this` points to a plan that outlives the run and that nothing else touches
        // meanwhile; its `buf_ptrs`/`pad_ptrs` are fresh. The crew orders the phases (a
        // thread starts phase k + 1 only when every unit of phase k is done), units of a
        // split phase write disjoint parts of one buffer and read only buffers no phase
        // writes at the same time, and a whole step runs on one thread while the others
        // spin without touching the plan.
        team.crew
            .run(&|k, u| unsafe { team_unit(this, &team.phases[k], u, threads, input) });
    }
}

/// A team unit of a transformer step (see [`Team::plan`]): `part(rows)` of its attention
/// tasks, rows or elements, on this thread.
///
/// # Safety
/// As in `execute_team`: the inputs are finished phases'; units write disjoint parts of the output.
unsafe fn seq_rows(p: &CpuPrepared, step: &Step, part: &dyn Fn(usize) -> std::ops::Range<usize>) {
    // SAFETY: the crew's phase ordering: nothing writes what a unit reads.
    let slice = |b: crate::buffers::RawBuf| unsafe { b.slice() };
    // Output values `r` of buffer `dst`, as a slice only this unit writes.
    let out = |dst: usize, r: &std::ops::Range<usize>| {
        let y = p.mem.buf_ptrs[dst];
        assert!(r.end <= y.len, "unit past its output");
        // SAFETY: in bounds (checked); units take disjoint ranges.
        unsafe { std::slice::from_raw_parts_mut(y.ptr.add(r.start), r.len()) }
    };
    match step {
        Step::Attention {
            src,
            dst,
            s,
            h,
            d,
            causal,
            bias,
        } => {
            let y = p.mem.buf_ptrs[*dst];
            let sc = p.mem.scratch_ptr;
            let tasks = part(y.len / (s * d));
            assert!(tasks.end * s * s <= sc.len, "attention scratch too short");
            unsafe {
                crate::seq::attention_tasks(
                    slice(p.mem.buf_ptrs[*src]),
                    (*s, *h, *d),
                    *causal,
                    bias.map(|b| slice(p.mem.buf_ptrs[b])),
                    tasks,
                    sc.ptr,
                    y.ptr,
                    y.len,
                )
            }
        }
        Step::LayerNorm {
            src,
            dst,
            n,
            gamma,
            beta,
            eps,
        } => {
            let rows = part(p.mem.buf_ptrs[*dst].len / n);
            let r = rows.start * n..rows.end * n;
            let x = &slice(p.mem.buf_ptrs[*src])[r.clone()];
            crate::seq::layer_norm_rows(x, *n, gamma, beta, *eps, out(*dst, &r));
        }
        Step::Softmax { src, dst, n } => {
            let rows = part(p.mem.buf_ptrs[*dst].len / n);
            let r = rows.start * n..rows.end * n;
            crate::seq::softmax_rows(&slice(p.mem.buf_ptrs[*src])[r.clone()], *n, out(*dst, &r));
        }
        Step::Relu { src, dst } => {
            let r = part(p.mem.buf_ptrs[*dst].len);
            crate::kernels::relu(&slice(p.mem.buf_ptrs[*src])[r.clone()], out(*dst, &r));
        }
        Step::Gelu { src, dst } => {
            let r = part(p.mem.buf_ptrs[*dst].len);
            crate::kernels::gelu(&slice(p.mem.buf_ptrs[*src])[r.clone()], out(*dst, &r));
        }
        Step::Unary { src, dst, f } => {
            let r = part(p.mem.buf_ptrs[*dst].len);
            crate::kernels::unary(&slice(p.mem.buf_ptrs[*src])[r.clone()], *f, out(*dst, &r));
        }
        Step::ChannelShuffle {
            src,
            dst,
            c,
            groups,
            border: None,
        } => {
            let rows = part(p.mem.buf_ptrs[*dst].len / c);
            let r = rows.start * c..rows.end * c;
            let x = &slice(p.mem.buf_ptrs[*src])[r.clone()];
            crate::kernels::shuffle_pixels(x, *c, *groups, out(*dst, &r));
        }
        Step::ChannelShuffle {
            src,
            dst,
            c,
            groups,
            border: Some(lines),
        } => {
            let row = lines.w * c;
            let x = slice(p.mem.buf_ptrs[*src]);
            for line in part(p.mem.buf_ptrs[*src].len / row) {
                let o = lines.start(line, *c);
                let src_row = &x[line * row..(line + 1) * row];
                crate::kernels::shuffle_pixels(src_row, *c, *groups, out(*dst, &(o..o + row)));
            }
        }
        Step::Add { a, b, dst } => {
            let r = part(p.mem.buf_ptrs[*dst].len);
            let (x, z) = (slice(p.mem.buf_ptrs[*a]), slice(p.mem.buf_ptrs[*b]));
            crate::kernels::add(&x[r.clone()], &z[r.clone()], out(*dst, &r));
        }
        _ => unreachable!("a team unit of a step without row units"),
    }
}

/// Unit `u` of phase `ph`; `input`: the caller's. Safety: as in `execute_team`.
unsafe fn team_unit(this: PlanPtr, ph: &Phase, u: usize, threads: usize, input: &[f32]) {
    if let PhaseKind::Whole = ph.kind {
        // SAFETY: this thread alone runs the phase; the others only spin on atomics.
        let p = unsafe { &mut *this.0 };
        p.exec_step(ph.step, false);
        return;
    }
    // SAFETY: shared access; writes go through raw pointers to disjoint parts.
    let p = unsafe { &*this.0 };
    if let PhaseKind::Input = ph.kind {
        let lines = p.mem.input_lines(input.len());
        // SAFETY: units copy disjoint lines; no phase reads the input buffer meanwhile.
        unsafe {
            p.mem
                .load_input_lines(input, u * lines / ph.units..(u + 1) * lines / ph.units)
        };
        return;
    }
    // SAFETY: the crew's phase ordering: nothing writes what a unit reads.
    let slice = |b: RawBuf| unsafe { b.slice() };
    if let PhaseKind::Rows = ph.kind {
        // Unit u of U takes rows [u R / U, (u + 1) R / U).
        let part = |rows: usize| u * rows / ph.units..(u + 1) * rows / ph.units;
        match &p.steps[ph.step] {
            #[cfg(target_arch = "x86_64")]
            Step::Pool {
                src,
                dst,
                geom,
                max,
                narrow,
                ..
            } => {
                let y = p.mem.buf_ptrs[*dst];
                let rows = y.len / (geom.wo * geom.c);
                // SAFETY: units write disjoint output rows; the input is a finished phase's.
                unsafe {
                    crate::direct::pool_rows(
                        slice(p.mem.buf_ptrs[*src]),
                        geom,
                        *max,
                        narrow.as_deref(),
                        part(rows),
                        y.ptr,
                    )
                }
            }
            Step::Concat {
                srcs,
                dst,
                outer,
                row,
            } => {
                let (y, row) = (p.mem.buf_ptrs[*dst], *row);
                assert!(y.len >= outer * row, "concat output too short");
                let mut offset = 0;
                for &(b, len) in srcs {
                    let x = slice(p.mem.buf_ptrs[b]);
                    for o in part(*outer) {
                        // SAFETY: units write disjoint outer blocks, inside `y` (checked).
                        let out = unsafe {
                            std::slice::from_raw_parts_mut(y.ptr.add(o * row + offset), len)
                        };
                        out.copy_from_slice(&x[o * len..(o + 1) * len]);
                    }
                    offset += len;
                }
            }
            Step::ScaleShift {
                src,
                dst,
                stride,
                scale,
                shift,
                relu,
            } => {
                let c = scale.len();
                let y = p.mem.buf_ptrs[*dst];
                let r = part(y.len / c);
                let x = slice(p.mem.buf_ptrs[*src]);
                let x = &x[r.start * stride..(r.end * stride).min(x.len())];
                // SAFETY: units write disjoint row ranges of `y`, inside it (`part` of its
                // rows); the input is a finished phase's.
                let out =
                    unsafe { std::slice::from_raw_parts_mut(y.ptr.add(r.start * c), r.len() * c) };
                crate::kernels::scale_shift_rows(x, *stride, scale, shift, *relu, out);
            }
            step => {
                // SAFETY: as above: units write disjoint parts of the output.
                let was = crate::kernels::set_serial(true);
                unsafe { seq_rows(p, step, &part) };
                crate::kernels::set_serial(was);
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let (src, dst, pad, reads_pad) = match &p.steps[ph.step] {
            Step::Direct {
                src,
                dst,
                pad,
                plan,
                ..
            } => (*src, *dst, *pad, plan.reads_pad_buffer()),
            Step::DirectDw {
                src,
                dst,
                pad,
                plan,
                ..
            } => (*src, *dst, *pad, plan.reads_pad_buffer()),
            _ => unreachable!("phase {ph:?} of a step without units"),
        };
        let input = slice(p.mem.buf_ptrs[src]);
        // The compute reads the pad buffer once the copy phase has filled it.
        let x = if reads_pad {
            slice(p.mem.pad_ptrs[pad])
        } else {
            input
        };
        let y = p.mem.buf_ptrs[dst];
        match (&p.steps[ph.step], ph.kind) {
            (Step::Direct { plan, .. }, PhaseKind::Copy) => unsafe {
                plan.copy_unit(input, p.mem.pad_ptrs[pad].ptr, u)
            },
            (Step::DirectDw { plan, .. }, PhaseKind::Copy) => unsafe {
                plan.copy_unit(input, p.mem.pad_ptrs[pad].ptr, u)
            },
            (Step::Direct { plan, skip, .. }, PhaseKind::Compute) => {
                assert!(y.len >= plan.output_len());
                let skip = skip.map(|b| slice(p.mem.buf_ptrs[b]));
                unsafe { plan.compute_unit(x, y.ptr, skip, u, threads) }
            }
            (Step::DirectDw { plan, .. }, PhaseKind::Compute) => {
                assert!(y.len >= plan.output_len());
                unsafe { plan.compute_unit(x, y.ptr, u) }
            }
            _ => unreachable!("phase {ph:?} of a step without units"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, slice, u, threads);
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use crate::{CpuPrepared, Settings};
    use greenbench_core::graph::{Graph, InputSpec, Node, Op, Padding};

    /// Whether `g` at batch 1 on two threads runs as a team when steps of `min_work` FPO
    /// are split.
    fn teamed(g: &Graph, min_work: u64) -> bool {
        let w = greenbench_core::generate_weights(g, 1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut s = Settings::new(2, pool, None);
        s.team_min_work = min_work;
        CpuPrepared::plan(g, &w, 1, &s).unwrap().team.is_some()
    }

    /// A team forms only when its split steps together have `TEAM_MIN_TOTAL` times the
    /// per-step threshold: one convolution of W FPO splits at a threshold of W / 3 but not
    /// at W / 2 (alone it is not worth waking the helper), two of them do at W / 2; none at
    /// a threshold above W.
    #[test]
    fn a_team_needs_enough_split_work() {
        if !crate::direct_kernels_available() {
            return;
        }
        let conv = |name: &str| Node::new(name, Op::conv(16, [3, 3], [1, 1], Padding::Same));
        let graph = |nodes| {
            Graph::new(
                "g",
                InputSpec {
                    shape: vec![16, 16, 16],
                    token_vocab: None,
                    parts: vec![],
                },
                nodes,
            )
            .unwrap()
        };
        let one = graph(vec![conv("c1")]);
        let two = graph(vec![conv("c1"), conv("c2")]);
        let w = greenbench_core::cost::node_cost(&one, 0).fpo();
        assert!(teamed(&one, w / 3));
        assert!(!teamed(&one, w / 2));
        assert!(teamed(&two, w / 2));
        assert!(!teamed(&two, w + 1));
    }
}
