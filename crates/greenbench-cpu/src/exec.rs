//! Executing a plan's steps: each step kind on its kernels (direct AVX-512, packed GEMM, or
//! the portable im2col + `gemm` crate path), and the peak's matmul on the caller's operand.

use crate::CpuPrepared;
use crate::crew::StepSeconds;
#[cfg(target_arch = "x86_64")]
use crate::direct;
use crate::kernels::{self, Mat, Threads};
#[cfg(target_arch = "x86_64")]
use crate::spin::FINISH_SPIN;
use crate::step::Step;
use greenbench_core::backend::{StepTime, add_step_time};
use std::time::{Duration, Instant};

/// The time each step of a plan took over the runs since its clock started.
pub(crate) struct StepClock {
    per_step: Vec<Duration>,
    runs: u64,
}

impl CpuPrepared {
    /// The reduction length of a prepared matmul (`prepare_matmul`: one GEMM step).
    pub(crate) fn matmul_k(&self) -> usize {
        match &self.steps[0] {
            #[cfg(target_arch = "x86_64")]
            Step::Packed { plan, .. } => plan.k(),
            Step::Gemm { k, .. } => *k,
            _ => unreachable!("a prepared matmul is one GEMM step"),
        }
    }

    /// Run a prepared matmul on the caller's left operand in place, as ONNX Runtime's MatMul
    /// reads its input: copying it into a buffer first cost ~0.5-0.7 ms of a 1024^3 product
    /// on the dev VM (`greenbench peak` read 287 GFLOP/s, 7.5 ms, with the copy; the same
    /// `gemm` crate call without it 306-316, 6.8-7.0 ms, timed standalone). Called from the
    /// caller's thread (not inside the pool).
    pub(crate) fn execute_matmul(&mut self, a: &[f32]) {
        let threads = self.settings.threads;
        let out = &mut self.mem.bufs[self.mem.output];
        match &self.steps[0] {
            #[cfg(target_arch = "x86_64")]
            Step::Packed { rows, plan, .. } => {
                plan.run_from_caller(&self.settings.pool, a, *rows, out, threads, FINISH_SPIN)
            }
            Step::Gemm { rows, k, n, w, .. } => self.settings.pool.install(|| {
                kernels::sgemm(
                    *rows,
                    *n,
                    *k,
                    Mat::rows(a, *k),
                    Mat::rows(w, *n),
                    out,
                    *n,
                    Threads::Pool(threads),
                )
            }),
            _ => unreachable!("a prepared matmul is one GEMM step"),
        }
    }

    /// Run the steps in order on this thread (each split across the pool when marked).
    pub(crate) fn execute(&mut self) {
        if self.clock.is_some() {
            return self.execute_timed();
        }
        for i in 0..self.steps.len() {
            let par = self.par[i];
            self.exec_step(i, par);
        }
    }

    /// Time the steps of later runs (`Prepared::time_steps`).
    pub(crate) fn start_clock(&mut self) {
        self.clock = Some(StepClock {
            per_step: vec![Duration::ZERO; self.steps.len()],
            runs: 0,
        });
    }

    /// `execute`, reading the clock around each step.
    fn execute_timed(&mut self) {
        let mut clock = self.clock.take().expect("timed runs have a clock");
        for (i, spent) in clock.per_step.iter_mut().enumerate() {
            let par = self.par[i];
            let t0 = Instant::now();
            self.exec_step(i, par);
            *spent += t0.elapsed();
        }
        clock.runs += 1;
        self.clock = Some(clock);
    }

    /// This plan's timed steps, added to `acc` (`greenbench_core::backend::add_step_time`).
    pub(crate) fn clock_into(&self, acc: &mut Vec<StepTime>) {
        let Some(clock) = &self.clock else { return };
        let per_step: Vec<_> = clock
            .per_step
            .iter()
            .map(|d| (d.as_secs_f64(), Vec::new()))
            .collect();
        self.steps_into(&per_step, clock.runs, acc);
    }

