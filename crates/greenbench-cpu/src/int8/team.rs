//! Batch-1 int8 runs shared by a team of threads (walked by `crate::crew`): each large
//! linear step is split into units the threads share — row ranges of a GEMM (pointwise
//! convolutions, dense layers over several rows), pixel ranges of an im2col or in-place
//! convolution (each unit with its own im2col block), output rows of a depthwise
//! convolution — each unit running its own requantizing epilogue; a split convolution's
//! padded image (and a stride-2 depthwise's column split) is made first, as its own phase.
//! A transformer's fp32 steps between its int8 layers split as the fp32 team splits them:
//! attention by head, layer norms and softmax by row, GELU, ReLU and residual adds by value.
//! Every other step (quantize, pools, uint8 adds, other fp32 nodes, small layers) runs whole
//! on the calling thread while the others spin. Before this a batch-1 int8 run used one core.

use super::conv::{SLACK, im2col_u8, pad_rows, padded_len, split_len, split_rows, split_shape};
use super::depthwise::depthwise_row_s1;
#[cfg(target_arch = "x86_64")]
use super::dw_vnni::dw_vnni_rows;
use super::exec::run_step;
use super::quantize::quantize;
use super::step::{Lin, Mem, Plan, Step};
use crate::crew::Crew;
use crate::crew::StepSeconds;
use crate::step::step_work;
use greenbench_core::graph::{Graph, Op};
use std::ops::Range;

/// Units per thread of a split step (enough for the faster thread to take over the slower
/// one's tail).
const UNITS_PER_THREAD: usize = 4;

/// A team runs only when the steps it splits have at least this many times the per-step
/// threshold of work together: below that, waking the helper costs what sharing saves.
/// Measured on the dev VM (batch 1, 2 threads, int8, us): lenet5 (two split convolutions,
/// 0.48 M FPO) 9.9-10.0 before the team (one thread), 10.8-12.9 as a team; ds-cnn (5.8 M)
/// 40-43 -> 29-30.
const TEAM_MIN_TOTAL: u64 = 8;

#[derive(Clone, Copy)]
enum Kind {
    /// The whole step, on the calling thread.
    Whole,
    /// Units of `per` rows of `total` of the padded image (and a stride-2 depthwise's
    /// column split) of a split step.
    Prep { per: usize, total: usize },
    /// Units of `per` rows (GEMM rows, pixels or output rows) of `total`.
    Rows { per: usize, total: usize },
    /// Units of `per` values of `total` of a quantization.
    Values { per: usize, total: usize },
    /// Units of `per` of `total` attention heads, rows (layer norm, softmax) or values
    /// (elementwise) of an fp32 step (see [`seq_split`]).
    Seq { per: usize, total: usize },
}

impl Kind {
    /// The unit count, and whether the phase is whole.
    fn units(self) -> (usize, bool) {
        match self {
            Kind::Whole => (1, true),
            Kind::Prep { per, total }
            | Kind::Rows { per, total }
            | Kind::Values { per, total }
            | Kind::Seq { per, total } => (total.div_ceil(per), false),
        }
    }
}

/// `per` for `total` rows split into about `target` units of a multiple of `tile` rows,
/// or `None` when that leaves fewer than two units.
fn split(total: usize, target: usize, tile: usize) -> Option<usize> {
    let per = total.div_ceil(target).next_multiple_of(tile).max(1);
    (total.div_ceil(per) >= 2).then_some(per)
}

struct Phase {
    step: usize,
    kind: Kind,
}

/// How the team splits fp32 node `i` of `g` (batch 1): its unit count (attention heads, rows
/// of the last axis, or values) and the multiple units are cut at; `None` for nodes that run
/// whole.
fn seq_split(g: &Graph, i: usize) -> Option<(usize, usize)> {
    let out: usize = g.out_shape(i).iter().product();
    match &g.nodes[i].op {
        Op::Attention { heads, .. } => Some((*heads, 1)),
        Op::LayerNorm { .. } | Op::Softmax => {
            let last = *g.value_shape(g.node_inputs(i)[0]).last()?;
            Some((out / last.max(1), 1))
        }
        Op::Gelu | Op::Relu | Op::Add => Some((out, 16)),
        _ => None,
    }
}

