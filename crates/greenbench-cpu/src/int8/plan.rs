//! Planning: a quantized model becomes steps over fp32 and uint8 buffers: where each int8
//! border quantizes or dequantizes, each linear layer's form and epilogue, the buffers'
//! lengths.

use super::conv::{SLACK, in_place_conv, padded_len, split_len, widened, widened_pointwise};
use super::depthwise::{MAX_VNNI_TAPS, dw_quads, dw_row_quads, takes_row_pairs};
use super::epilogue::{Epi, gcd, wide_int8};
use super::gemm::{QGemm, QPath};
use super::pool::NarrowIdx;
use super::step::{Layout, Lin, Plan, Step};
use greenbench_core::backend::BackendError;
use greenbench_core::graph::Op;
use greenbench_core::quant::{QModel, QNode};
use greenbench_core::strided::Strided;

pub(super) fn flat(t: &ndarray::ArrayD<f32>) -> Vec<f32> {
    t.iter().copied().collect()
}

/// For an int8 linear node `i`: the 2x2 stride-2 max pool (no padding) that reads its output
/// (through its fused activation, if any) as that output's only reader, if there is one.
fn fusable_max_pool2(qm: &QModel, i: usize) -> Option<usize> {
    let g = &qm.graph;
    let mut last = i;
    // The activation the quantization folded into the clamp (an alias of the output).
    while matches!(qm.nodes.get(last + 1), Some(QNode::Alias))
        && matches!(g.nodes[last + 1].op, Op::Relu | Op::Clip { .. })
        && g.node_inputs(last + 1) == [last + 1]
        && g.consumers(last + 1) == 1
    {
        last += 1;
    }
    // `max_pool2_after` checks the pool is the only reader of the value it reads (the loop,
    // of each value before it).
    (crate::plan_fuse::max_pool2_after(g, last) && matches!(qm.nodes[last + 1], QNode::MaxPool))
        .then_some(last + 1)
}