    /// Each step's (seconds, each team thread's busy seconds) over `runs` runs, added to `acc`
    /// (`greenbench_core::backend::add_step_time`). Steps in a row over the same nodes (a
    /// grouped 1x1 convolution's one step per group) are one entry: each of its examples is
    /// computed once.
    pub(crate) fn steps_into(&self, per_step: &[StepSeconds], runs: u64, acc: &mut Vec<StepTime>) {
        let mut mine: Vec<StepTime> = Vec::new();
        for (i, (seconds, busy)) in per_step.iter().enumerate() {
            let (first, last) = self.step_nodes[i];
            let t = StepTime {
                kernel: self.steps[i].kernel(),
                nodes: (first..=last).collect(),
                seconds: *seconds,
                threads: 1,
                examples: runs * self.batch as u64,
                thread_busy: busy.clone(),
            };
            match mine.last_mut() {
                Some(m)
                    if i > 0 && self.step_nodes[i - 1] == (first, last) && m.kernel == t.kernel =>
                {
                    m.seconds += t.seconds;
                    m.thread_busy
                        .iter_mut()
                        .zip(&t.thread_busy)
                        .for_each(|(m, t)| *m += t);
                }
                _ => mine.push(t),
            }
        }
        mine.into_iter().for_each(|t| add_step_time(acc, t));
    }