/// A buffer's data pointer and length, for the team's threads.
#[derive(Clone, Copy)]
struct Raw<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> Raw<T> {
    fn of(v: &mut [T]) -> Self {
        Raw {
            ptr: v.as_mut_ptr(),
            len: v.len(),
        }
    }

    /// Values `r`, read only.
    ///
    /// # Safety
    /// No thread writes them meanwhile.
    unsafe fn part<'a>(self, r: Range<usize>) -> &'a [T] {
        assert!(r.start <= r.end && r.end <= self.len, "read past a buffer");
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }

    /// Values `r`, written by this unit alone.
    ///
    /// # Safety
    /// No other thread reads or writes them meanwhile.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part_mut<'a>(self, r: Range<usize>) -> &'a mut [T] {
        assert!(r.start <= r.end && r.end <= self.len, "write past a buffer");
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }
}

/// The memory of the one worker a team runs on, as raw pointers (refreshed each run).
struct Ptrs {
    f: Vec<Raw<f32>>,
    q: Vec<Raw<u8>>,
    cols: Raw<u8>,
    acc: Raw<i32>,
    scratch: Raw<f32>,
    /// The run's input (read only).
    input: Raw<f32>,
    mem: *mut Mem,
}

// SAFETY: the pointers are used as `QTeam::run` says: units write disjoint parts, read what
// finished phases wrote, and whole phases run on one thread while the others only spin.
unsafe impl Send for Ptrs {}
// SAFETY: as above.
unsafe impl Sync for Ptrs {}

/// A batch-1 plan's phases, and the crew that walks them.
pub(super) struct QTeam {
    phases: Vec<Phase>,
    crew: Crew,
    ptrs: Ptrs,
    /// Bytes of the worker's `cols` a run needs: each split im2col step's padded image and
    /// every unit's block.
    pub(super) cols_len: usize,
}

/// Per unit: an im2col block of `per` pixels of `k` bytes, and its slack.
fn block_len(per: usize, k: usize) -> usize {
    per * k + SLACK
}

