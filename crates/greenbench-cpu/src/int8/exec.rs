//! Execution: one plan's steps over a worker's memory: the linear layers (im2col or in
//! place, GEMM, epilogue), the uint8 pools and adds, the borders, and the fp32 nodes on this
//! crate's fp32 kernels.

use super::add::add_u8;
use super::conv::{SLACK, im2col_u8, pad_image, padded_len, split_image, split_len};
use super::depthwise::{depthwise_row_s1, depthwise_u8};
#[cfg(target_arch = "x86_64")]
use super::dw_vnni::dw_vnni_rows;
use super::epilogue::Epi;
use super::gemm::in_burst;
use super::pool::{global_avg_u8, pool_u8};
use super::quantize::quantize;
use super::step::{Lin, Mem, Plan, Step};
use crate::crew::StepSeconds;
use crate::kernels;
use greenbench_core::graph::{Graph, MatMulGeom, Op};
use greenbench_core::strided::Strided;

/// The plan's steps over `m`, whose input buffer holds `input` (this sub-batch's), or which
/// reads it from `input` when the plan's input is direct.
pub(super) fn execute(plan: &Plan, m: &mut Mem, input: &[f32]) {
    if let Some((mut per_step, runs)) = m.clock.take() {
        // Timed (`Prepared::time_steps`): the clock read around each step.
        for (step, spent) in plan.steps.iter().zip(per_step.iter_mut()) {
            let t0 = std::time::Instant::now();
            run_step(plan, step, m, input);
            *spent += t0.elapsed();
        }
        m.clock = Some((per_step, runs + 1));
        return;
    }
    for step in &plan.steps {
        run_step(plan, step, m, input);
    }
}

/// `m`'s timed steps, added to `acc` (`greenbench_core::backend::add_step_time`).
pub(super) fn clock_into(plan: &Plan, m: &Mem, acc: &mut Vec<greenbench_core::backend::StepTime>) {
    let Some((per_step, runs)) = &m.clock else {
        return;
    };
    let per_step: Vec<_> = per_step
        .iter()
        .map(|d| (d.as_secs_f64(), Vec::new()))
        .collect();
    steps_into(plan, &per_step, *runs * m.batch as u64, acc);
}

/// Each step's (seconds, each team thread's busy seconds) over runs of `examples` examples in
/// all, added to `acc` (`greenbench_core::backend::add_step_time`).
pub(super) fn steps_into(
    plan: &Plan,
    per_step: &[StepSeconds],
    examples: u64,
    acc: &mut Vec<greenbench_core::backend::StepTime>,
) {
    for ((step, (seconds, busy)), node) in plan.steps.iter().zip(per_step).zip(&plan.step_nodes) {
        greenbench_core::backend::add_step_time(
            acc,
            greenbench_core::backend::StepTime {
                kernel: step.kernel(&plan.graph),
                nodes: match step {
                    Step::Linear { node, last, .. } => (*node..=*last).collect(),
                    _ => node.iter().copied().collect(),
                },
                seconds: *seconds,
                threads: 1,
                examples,
                thread_busy: busy.clone(),
            },
        );
    }
}

/// One step, its integer loops compiled for AVX-512 where the plan is `wide`.
#[inline(always)]
pub(super) fn run_step(plan: &Plan, step: &Step, m: &mut Mem, input: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if plan.wide && !matches!(step, Step::Fp32 { .. }) {
        // SAFETY: AVX-512 F/BW/VL/DQ are present (`wide_int8`).
        unsafe { execute_step_avx512(plan, step, m, input) };
        return;
    }
    execute_step(plan, step, m, input);
}

/// The integer loops compiled for AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
pub(super) unsafe fn execute_step_avx512(plan: &Plan, step: &Step, m: &mut Mem, input: &[f32]) {
    execute_step(plan, step, m, input)
}