/// Turn the quantized model into steps over fp32 and uint8 buffers.
pub(super) fn plan(qm: &QModel, path: QPath) -> Result<Plan, BackendError> {
    // The AVX-512 loops and epilogues go with the VNNI path; forcing the AVX2 or portable
    // GEMM (as on CPUs without AVX-512) runs the plain forms too.
    let wide = path.vnni_packed() && wide_int8();
    let g = &qm.graph;
    let nv = g.nodes.len() + 1;
    let len = |v: usize| -> usize { g.value_shape(v).iter().product() };
    let mut layout = Layout {
        f32_len: vec![],
        u8_len: vec![],
        input: 0,
        input_direct: false,
        output: 0,
        cols_len: 0,
        acc_len: 0,
        scratch_len: 0,
        sum_len: 0,
    };
    // Where each value lives: its fp32 buffer (raw fp32, or the dequantized view of a uint8
    // value) and its uint8 buffer.
    let mut fbuf: Vec<Option<usize>> = vec![None; nv];
    let mut qbuf: Vec<Option<usize>> = vec![None; nv];
    let mut steps = Vec::new();
    let new_f = |layout: &mut Layout, n: usize| {
        layout.f32_len.push(n);
        layout.f32_len.len() - 1
    };
    let new_q = |layout: &mut Layout, n: usize| {
        layout.u8_len.push(n);
        layout.u8_len.len() - 1
    };
    // An fp32 result for value v in buffer `f`: kept, or quantized when v is held as uint8.
    let settle = |v: usize,
                  f: usize,
                  layout: &mut Layout,
                  steps: &mut Vec<Step>,
                  fbuf: &mut Vec<Option<usize>>,
                  qbuf: &mut Vec<Option<usize>>| {
        match qm.values[v] {
            Some(p) => {
                let d = new_q(layout, len(v));
                steps.push(Step::Quantize { src: f, dst: d, p });
                qbuf[v] = Some(d);
            }
            None => fbuf[v] = Some(f),
        }
    };
    let input = new_f(&mut layout, len(0));
    layout.input = input;
    settle(0, input, &mut layout, &mut steps, &mut fbuf, &mut qbuf);
    // A quantized input is never read as fp32 again (fp32 nodes read its dequantized view).
    if qm.values[0].is_some() {
        layout.input_direct = true;
        layout.f32_len[input] = 0;
    }
    // The node each step belongs to: the steps pushed while planning node i (its border
    // conversions included) are node i's.
    let mut step_nodes: Vec<Option<usize>> = Vec::new();
    // Nodes below this were fused into an earlier node's step (a pool into its convolution).
    let mut fused_to = 0;
    for i in 0..g.nodes.len() {
        step_nodes.resize(steps.len(), i.checked_sub(1));
        if i < fused_to {
            continue;
        }
        let ins = g.node_inputs(i);
        let v = i + 1;
        match &qm.nodes[i] {
            QNode::Alias => {
                qbuf[v] = qbuf[ins[0]];
                continue;
            }
            QNode::Fp32 => {
                // A unary elementwise node from uint8 to uint8: one lookup, no fp32 between.
                if let (Some(table), Some(src)) = (super::lut::table(qm, i), qbuf[ins[0]]) {
                    let dst = new_q(&mut layout, len(v));
                    steps.push(Step::Lut { src, dst, table });
                    qbuf[v] = Some(dst);
                    continue;
                }
                let mut srcs = Vec::with_capacity(ins.len());
                for &u in ins {
                    let f = match fbuf[u] {
                        Some(f) => f,
                        None => {
                            let f = new_f(&mut layout, len(u));
                            steps.push(Step::Dequantize {
                                src: qbuf[u].expect("a value is fp32 or uint8"),
                                dst: f,
                                p: qm.values[u].expect("uint8 value"),
                            });
                            fbuf[u] = Some(f);
                            f
                        }
                    };
                    srcs.push(f);
                }
                let dst = new_f(&mut layout, len(v));
                let t = qm.weights.node(i);
                let data = match &g.nodes[i].op {
                    Op::BatchNorm { eps } => {
                        let (s, h) = greenbench_core::fold::bn_scale_shift(t, *eps);
                        vec![s, h]
                    }
                    Op::Conv2d { .. } | Op::Dense { .. } => {
                        return Err(BackendError::Invalid(format!(
                            "node `{}`: a conv / dense layer left in fp32 inside an int8 model \
                             (the quantization pass quantizes every one)",
                            g.nodes[i].name
                        )));
                    }
                    Op::Attention { heads, .. } => {
                        let s = g.value_shape(ins[0])[0];
                        layout.scratch_len = layout.scratch_len.max(heads * s * s);
                        vec![]
                    }
                    _ => t.iter().map(flat).collect(),
                };
                let (x_shape, out) = (g.value_shape(ins[0]), g.out_shape(i));
                let map = match &g.nodes[i].op {
                    Op::Binary { .. } => {
                        Some(Strided::binary(out, x_shape, g.value_shape(ins[1]), 1))
                    }
                    Op::BinaryConst { shape, left, .. } => {
                        Some(Strided::with_constant(out, x_shape, shape, *left, 1))
                    }
                    Op::Transpose { perm } => Some(Strided::transpose(x_shape, perm, 1)),
                    _ => None,
                };
                steps.push(Step::Fp32 {
                    node: i,
                    ins: srcs,
                    dst,
                    data,
                    map,
                });
                settle(v, dst, &mut layout, &mut steps, &mut fbuf, &mut qbuf);
                continue;
            }
            _ => {}
        }
        let p_out = qm.values[v].expect("an int8 node's output is uint8");
        let q_ins: Vec<usize> = ins
            .iter()
            .map(|&u| qbuf[u].expect("an int8 node's inputs are uint8"))
            .collect();
        let q_in = |k: usize| q_ins[k];
        let dst = new_q(&mut layout, len(v));
        qbuf[v] = Some(dst);
        let step = match &qm.nodes[i] {
            QNode::Linear(l) => {
                let (lin, epi) = match &g.nodes[i].op {
                    Op::Dense { units, .. } => {
                        let k = *g.value_shape(ins[0]).last().expect("non-empty");
                        let gemm = QGemm::new(&l.w, k, *units, 0, *units, path);
                        layout.acc_len = layout.acc_len.max(len(v));
                        let epi = Epi::new(l, Some(&gemm.col_sums), wide);
                        (Lin::Gemm { gemm, k }, epi)
                    }
                    _ => {
                        let c = g.conv_geom(i);
                        if c.is_depthwise() {
                            // HWIO [kh, kw, 1, C]: per tap, C contiguous; each tap's row widened
                            // to a whole number of 16-channel blocks (zeros past C).
                            let chp = c.cout.next_multiple_of(16);
                            let mut w = vec![0i32; c.kh * c.kw * chp];
                            let mut sums = vec![0i32; c.cout];
                            for (j, &v) in l.w.iter().enumerate() {
                                w[(j / c.cout) * chp + j % c.cout] = v as i32;
                                sums[j % c.cout] += v as i32;
                            }
                            layout.cols_len = layout.cols_len.max(padded_len(&c));
                            layout.acc_len = layout.acc_len.max(c.ho * c.wo * c.cout);
                            let span = c.cout / gcd(c.cout, 64) * 64;
                            let tiled: Vec<i32> = (0..c.kh * c.kw)
                                .flat_map(|t| (0..span).map(move |j| (t, j % c.cout)))
                                .map(|(t, ch)| w[t * chp + ch])
                                .collect();
                            let vnni = wide && c.sw <= 2 && c.kh * c.kw <= MAX_VNNI_TAPS;
                            // Rows of 3 or 4 taps: a quad a kernel row, rows run in pairs.
                            let rows_quads = vnni && takes_row_pairs(c.kh, c.kw);
                            let quads = if rows_quads {
                                dw_row_quads(&tiled, c.kh, c.kw, span)
                            } else if vnni {
                                dw_quads(&tiled, c.kh * c.kw, span)
                            } else {
                                vec![]
                            };
                            if wide && c.sw == 2 {
                                layout.cols_len =
                                    layout.cols_len.max(padded_len(&c) + split_len(&c));
                            }
                            let epi = Epi::new(l, Some(&sums), wide);
                            let qepi =
                                (!quads.is_empty()).then(|| Box::new(epi.quad_permuted(span)));
                            let lin = Lin::Depthwise {
                                geom: c,
                                w,
                                tiled: tiled.into(),
                                span,
                                quads: quads.into(),
                                qepi,
                            };
                            (lin, epi)
                        } else {
                            let cin_g = c.cin / c.groups;
                            let cout_g = c.cout / c.groups;
                            let k = c.kh * c.kw * cin_g;
                            let gemms: Vec<QGemm> = (0..c.groups)
                                .map(|grp| QGemm::new(&l.w, k, c.cout, grp * cout_g, cout_g, path))
                                .collect();
                            let sums: Vec<i32> =
                                gemms.iter().flat_map(|q| q.col_sums.clone()).collect();
                            layout.acc_len = layout.acc_len.max(c.ho * c.wo * cout_g);
                            let epi = Epi::new(l, Some(&sums), wide);
                            if c.is_pointwise() {
                                let gemm = gemms.into_iter().next().expect("one group");
                                let rows = c.ho * c.wo;
                                match widened_pointwise(&l.w, k, c.cout, rows, path) {
                                    Some((gemm, p)) => {
                                        let epi = epi.widened(p);
                                        (Lin::Gemm { gemm, k: p * k }, epi)
                                    }
                                    None => (Lin::Gemm { gemm, k }, epi),
                                }
                            } else if wide && c.groups == 1 {
                                layout.cols_len = layout.cols_len.max(padded_len(&c));
                                let lin = in_place_conv(c, &l.w, path, &epi);
                                let lanes = matches!(&lin, Lin::InPlace { lanes: Some(_), .. });
                                // Few channels (not on the pixels-in-lanes kernel): several
                                // pixels per GEMM row where that fills more of its width.
                                match widened(c, &l.w).filter(|_| !lanes && path.vnni_packed()) {
                                    Some((cw, ww, p)) => {
                                        let epi = epi.widened(p);
                                        (in_place_conv(cw, &ww, path, &epi), epi)
                                    }
                                    None => (lin, epi),
                                }
                            } else {
                                layout.cols_len = layout
                                    .cols_len
                                    .max(padded_len(&c) + c.ho * c.wo * k + SLACK);
                                (Lin::Conv { geom: c, gemms }, epi)
                            }
                        }
                    }
                };
                let (mut lin, mut last) = (lin, i);
                // A 2x2 max pool after a pixels-in-lanes convolution (and its activation):
                // pooled in the kernel, the step's output the pool's.
                if let Some(j) = fusable_max_pool2(qm, i)
                    && let Lin::InPlace {
                        lanes: Some(lanes), ..
                    } = &mut lin
                    && lanes.pool2()
                {
                    layout.u8_len[dst] = len(j + 1);
                    qbuf[j + 1] = Some(dst);
                    (fused_to, last) = (j + 1, j);
                }
                Step::Linear {
                    node: i,
                    last,
                    src: q_in(0),
                    dst,
                    zx: l.x.zero,
                    lin: Box::new(lin),
                    epi,
                    out_len: len(last + 1),
                }
            }
            QNode::MaxPool | QNode::AvgPool => {
                let zero = p_out.zero;
                let channels = *g.value_shape(ins[0]).last().expect("non-empty");
                layout.sum_len = layout.sum_len.max(channels);
                match g.nodes[i].op {
                    Op::GlobalAvgPool => {
                        let c = *g.value_shape(ins[0]).last().expect("non-empty");
                        Step::GlobalAvg {
                            src: q_in(0),
                            dst,
                            rows: len(ins[0]) / c,
                            c,
                            zero,
                        }
                    }
                    _ => {
                        let (geom, max) = (g.pool_geom(i), matches!(qm.nodes[i], QNode::MaxPool));
                        Step::Pool {
                            src: q_in(0),
                            dst,
                            geom,
                            max,
                            gathers: max.then(|| NarrowIdx::new(&geom)).flatten().map(Box::new),
                            zero,
                        }
                    }
                }
            }
            QNode::Add {
                ma,
                mb,
                shift,
                lo,
                hi,
                ..
            } => {
                let (pa, pb) = (
                    qm.values[ins[0]].expect("uint8"),
                    qm.values[ins[1]].expect("uint8"),
                );
                Step::Add {
                    a: q_in(0),
                    b: q_in(1),
                    dst,
                    z: (pa.zero, pb.zero, p_out.zero),
                    node: (*ma, *mb, *shift, *lo, *hi),
                }
            }
            QNode::Fp32 | QNode::Alias => unreachable!("handled above"),
        };
        steps.push(step);
    }
    let last = nv - 1;
    step_nodes.resize(steps.len(), g.nodes.len().checked_sub(1));
    layout.output = match fbuf[last] {
        Some(f) => f,
        None => {
            let f = new_f(&mut layout, len(last));
            steps.push(Step::Dequantize {
                src: qbuf[last].expect("output held somewhere"),
                dst: f,
                p: qm.values[last].expect("uint8 output"),
            });
            f
        }
    };
    // The output's dequantize is the last node's.
    step_nodes.resize(steps.len(), g.nodes.len().checked_sub(1));
    Ok(Plan {
        graph: g.clone(),
        wide,
        steps,
        step_nodes,
        layout,
    })
}