impl QTeam {
    /// The team for `plan` at batch 1 on `threads` threads, or `None` when no step has
    /// `min_work` FPO, or the split steps together have less than [`TEAM_MIN_TOTAL`] times
    /// it (then one thread runs the plan).
    pub(super) fn plan(plan: &Plan, threads: usize, min_work: u64) -> Option<QTeam> {
        let mut phases = Vec::new();
        let mut split_work = 0u64;
        let mut cols_len = 0;
        for (i, step) in plan.steps.iter().enumerate() {
            let whole = Phase {
                step: i,
                kind: Kind::Whole,
            };
            let target = threads * UNITS_PER_THREAD;
            if let Step::Quantize { dst, .. } = step {
                // Quantizing the input: ~5 FPO a value, in 16-value vectors.
                let total = plan.layout.u8_len[*dst];
                match split(total, target, 64) {
                    Some(per) if 5 * total as u64 >= min_work => {
                        split_work += 5 * total as u64;
                        phases.push(Phase {
                            step: i,
                            kind: Kind::Values { per, total },
                        })
                    }
                    _ => phases.push(whole),
                }
                continue;
            }
            if let Step::Fp32 { node, .. } = step {
                let work = step_work(&plan.graph, *node, 1);
                let per = seq_split(&plan.graph, *node)
                    .and_then(|(total, tile)| split(total, target, tile).map(|per| (per, total)))
                    .filter(|_| work >= min_work);
                match per {
                    Some((per, total)) => {
                        split_work += work;
                        phases.push(Phase {
                            step: i,
                            kind: Kind::Seq { per, total },
                        })
                    }
                    None => phases.push(whole),
                }
                continue;
            }
            let Step::Linear { node, src, lin, .. } = step else {
                phases.push(whole);
                continue;
            };
            // (rows to split, GEMM tile rows, padded image first, im2col bytes per row)
            let (total, tile, prep, im2col) = match &**lin {
                Lin::Gemm { gemm, k } => (plan.layout.u8_len[*src] / k, gemm.tile_rows(), false, 0),
                Lin::Conv { geom: c, gemms } if c.groups == 1 => {
                    let k = c.kh * c.kw * c.cin;
                    (c.ho * c.wo, gemms[0].tile_rows(), true, k)
                }
                Lin::InPlace {
                    geom: c,
                    gemm,
                    lanes,
                    ..
                } => {
                    let pixels = lanes.as_ref().map_or(c.ho * c.wo, |l| l.pixels());
                    (pixels, gemm.tile_rows(), true, 0)
                }
                // The row kernels (VNNI, or stride 1); the plain loop runs whole.
                Lin::Depthwise { geom: c, quads, .. }
                    if c.sw == 1 || (c.sw == 2 && !quads.is_empty()) =>
                {
                    (c.ho, 1, true, 0)
                }
                _ => (0, 1, false, 0),
            };
            // The node's counted work (greenbench-core's FPO), as the fp32 team weighs steps.
            let work = step_work(&plan.graph, *node, 1);
            let Some(per) = split(total, target, tile).filter(|_| work >= min_work) else {
                phases.push(whole);
                continue;
            };
            split_work += work;
            let units = total.div_ceil(per);
            let c = match &**lin {
                Lin::Conv { geom, .. }
                | Lin::InPlace { geom, .. }
                | Lin::Depthwise { geom, .. } => Some(geom),
                Lin::Gemm { .. } => None,
            };
            if let Some(c) = c.filter(|_| prep) {
                if im2col > 0 {
                    cols_len = cols_len.max(padded_len(c) + units * block_len(per, im2col));
                }
                // The padded image, by rows (one unit when too small to share).
                let hp = c.h + c.pad_top + c.pad_bottom;
                let per = split(hp, target, 1).unwrap_or(hp);
                phases.push(Phase {
                    step: i,
                    kind: Kind::Prep { per, total: hp },
                });
            }
            phases.push(Phase {
                step: i,
                kind: Kind::Rows { per, total },
            });
        }
        if split_work < TEAM_MIN_TOTAL * min_work
            || phases.iter().all(|p| matches!(p.kind, Kind::Whole))
        {
            return None;
        }
        let units = phases.iter().map(|p| p.kind.units()).collect();
        Some(QTeam {
            phases,
            crew: Crew::new(units, threads),
            ptrs: Ptrs {
                f: vec![
                    Raw {
                        ptr: std::ptr::null_mut(),
                        len: 0
                    };
                    plan.layout.f32_len.len()
                ],
                q: vec![
                    Raw {
                        ptr: std::ptr::null_mut(),
                        len: 0
                    };
                    plan.layout.u8_len.len()
                ],
                cols: Raw {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
                acc: Raw {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
                scratch: Raw {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
                input: Raw {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                },
                mem: std::ptr::null_mut(),
            },
            cols_len,
        })
    }

    /// Time the team's steps from the next run on (`Prepared::time_steps`).
    pub(super) fn start_clock(&self) {
        self.crew.start_clock();
    }

    /// The timed runs and each step's wall and per-thread busy seconds
    /// (`Crew::step_seconds`); `None` when the clock was not started.
    pub(super) fn step_seconds(&self, steps: usize) -> Option<(u64, Vec<StepSeconds>)> {
        self.crew
            .step_seconds(self.phases.iter().map(|p| p.step), steps)
    }

    /// Run `plan` over `m` (one example, its input loaded) on the current rayon pool's
    /// threads.
    pub(super) fn run(&mut self, plan: &Plan, m: &mut Mem, input: &[f32]) {
        assert_eq!(m.batch, 1, "a team runs one example");
        assert!(m.cols.len() >= self.cols_len, "cols planned for the team");
        for (r, q) in self.ptrs.q.iter_mut().zip(&mut m.q) {
            *r = Raw::of(q);
        }
        for (r, f) in self.ptrs.f.iter_mut().zip(&mut m.f) {
            *r = Raw::of(f);
        }
        self.ptrs.cols = Raw::of(&mut m.cols);
        self.ptrs.acc = Raw::of(&mut m.acc);
        self.ptrs.scratch = Raw::of(&mut m.scratch);
        // Only ever read (`Raw::part`): the quantize of a direct input reads it in place.
        self.ptrs.input = Raw {
            ptr: input.as_ptr().cast_mut(),
            len: input.len(),
        };
        if plan.layout.input_direct {
            self.ptrs.f[plan.layout.input] = self.ptrs.input;
        }
        self.ptrs.mem = m;
        let this = &*self;
        // SAFETY: the crew starts a phase only when the previous one is done; whole and
        // prep phases run on the calling thread alone (the others spin without touching
        // the memory); the units of a split phase write disjoint ranges (`unit`).
        this.crew.run(&|k, u| unsafe {
            #[cfg(target_arch = "x86_64")]
            if plan.wide {
                return this.unit_avx512(plan, k, u);
            }
            this.unit(plan, k, u)
        });
    }

    /// `unit` with its integer loops compiled for AVX-512.
    ///
    /// # Safety
    /// As `unit`; the CPU has AVX-512 F/BW/VL/DQ (the plan is `wide`).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
    unsafe fn unit_avx512(&self, plan: &Plan, k: usize, u: usize) {
        unsafe { self.unit(plan, k, u) }
    }

    /// Unit `u` of phase `k`.
    ///
    /// # Safety
    /// Called by the crew of `run`: phases in order, whole and prep phases on one thread.
    #[inline(always)]
    unsafe fn unit(&self, plan: &Plan, k: usize, u: usize) {
        let ph = &self.phases[k];
        let step = &plan.steps[ph.step];
        match ph.kind {
            Kind::Whole => {
                // SAFETY: this thread alone touches the memory during a whole phase.
                let m = unsafe { &mut *self.ptrs.mem };
                let was = crate::kernels::set_serial(true);
                // SAFETY: the input outlives the run and nothing writes it.
                let input = unsafe { self.ptrs.input.part(0..self.ptrs.input.len) };
                run_step(plan, step, m, input);
                crate::kernels::set_serial(was);
            }
            Kind::Prep { per, total } => {
                // SAFETY: units of one phase take disjoint rows.
                unsafe { self.prep(step, u * per..((u + 1) * per).min(total)) }
            }
            Kind::Values { per, total } => {
                let Step::Quantize { src, dst, p } = step else {
                    unreachable!("values of a quantization")
                };
                let r = u * per..((u + 1) * per).min(total);
                // SAFETY: units of one phase take disjoint values; the input is loaded.
                let (x, y) = unsafe {
                    (
                        self.ptrs.f[*src].part(r.clone()),
                        self.ptrs.q[*dst].part_mut(r),
                    )
                };
                quantize(x, *p, y, plan.wide);
            }
            Kind::Rows { per, total } => {
                let r = u * per..((u + 1) * per).min(total);
                // SAFETY: units of one phase take disjoint row ranges.
                unsafe { self.rows(step, r, u, per) }
            }
            Kind::Seq { per, total } => {
                let r = u * per..((u + 1) * per).min(total);
                let was = crate::kernels::set_serial(true);
                // SAFETY: units of one phase take disjoint heads, rows or values.
                unsafe { self.seq(&plan.graph, step, r) };
                crate::kernels::set_serial(was);
            }
        }
    }

    /// Heads, rows or values `r` (as [`seq_split`] counts them) of a split fp32 step.
    ///
    /// # Safety
    /// No other unit writes the outputs of `r`; the inputs are finished phases'.
    #[inline(always)]
    unsafe fn seq(&self, g: &Graph, step: &Step, r: Range<usize>) {
        let Step::Fp32 {
            node,
            ins,
            dst,
            data,
            ..
        } = step
        else {
            unreachable!("a split fp32 step")
        };
        let (x, y) = (self.ptrs.f[ins[0]], self.ptrs.f[*dst]);
        let in_shape = g.value_shape(g.node_inputs(*node)[0]);
        let last = *in_shape.last().expect("non-empty");
        // Values `v` of the input and of this unit's output.
        let io = |v: Range<usize>| unsafe { (x.part(v.clone()), y.part_mut(v)) };
        match &g.nodes[*node].op {
            Op::Attention {
                heads,
                head_dim,
                causal,
                key_bias,
            } => {
                let (s, sc) = (in_shape[0], self.ptrs.scratch);
                assert!(r.end * s * s <= sc.len, "attention scratch too short");
                let bias = key_bias.then(|| {
                    let b = self.ptrs.f[ins[1]];
                    unsafe { b.part(0..b.len) }
                });
                // SAFETY: head `t` writes its own scores (`t * s * s` on) and its own
                // columns of `y`.
                unsafe {
                    crate::seq::attention_tasks(
                        x.part(0..x.len),
                        (s, *heads, *head_dim),
                        *causal,
                        bias,
                        r,
                        sc.ptr,
                        y.ptr,
                        y.len,
                    )
                }
            }
            Op::LayerNorm { eps } => {
                let (x, o) = io(r.start * last..r.end * last);
                crate::seq::layer_norm_rows(x, last, &data[0], &data[1], *eps, o)
            }
            Op::Softmax => {
                let (x, o) = io(r.start * last..r.end * last);
                crate::seq::softmax_rows(x, last, o)
            }
            Op::Gelu => {
                let (x, o) = io(r);
                crate::kernels::gelu(x, o)
            }
            Op::Relu => {
                let (x, o) = io(r);
                crate::kernels::relu(x, o)
            }
            Op::Add => {
                let b = unsafe { self.ptrs.f[ins[1]].part(r.clone()) };
                let (x, o) = io(r);
                crate::kernels::add(x, b, o)
            }
            _ => unreachable!("seq_split splits only these"),
        }
    }

    /// Rows `r` of the padded image of a split step's input, or of a stride-2 VNNI
    /// depthwise's column split (made from the input: that step reads no padded image).
    ///
    /// # Safety
    /// No other unit writes rows `r`; the input is a finished phase's.
    #[inline(always)]
    unsafe fn prep(&self, step: &Step, r: Range<usize>) {
        let Step::Linear { src, zx, lin, .. } = step else {
            unreachable!("only linear steps are prepared")
        };
        let c = match &**lin {
            Lin::Conv { geom, .. } | Lin::InPlace { geom, .. } | Lin::Depthwise { geom, .. } => {
                geom
            }
            Lin::Gemm { .. } => unreachable!("a GEMM reads its input in place"),
        };
        let (x, cols) = (self.ptrs.q[*src], self.ptrs.cols);
        // SAFETY: the input is finished.
        let img = unsafe { x.part(0..x.len) };
        if let Lin::Depthwise { quads, .. } = &**lin
            && c.sw == 2
            && !quads.is_empty()
        {
            // The VNNI stride-2 rows read only the column split: made from the image.
            let (wq, half) = split_shape(c);
            let (at, n) = (padded_len(c), r.len() * wq * c.cin);
            let (e0, o0) = (at + r.start * wq * c.cin, at + half + r.start * wq * c.cin);
            // SAFETY: these rows of each half are this unit's.
            let (even, odd) = unsafe { (cols.part_mut(e0..e0 + n), cols.part_mut(o0..o0 + n)) };
            split_rows(img, c, *zx as u8, r, even, odd);
            return;
        }
        let prow = (c.w + c.pad_left + c.pad_right) * c.cin;
        // SAFETY: these padded rows are this unit's.
        let pad = unsafe { cols.part_mut(r.start * prow..r.end * prow) };
        pad_rows(img, c, *zx as u8, r.clone(), pad);
    }

    /// Rows `r` of a split linear step (unit `u` of `per` rows): its sums and its outputs.
    ///
    /// # Safety
    /// No other unit writes rows `r`; the input and padded image are finished phases'.
    #[inline(always)]
    unsafe fn rows(&self, step: &Step, r: Range<usize>, u: usize, per: usize) {
        let Step::Linear {
            src, dst, lin, epi, ..
        } = step
        else {
            unreachable!("a split step is linear")
        };
        let (x, y, acc, cols) = (
            self.ptrs.q[*src],
            self.ptrs.q[*dst],
            self.ptrs.acc,
            self.ptrs.cols,
        );
        // Sums and outputs of rows `r` of `n` values: this unit's alone.
        let out = |n: usize| unsafe {
            (
                acc.part_mut(r.start * n..r.end * n),
                y.part_mut(r.start * n..r.end * n),
            )
        };
        match &**lin {
            Lin::Gemm { gemm, k } => {
                let (a, o) = out(gemm.n);
                let x = unsafe { x.part(r.start * k..x.len) };
                gemm.run_epi(x, *k, r.len(), a, epi, 0, o, gemm.n);
            }
            Lin::Conv { geom: c, gemms } => {
                assert_eq!(c.groups, 1, "grouped im2col convolutions run whole");
                let (pl, k) = (padded_len(c), c.kh * c.kw * c.cin);
                let wp = c.w + c.pad_left + c.pad_right;
                let at = pl + u * block_len(per, k);
                let (pad, block) =
                    unsafe { (cols.part(0..pl), cols.part_mut(at..at + block_len(per, k))) };
                im2col_u8(pad, wp, c, 0, r.clone(), block);
                let (a, o) = out(c.cout);
                gemms[0].run_epi(block, k, r.len(), a, epi, 0, o, c.cout);
            }
            Lin::InPlace {
                geom: c,
                gemm,
                bases,
                qoff,
                lanes,
            } => {
                let pad = unsafe { cols.part(0..padded_len(c)) };
                let (a, o) = out(c.cout);
                match lanes {
                    Some(l) => l.run(pad, r.clone(), o),
                    None => {
                        gemm.run_in_place_epi(pad, &bases[r.clone()], qoff, a, epi, 0, o, c.cout)
                    }
                }
            }
            Lin::Depthwise {
                geom: c,
                tiled,
                span,
                quads,
                qepi,
                ..
            } => {
                let (pl, wp) = (padded_len(c), c.w + c.pad_left + c.pad_right);
                let row = c.wo * c.cout;
                let (a, o) = out(row);
                let pad = unsafe { cols.part(0..pl) };
                if quads.is_empty() {
                    for (j, oy) in r.clone().enumerate() {
                        let acc_row = &mut a[j * row..(j + 1) * row];
                        depthwise_row_s1(pad, wp, c, tiled, *span, oy, acc_row);
                    }
                    epi.finish_run(a, o);
                    return;
                }
                // The VNNI rows, their (quad-permuted) epilogue fused: stride 1 reads the
                // padded image, stride 2 its column split (made in the prep phase, after the
                // image).
                let qepi = qepi.as_deref().expect("planned with the VNNI quads");
                let (src, w, odd) = if c.sw == 1 {
                    (pad, wp, 0)
                } else {
                    let (wq, half) = split_shape(c);
                    (unsafe { cols.part(pl..pl + split_len(c)) }, wq, half)
                };
                // SAFETY: quads are built only where AVX-512 F/BW/VL/VNNI are present; the
                // image and its split have SLACK bytes past their ends.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    dw_vnni_rows(src, w, odd, c, quads, *span, r.clone(), qepi, o)
                };
            }
        }
    }
}