#[inline(always)]
pub(super) fn execute_step(plan: &Plan, step: &Step, m: &mut Mem, input: &[f32]) {
    let batch = m.batch;
    {
        match step {
            Step::Quantize { src, dst, p } => {
                let x = if plan.layout.input_direct && *src == plan.layout.input {
                    input
                } else {
                    &m.f[*src]
                };
                quantize(x, *p, &mut m.q[*dst], plan.wide)
            }
            Step::Lut { src, dst, table } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                super::lut::lookup(&m.q[*src], table, &mut out);
                m.q[*dst] = out;
            }
            Step::Dequantize { src, dst, p } => {
                let (x, y) = (&m.q[*src], &mut m.f[*dst]);
                let (s, z) = (p.scale, p.zero);
                y.iter_mut()
                    .zip(x)
                    .for_each(|(f, &q)| *f = (q as i32 - z) as f32 * s);
            }
            Step::Linear {
                src,
                dst,
                zx,
                lin,
                epi,
                out_len,
                ..
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                linear(
                    &m.q[*src],
                    &mut out,
                    batch,
                    *zx,
                    lin,
                    epi,
                    *out_len,
                    &mut m.cols,
                    &mut m.acc,
                );
                m.q[*dst] = out;
            }
            Step::Pool {
                src,
                dst,
                geom,
                max,
                gathers,
                zero,
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                let x = &m.q[*src];
                pool_u8(
                    x,
                    batch,
                    geom,
                    *max,
                    gathers.as_deref(),
                    *zero,
                    &mut m.sums,
                    &mut out,
                );
                m.q[*dst] = out;
            }
            Step::GlobalAvg {
                src,
                dst,
                rows,
                c,
                zero,
            } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                let x = &m.q[*src];
                for n in 0..batch {
                    let img = &x[n * rows * c..(n + 1) * rows * c];
                    global_avg_u8(img, *rows, *c, *zero, &mut m.sums, &mut out[n * c..][..*c]);
                }
                m.q[*dst] = out;
            }
            Step::Add { a, b, dst, z, node } => {
                let mut out = std::mem::take(&mut m.q[*dst]);
                add_u8(&m.q[*a], &m.q[*b], &mut out, (*z, *node), plan.wide);
                m.q[*dst] = out;
            }
            Step::Fp32 {
                node,
                ins,
                dst,
                data,
                map,
            } => {
                let mut out = std::mem::take(&mut m.f[*dst]);
                fp32_node(
                    &plan.graph,
                    *node,
                    ins,
                    data,
                    map.as_ref(),
                    m,
                    batch,
                    &mut out,
                );
                m.f[*dst] = out;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn linear(
    x: &[u8],
    out: &mut [u8],
    batch: usize,
    zx: i32,
    lin: &Lin,
    epi: &Epi,
    out_len: usize,
    cols: &mut [u8],
    acc: &mut [i32],
) {
    match lin {
        Lin::Gemm { gemm, k } => {
            let rows = x.len() / k;
            gemm.run_epi(x, *k, rows, acc, epi, 0, out, gemm.n);
        }
        Lin::Conv { geom: c, gemms } => {
            let cin_g = c.cin / c.groups;
            let cout_g = c.cout / c.groups;
            let k = c.kh * c.kw * cin_g;
            let pix = c.ho * c.wo;
            let (pad, cols) = cols.split_at_mut(padded_len(c));
            for n in 0..batch {
                let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                let (src, wp) = pad_image(img, c, zx as u8, pad);
                let y = &mut out[n * out_len..(n + 1) * out_len];
                for (grp, gm) in gemms.iter().enumerate() {
                    im2col_u8(src, wp, c, grp, 0..pix, &mut cols[..pix * k + SLACK]);
                    let y = &mut y[grp * cout_g..];
                    gm.run_epi(cols, k, pix, acc, epi, grp * cout_g, y, c.cout);
                }
            }
        }
        Lin::InPlace {
            geom: c,
            gemm,
            bases,
            qoff,
            lanes,
        } => {
            let pad = &mut cols[..padded_len(c)];
            // The images' calls follow each other: their work weighed together for AMX.
            in_burst(batch, || {
                for n in 0..batch {
                    let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                    let (src, _) = pad_image(img, c, zx as u8, pad);
                    let y = &mut out[n * out_len..(n + 1) * out_len];
                    match lanes {
                        Some(l) => l.run(src, 0..l.pixels(), y),
                        None => gemm.run_in_place_epi(src, bases, qoff, acc, epi, 0, y, c.cout),
                    }
                }
            });
        }
        Lin::Depthwise {
            geom: c,
            w,
            tiled,
            span,
            quads,
            qepi,
        } => {
            let (pad, rest) = cols.split_at_mut(padded_len(c));
            let split = &mut rest[..if quads.is_empty() || c.sw != 2 {
                0
            } else {
                split_len(c)
            }];
            for n in 0..batch {
                let img = &x[n * c.h * c.w * c.cin..(n + 1) * c.h * c.w * c.cin];
                let y = &mut out[n * out_len..(n + 1) * out_len];
                let acc = &mut acc[..out_len];
                if let Some(qepi) = qepi {
                    // The VNNI rows, their (quad-permuted) epilogue fused (quads exist only
                    // with the wide epilogue): stride 1 reads the padded image, stride 2 the
                    // padded image's column split (made from the image itself).
                    let (src, w, odd) = if c.sw == 1 {
                        let (src, wp) = pad_image(img, c, zx as u8, pad);
                        (src, wp, 0)
                    } else {
                        split_image(img, c, zx as u8, split)
                    };
                    // SAFETY: quads are built only where AVX-512 F/BW/VL/VNNI are present
                    // (the VNNI path); the image and its split have SLACK bytes past their
                    // ends.
                    #[cfg(target_arch = "x86_64")]
                    unsafe {
                        dw_vnni_rows(src, w, odd, c, quads, *span, 0..c.ho, qepi, y)
                    };
                    continue;
                }
                let (src, wp) = pad_image(img, c, zx as u8, pad);
                if c.sw == 1 {
                    for oy in 0..c.ho {
                        let row = &mut acc[oy * c.wo * c.cout..(oy + 1) * c.wo * c.cout];
                        depthwise_row_s1(src, wp, c, tiled, *span, oy, row);
                    }
                } else {
                    depthwise_u8(src, wp, c, w, acc);
                }
                epi.finish_run(acc, y);
            }
        }
    }
}

/// An fp32 node on this crate's kernels.
#[allow(clippy::too_many_arguments)]
pub(super) fn fp32_node(
    g: &Graph,
    i: usize,
    ins: &[usize],
    data: &[Vec<f32>],
    map: Option<&Strided>,
    m: &mut Mem,
    batch: usize,
    out: &mut [f32],
) {
    let x = &m.f[ins[0]];
    let last = *g
        .value_shape(g.node_inputs(i)[0])
        .last()
        .expect("non-empty");
    match &g.nodes[i].op {
        Op::Relu => kernels::relu(x, out),
        Op::Gelu => kernels::gelu(x, out),
        Op::Softmax => crate::seq::softmax_rows(x, last, out),
        Op::LayerNorm { eps } => {
            crate::seq::layer_norm_rows(x, last, &data[0], &data[1], *eps, out)
        }
        Op::BatchNorm { .. } => kernels::scale_shift(x, last, &data[0], &data[1], false, out),
        op @ (Op::MaxPool { .. } | Op::AvgPool { .. }) => kernels::pool(
            x,
            batch,
            &g.pool_geom(i),
            matches!(op, Op::MaxPool { .. }),
            out,
        ),
        Op::GlobalAvgPool => {
            let rows = g.value_shape(g.node_inputs(i)[0]).iter().product::<usize>() / last;
            kernels::global_avg_pool(x, batch, rows, last, out)
        }
        Op::Flatten | Op::Reshape { .. } => out.copy_from_slice(x),
        Op::Input { index } => {
            let (row, at) = (g.input_len(), g.input.part_offset(*index));
            let part = g.input.parts[*index].len();
            for (o, y) in out.chunks_mut(part).enumerate() {
                y.copy_from_slice(&x[o * row + at..][..part]);
            }
        }
        Op::Constant { .. } => {
            for y in out.chunks_mut(data[0].len()) {
                y.copy_from_slice(&data[0]);
            }
        }
        Op::Pack { .. } => {
            let row = g.output_len();
            let mut offset = 0;
            for &b in ins {
                let part = m.f[b].len() / batch;
                kernels::concat_part(&m.f[b], part, offset, row, batch, out);
                offset += part;
            }
        }
        Op::Add => kernels::add(x, &m.f[ins[1]], out),
        // One example at a time on the plan's one-example map.
        Op::Binary { op } => {
            let map = map.expect("planned with its map");
            let (a_len, b_len) = (x.len() / batch, m.f[ins[1]].len() / batch);
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                let (a, b) = (&x[n * a_len..], &m.f[ins[1]][n * b_len..]);
                kernels::binary(a, b, map, *op, o)
            }
        }
        Op::BinaryConst { op, left, .. } => {
            let map = map.expect("planned with its map");
            let (c, x_len) = (&data[0][..], x.len() / batch);
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                let xn = &x[n * x_len..];
                let (a, b) = if *left { (c, xn) } else { (xn, c) };
                kernels::binary(a, b, map, *op, o)
            }
        }
        Op::Transpose { .. } => {
            let map = map.expect("planned with its map");
            let x_len = x.len() / batch;
            for (n, o) in out.chunks_mut(map.len()).enumerate() {
                kernels::transpose(&x[n * x_len..], map, o)
            }
        }
        Op::MatMul => {
            let (a, b) = (
                g.value_shape(g.node_inputs(i)[0]),
                g.value_shape(g.node_inputs(i)[1]),
            );
            let geom = MatMulGeom::of(a, b).expect("validated").0;
            let (a_len, b_len) = (a.iter().product(), b.iter().product());
            kernels::matmul(x, &m.f[ins[1]], &geom, a_len, b_len, out)
        }
        op @ greenbench_core::unary_ops!() => kernels::unary(x, op.unary().expect("unary op"), out),
        Op::Mul => {
            let (a_len, b_len) = (
                g.value_shape(g.node_inputs(i)[0]).iter().product(),
                g.value_shape(g.node_inputs(i)[1]).iter().product(),
            );
            kernels::mul_broadcast(x, &m.f[ins[1]], a_len, b_len, out)
        }
        Op::Concat { axis } => {
            let shape = g.out_shape(i);
            let outer = batch * shape[..*axis].iter().product::<usize>();
            let row: usize = shape[*axis..].iter().product();
            let mut offset = 0;
            for (k, &b) in ins.iter().enumerate() {
                let part: usize = g.value_shape(g.node_inputs(i)[k])[*axis..].iter().product();
                kernels::concat_part(&m.f[b], part, offset, row, outer, out);
                offset += part;
            }
        }
        Op::Slice { axis, start, len } => {
            let s = g.value_shape(g.node_inputs(i)[0]);
            let outer = batch * s[..*axis].iter().product::<usize>();
            let inner: usize = s[axis + 1..].iter().product();
            let (row, part) = (s[*axis] * inner, len * inner);
            for o in 0..outer {
                out[o * part..(o + 1) * part]
                    .copy_from_slice(&x[o * row + start * inner..][..part]);
            }
        }
        Op::ChannelShuffle { groups } => kernels::channel_shuffle(x, last, *groups, out),
        Op::Embedding { dim, .. } => crate::seq::embedding(
            x,
            g.value_shape(g.node_inputs(i)[0])[0],
            &data[0],
            data.get(1).map(|v| v.as_slice()),
            *dim,
            out,
        ),
        Op::Attention {
            heads,
            head_dim,
            causal,
            key_bias,
        } => {
            let s = g.value_shape(g.node_inputs(i)[0])[0];
            let (h, d) = (*heads, *head_dim);
            let bias = key_bias.then(|| m.f[ins[1]].as_slice());
            crate::seq::attention(x, batch, (s, h, d), *causal, bias, &mut m.scratch, out)
        }
        Op::Conv2d { .. } | Op::Dense { .. } => unreachable!("refused in plan"),
    }
}