    /// Run step `i`, split across the current rayon pool when `par`.
    pub(crate) fn exec_step(&mut self, i: usize, par: bool) {
        let step = &self.steps[i];
        let gemm_threads = if par {
            Threads::Pool(self.settings.threads)
        } else {
            Threads::One
        };
        let was_serial = kernels::set_serial(!par);
        let dst_id = step.dst();
        // Move the destination out so sources can be borrowed alongside (no allocation).
        let mut out = std::mem::take(&mut self.mem.bufs[dst_id]);
        let bufs = &self.mem.bufs;
        match step {
            #[cfg(target_arch = "x86_64")]
            Step::Direct {
                src,
                plan,
                pad,
                skip,
                ..
            } => plan.run(
                &bufs[*src],
                &mut out,
                skip.map(|b| bufs[b].as_slice()),
                &mut self.mem.pads[*pad],
                par,
                self.settings.threads,
            ),
            #[cfg(target_arch = "x86_64")]
            Step::Packed {
                src, rows, plan, ..
            } => plan.run(
                &bufs[*src],
                *rows,
                &mut out,
                if par { self.settings.threads } else { 1 },
            ),
            Step::Gemm {
                src,
                rows,
                k,
                n,
                w,
                bias,
                relu,
                ..
            } => {
                kernels::sgemm(
                    *rows,
                    *n,
                    *k,
                    Mat::rows(&bufs[*src], *k),
                    Mat::rows(w, *n),
                    &mut out,
                    *n,
                    gemm_threads,
                );
                kernels::bias_act(&mut out, *rows, *n, *n, bias.as_deref(), *relu);
            }
            Step::Conv {
                src,
                geom,
                w,
                bias,
                relu,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.cout);
                let rows = batch * geom.ho * geom.wo;
                let cin_g = geom.cin / geom.groups;
                let cout_g = geom.cout / geom.groups;
                let kk = geom.kh * geom.kw * cin_g;
                for grp in 0..geom.groups {
                    kernels::im2col(&bufs[*src], batch, geom, grp, &mut self.mem.scratch);
                    kernels::sgemm(
                        rows,
                        cout_g,
                        kk,
                        Mat::rows(&self.mem.scratch, kk),
                        Mat {
                            data: &w[grp * cout_g..],
                            rs: geom.cout,
                            cs: 1,
                        },
                        &mut out[grp * cout_g..],
                        geom.cout,
                        gemm_threads,
                    );
                }
                kernels::bias_act(&mut out, rows, geom.cout, geom.cout, bias.as_deref(), *relu);
            }
            #[cfg(target_arch = "x86_64")]
            Step::DirectDw { src, plan, pad, .. } => {
                plan.run(&bufs[*src], &mut out, &mut self.mem.pads[*pad], par)
            }
            Step::Depthwise {
                src,
                geom,
                w,
                w_tiled,
                bias,
                relu,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.cout);
                kernels::depthwise(
                    &bufs[*src],
                    batch,
                    geom,
                    w,
                    w_tiled.as_deref(),
                    bias.as_deref(),
                    *relu,
                    &mut out,
                );
            }
            Step::Relu { src, .. } => kernels::relu(&bufs[*src], &mut out),
            Step::Gelu { src, .. } => kernels::gelu(&bufs[*src], &mut out),
            Step::Softmax { src, n, .. } => crate::seq::softmax_rows(&bufs[*src], *n, &mut out),
            Step::LayerNorm {
                src,
                n,
                gamma,
                beta,
                eps,
                ..
            } => crate::seq::layer_norm_rows(&bufs[*src], *n, gamma, beta, *eps, &mut out),
            Step::ScaleShift {
                src,
                stride,
                scale,
                shift,
                relu,
                ..
            } => kernels::scale_shift(&bufs[*src], *stride, scale, shift, *relu, &mut out),
            Step::Pool {
                src,
                geom,
                max,
                direct,
                #[cfg(target_arch = "x86_64")]
                narrow,
                ..
            } => {
                let batch = out.len() / (geom.ho * geom.wo * geom.c);
                #[cfg(target_arch = "x86_64")]
                if *direct {
                    direct::pool(
                        &bufs[*src],
                        batch,
                        geom,
                        *max,
                        narrow.as_deref(),
                        &mut out,
                        par,
                    );
                } else {
                    kernels::pool(&bufs[*src], batch, geom, *max, &mut out);
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = direct;
                    kernels::pool(&bufs[*src], batch, geom, *max, &mut out);
                }
            }
            Step::GlobalAvgPool { src, rows, c, .. } => {
                kernels::global_avg_pool(&bufs[*src], out.len() / c, *rows, *c, &mut out)
            }
            Step::Add { a, b, .. } => kernels::add(&bufs[*a], &bufs[*b], &mut out),
            Step::Unary { src, f, .. } => kernels::unary(&bufs[*src], *f, &mut out),
            Step::Mul {
                a, b, a_len, b_len, ..
            } => kernels::mul_broadcast(&bufs[*a], &bufs[*b], *a_len, *b_len, &mut out),
            Step::Concat {
                srcs, outer, row, ..
            } => {
                let mut offset = 0;
                for &(b, part) in srcs {
                    kernels::concat_part(&bufs[b], part, offset, *row, *outer, &mut out);
                    offset += part;
                }
            }
            Step::Fill { values, .. } => {
                for y in out.chunks_mut(values.len()) {
                    y.copy_from_slice(values);
                }
            }
            Step::Slice {
                src,
                outer,
                row,
                offset,
                part,
                ..
            } => {
                let x = &bufs[*src];
                for o in 0..*outer {
                    out[o * part..(o + 1) * part]
                        .copy_from_slice(&x[o * row + offset..o * row + offset + part]);
                }
            }
            Step::ChannelShuffle {
                src,
                c,
                groups,
                border: None,
                ..
            } => kernels::channel_shuffle(&bufs[*src], *c, *groups, &mut out),
            Step::ChannelShuffle {
                src,
                c,
                groups,
                border: Some(lines),
                ..
            } => {
                let row = lines.w * c;
                for (i, x) in bufs[*src].chunks_exact(row).enumerate() {
                    let o = lines.start(i, *c);
                    kernels::shuffle_pixels(x, *c, *groups, &mut out[o..o + row]);
                }
            }
            Step::Embedding {
                src,
                seq,
                dim,
                table,
                pos,
                ..
            } => crate::seq::embedding(&bufs[*src], *seq, table, pos.as_deref(), *dim, &mut out),
            Step::Attention {
                src,
                s,
                h,
                d,
                causal,
                bias,
                ..
            } => {
                let batch = out.len() / (s * h * d);
                crate::seq::attention(
                    &bufs[*src],
                    batch,
                    (*s, *h, *d),
                    *causal,
                    bias.map(|b| bufs[b].as_slice()),
                    &mut self.mem.scratch,
                    &mut out,
                );
            }
            Step::Binary { a, b, map, op, .. } => {
                kernels::binary(&bufs[*a], &bufs[*b], map, *op, &mut out)
            }
            Step::BinaryConst {
                src,
                c,
                map,
                op,
                left,
                ..
            } => {
                let x = &bufs[*src];
                let (a, b) = if *left {
                    (&c[..], &x[..])
                } else {
                    (&x[..], &c[..])
                };
                kernels::binary(a, b, map, *op, &mut out)
            }
            Step::Transpose { src, map, .. } => kernels::transpose(&bufs[*src], map, &mut out),
            Step::MatMul {
                a,
                b,
                geom,
                a_len,
                b_len,
                ..
            } => kernels::matmul(&bufs[*a], &bufs[*b], geom, *a_len, *b_len, &mut out),
        }
        self.mem.bufs[dst_id] = out;
        kernels::set_serial(was_serial);
    }
}
