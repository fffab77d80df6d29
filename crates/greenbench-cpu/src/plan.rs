//! Planning: a graph and its weights become a sequence of steps over numbered buffers.
//! Flatten and reshape alias their input; a following activation (ReLU, ReLU6, h-swish,
//! sigmoid), folded batch norm and bias go into the producing kernel's epilogue; a residual
//! add (and the ReLU after it) into the convolution before it; activations read by padded
//! convolutions are stored with their zero border (`wanted_borders`); each step is marked for
//! splitting across threads by its work. The thresholds were measured on the dev VM; the
//! figures are beside each.

use crate::buffers::Buffers;
#[cfg(target_arch = "x86_64")]
use crate::direct;
use crate::kernels;
use crate::kernels::{Act, Buf, Relu};
use crate::plan_concat::Concats;
use crate::plan_fuse::{bn_chain, relu_fusable, residual_fusable, wanted_borders};
use crate::reuse::Reuse;
use crate::split::Split;
#[cfg(target_arch = "x86_64")]
use crate::step::PackedPlan;
use crate::step::{Lines, Step, step_work};
use crate::team::Team;
use crate::{CpuPrepared, Settings};
use greenbench_core::backend::BackendError;
use greenbench_core::graph::{Graph, MatMulGeom, Op};
use greenbench_core::strided::Strided;
use greenbench_core::weights::{Weights, check_weights};
use std::sync::Arc;

/// Steps with less work than this (FPO, or 4 per output element for memory-bound ops,
/// whole batch) run on one thread. Waking a helper costs 20-40 us on the 2-core dev VM
/// (measured: mlp at batch 1 took 35 us on 1 thread, 77 us with every step split in two);
/// 4 MFPO is about that long on one core.
const PAR_MIN_WORK: u64 = 4_000_000;

/// The same for plain GEMM steps (dense, 1x1 convolutions): splitting a GEMM costs the gemm
/// crate's own synchronisation too. Measured on the dev VM (quick profile, 2 threads): mlp b32
/// 4.3-5.0 -> 3.3-3.8 us, autoencoder b32 5.0 -> 3.4-3.7 us, ds-cnn b32 46 -> 41 us, mobilenet
/// b32 ~238 -> 214-220 us; raising the threshold for every step instead slowed ds-cnn b32
/// 46 -> 70 us and lenet5 b32 42 -> 65 us.
const PAR_MIN_GEMM_WORK: u64 = 16_000_000;

fn flat(t: &ndarray::ArrayD<f32>) -> Vec<f32> {
    t.iter().copied().collect()
}

/// Dense layers this large run on the packed GEMM (`packed`: weights packed into
/// cache-sized blocks in `prepare`, a 12 x 32 register tile, one contiguous row range per
/// thread), which beats the direct kernels there. Measured on the dev VM, sgemm 1024^3 on
/// 1 / 2 threads (GFLOP/s, `greenbench peak --threads N`): packed GEMM 160-166 / 327-341;
/// before it, the `gemm` crate 158 / 285-300 (that peak also copied its input); the direct
/// kernels 125-131 / 209, with a packed left operand 138 / 272 (and slower than unpacked on
/// the zoo's small GEMMs: mlp b32 2.5 -> 3.2 us); ONNX Runtime (MLAS, `compare.sh`'s
/// MatMul) 311-314 on 2 threads. No zoo layer is this large.
fn large_gemm(m: usize, k: usize, n: usize) -> bool {
    m >= 256 && k >= 256 && n >= 256
}

impl CpuPrepared {
    /// `g` planned at `batch` for `s`: the batch split across threads when every thread
    /// gets at least two images (see `team::Split`), else one sequence of steps.
    pub(crate) fn new(
        g: &Graph,
        w: &Weights,
        batch: usize,
        s: &Settings,
    ) -> Result<Self, BackendError> {
        let Some(sub) = Split::sub_batch(g, batch, s.threads) else {
            return Self::plan(g, w, batch, s);
        };
        let split = Split::new(g, w, batch, sub, s)?;
        check_weights(g, w).map_err(BackendError::Invalid)?;
        let out_len = batch * g.output_len();
        // The input is read from the caller's slice: no buffer for it.
        Ok(CpuPrepared {
            winograd_nodes: split.winograd_nodes(),
            split: Some(split),
            ..Self::empty(
                s,
                Some(g.clone()),
                batch,
                out_len,
                Buffers::output_only(out_len),
            )
        })
    }

    /// An `m x k x n` matmul as one GEMM step (the peak's product): the right-hand side
    /// plays the weights.
    pub(crate) fn matmul(m: usize, k: usize, n: usize, s: &Settings) -> Self {
        // Seeded right-hand side; values do not matter for speed but stay deterministic.
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
        // The right-hand side plays the weights: packed here, once, where the packed AVX-512
        // GEMM runs (as a large dense layer would be); the `gemm` crate elsewhere.
        let gemm = |w| Step::Gemm {
            src: 0,
            dst: 1,
            rows: m,
            k,
            n,
            w,
            bias: None,
            relu: None,
        };
        #[cfg(target_arch = "x86_64")]
        let step = if s.direct || s.packed_avx2 {
            Step::Packed {
                src: 0,
                dst: 1,
                rows: m,
                plan: PackedPlan::new(s.direct, &b, k, n, None, None),
            }
        } else {
            gemm(b)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let step = gemm(b);
        // The left operand is read where the caller holds it (`execute_matmul`).
        CpuPrepared {
            par: vec![s.threads > 1],
            steps: vec![step],
            ..Self::empty(s, None, m, m * n, Buffers::output_only(m * n))
        }
    }

    /// The graph planned as one sequence of steps over the whole batch.
    pub(crate) fn plan(
        g: &Graph,
        w: &Weights,
        batch: usize,
        s: &Settings,
    ) -> Result<Self, BackendError> {
        let (threads, direct) = (s.threads, s.direct);
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        check_weights(g, w).map_err(BackendError::Invalid)?;
        let nvals = g.nodes.len() + 1;
        // value id -> buffer id; flatten and fused ReLUs alias their source.
        let mut buf_of: Vec<usize> = vec![usize::MAX; nvals];
        let mut sizes: Vec<usize> = vec![batch * g.input_len()];
        buf_of[0] = 0;
        let new_buf = |sizes: &mut Vec<usize>, len: usize| {
            sizes.push(len);
            sizes.len() - 1
        };
        let mut steps = Vec::new();
        let mut par = Vec::new();
        let mut scratch_len = 0usize;
        let mut pads: Vec<Buf> = Vec::new();
        let mut skip_nodes = 0usize;
        // Graph node of each step (for the team's work estimates).
        let mut step_nodes: Vec<usize> = Vec::new();
        // The last graph node of each step (the first is `step_nodes`'): nodes fused into it.
        let mut step_last: Vec<usize> = Vec::new();
        let want_border = if direct {
            wanted_borders(g)
        } else {
            vec![None; nvals]
        };
        // Per buffer: stored with zero borders around each image (see `wanted_borders`).
        // The input gets one when its convolutions want it: loading it then is the only copy.
        let in_shape0 = g.value_shape(0).clone();
        let input_border = match (want_border[0], in_shape0.len()) {
            (Some(b), 3) => Some((b, [in_shape0[0], in_shape0[1], in_shape0[2]])),
            _ => None,
        };
        if let Some(([t, b, l, r], [h, w, c])) = input_border {
            sizes[0] = batch * (h + t + b) * (w + l + r) * c;
        }
        let mut buf_border: Vec<Option<[usize; 4]>> = vec![input_border.map(|b| b.0)];
        // Per buffer stored with a border: its layout (border and shape), which a buffer
        // sharing its memory must have too (`reuse`).
        let mut buf_layout: Vec<Option<Vec<usize>>> = vec![None];
        // Concatenations written in place by their producers, and running concatenations
        // sharing one buffer (`plan_concat`): per node, the concatenation's buffer once its
        // first producer is planned.
        let concats = if direct {
            Concats::of(g, &want_border)
        } else {
            Concats::none(g)
        };
        let mut concat_buf: Vec<Option<usize>> = vec![None; g.nodes.len()];
        // bf16 roundings the layers after them do as they copy their input in.
        let mut fused_round = crate::plan_bf16::fused_rounds(g, s);
        for i in 0..g.nodes.len() {
            let v = i + 1;
            if skip_nodes > 0 {
                skip_nodes -= 1;
                continue;
            }
            let (ins, in_shape, last, out_len) = g.node_io(i, batch);
            if let Some(chain) = concats.chain_of[i].map(|c| &concats.chains[c]) {
                // A running concatenation: its convolution wrote its channels in place, the
                // ones before are the previous concatenation's (the same buffer); the first
                // copies the block's base in.
                let last_node = *chain.nodes.last().expect("non-empty");
                let b = concat_buf[last_node].expect("a chain's first convolution comes first");
                if i == chain.nodes[0] {
                    step_nodes.push(i);
                    step_last.push(i);
                    par.push(threads > 1 && step_work(g, i, batch) >= PAR_MIN_WORK);
                    steps.push(Step::Concat {
                        srcs: vec![(buf_of[chain.base], chain.base_channels)],
                        dst: b,
                        outer: batch * in_shape[0] * in_shape[1],
                        row: chain.width,
                    });
                }
                buf_of[v] = b;
                continue;
            }
            if let Some(b) = concat_buf[i] {
                // Its producers have written it.
                buf_of[v] = b;
                continue;
            }
            let src = buf_of[ins[0]];
            let t = w.node(i);
            let op = &g.nodes[i].op;
            // Flatten and reshape keep the row-major memory: an alias (a value stored with
            // zero borders is read by convolutions only, see `wanted_borders`).
            if matches!(op, Op::Flatten | Op::Reshape { .. }) {
                buf_of[v] = src;
                continue;
            }
            fused_round[v] &= buf_border[src].is_none();
            if fused_round[v] {
                buf_of[v] = src;
                continue;
            }
            // Fuse a following ReLU that is this node's only consumer.
            // A residual add (and the ReLU after it) fused into a direct convolution.
            let residual = if direct { residual_fusable(g, i) } else { None };
            let fuse_relu: Relu = match residual {
                Some((_, relu)) => relu.then_some(Act::RELU),
                None => relu_fusable(g, i),
            };
            // Batch norms after a batch norm (each reading only the one before) compose with
            // it, and a ReLU after them runs in the same pass (DenseNet's pre-activations).
            let (bn_more, bn_relu) = match op {
                Op::BatchNorm { .. } => bn_chain(g, i),
                _ => (0, false),
            };
            // The value this step finally produces (after the fused add and ReLU).
            let mut fused = usize::from(residual.is_some())
                + usize::from(fuse_relu.is_some())
                + bn_more
                + usize::from(bn_relu);
            #[cfg(target_arch = "x86_64")]
            let winograd = (s.winograd && !crate::plan_bf16::is_bf16_rounding(g, ins[0]))
                .then_some(s.winograd_f4_min_tiles);
            // A max pool after a convolution, pooled as it stores: a single-channel
            // convolution's 2x2 pool in lanes (`pool2`), or any max pool after the fp32 tile
            // band by band (`tpool`).
            #[cfg(target_arch = "x86_64")]
            let pool_ok = direct
                && matches!(op, Op::Conv2d { .. })
                && residual.is_none()
                && concats.slots[i].is_none()
                && !fused_round[ins[0]];
            #[cfg(target_arch = "x86_64")]
            let pool2 = pool_ok
                && crate::plan_fuse::max_pool2_after(g, i + fused)
                && want_border[v + fused + 1].is_none()
                && direct::DirectPlan::takes_max_pool2(&g.conv_geom(i), batch, winograd);
            #[cfg(target_arch = "x86_64")]
            let tpool = pool_ok
                && !pool2
                && crate::plan_fuse::max_pool_after(g, i + fused)
                && want_border[v + fused + 1].is_none()
                && direct::DirectPlan::takes_max_pool(
                    &g.conv_geom(i),
                    batch,
                    winograd,
                    s.fused_pool_min,
                );
            #[cfg(not(target_arch = "x86_64"))]
            let (pool2, tpool) = (false, false);
            fused += usize::from(pool2 || tpool);
            let in_padded = buf_border[src].is_some();
            // Store the output with the border its consumers want, if this step can.
            let out_border = match op {
                Op::Conv2d { .. }
                    if g.conv_geom(i).groups == 1 || g.conv_geom(i).is_depthwise() =>
                {
                    want_border[v + fused]
                }
                // A shuffle's source never has a border: only convolutions read bordered
                // values (`wanted_borders`).
                Op::ChannelShuffle { .. } if direct && in_shape.len() == 3 => want_border[v],
                _ => None,
            };
            let bordered = |sizes: &mut Vec<usize>, j: usize, border: Option<[usize; 4]>| {
                let s = g.out_shape(j);
                match border {
                    Some([t, b, l, r]) => {
                        new_buf(sizes, batch * (s[0] + t + b) * (s[1] + l + r) * s[2])
                    }
                    None => new_buf(sizes, batch * s.iter().product::<usize>()),
                }
            };
            // (concatenation node, channel offset, its channels, its border)
            let slot = concats.slots[i].map(|(j, off, ct)| (j, off, ct, want_border[j + 1]));
            let dst = match slot {
                Some((j, _, _, border)) => match concat_buf[j] {
                    Some(b) => b,
                    None => {
                        let b = bordered(&mut sizes, j, border);
                        buf_border.push(border);
                        buf_layout.push(border.map(|bd| layout_key(bd, g.out_shape(j))));
                        concat_buf[j] = Some(b);
                        b
                    }
                },
                None => {
                    // The last fused node's shape: the pool's where one is fused (the others
                    // keep the node's).
                    let b = bordered(&mut sizes, i + fused, out_border);
                    buf_border.push(out_border);
                    buf_layout.push(out_border.map(|bd| layout_key(bd, g.out_shape(i))));
                    b
                }
            };
            for f in 0..=fused {
                buf_of[v + f] = dst;
            }
            skip_nodes = fused;
            step_nodes.push(i);
            step_last.push(i + fused);
            let bias = t.get(1).map(flat);
            #[cfg(target_arch = "x86_64")]
            let direct_plan = if direct {
                match op {
                    _ if fused_round[ins[0]] => Some(
                        crate::plan_bf16::bf16_plan(
                            g,
                            i,
                            batch,
                            &flat(&t[0]),
                            bias.as_deref(),
                            fuse_relu,
                            out_border,
                        )
                        .expect("fused roundings feed bf16 layers only"),
                    ),
                    Op::Dense { units, .. } if !large_gemm(out_len / units, last, *units) => {
                        Some(direct::DirectPlan::gemm(
                            out_len / units,
                            last,
                            *units,
                            &flat(&t[0]),
                            bias.as_deref(),
                            fuse_relu,
                        ))
                    }
                    Op::Conv2d { .. } => direct::DirectPlan::conv(
                        &g.conv_geom(i),
                        batch,
                        &flat(&t[0]),
                        bias.as_deref(),
                        fuse_relu,
                        in_padded,
                        out_border,
                        winograd,
                    )
                    .map(|p| match (pool2, tpool) {
                        (true, _) => p.with_max_pool2().expect("checked by takes_max_pool2"),
                        (_, true) => p
                            .with_max_pool(g.pool_geom(i + fused))
                            .expect("checked by takes_max_pool"),
                        _ => p,
                    }),
                    _ => None,
                }
                // A convolution's fused residual, and its place in a concatenation.
                .map(|p| match residual {
                    Some((skip, _)) => p.with_residual(buf_border[buf_of[skip]]),
                    None => p,
                })
                .map(|p| match slot {
                    Some((_, off, ct, border)) => p.into_concat(border, ct, off),
                    None => p,
                })
            } else {
                None
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (direct, in_padded);
            // A grouped 1x1 convolution: one direct GEMM per group, each writing its group's
            // channels of the one output.
            #[cfg(target_arch = "x86_64")]
            if direct && let Op::Conv2d { .. } = op {
                let geom = g.conv_geom(i);
                if geom.is_grouped_pointwise() {
                    // A 1x1 convolution's input never has a border (`wanted_borders`).
                    assert!(!in_padded, "grouped 1x1 convolution over a bordered input");
                    let w = flat(&t[0]);
                    for grp in 0..geom.groups {
                        let plan = Box::new(direct::DirectPlan::pointwise_group(
                            &geom,
                            batch,
                            grp,
                            &w,
                            bias.as_deref(),
                            fuse_relu,
                            residual.map(|(skip, _)| buf_border[buf_of[skip]]),
                        ));
                        pads.push(plan.pad_buffer());
                        steps.push(Step::Direct {
                            skip: residual.map(|(skip, _)| buf_of[skip]),
                            src,
                            dst,
                            plan,
                            pad: pads.len() - 1,
                        });
                        if grp > 0 {
                            step_nodes.push(i);
                            step_last.push(i + fused);
                        }
                        let work = step_work(g, i, batch) / geom.groups as u64;
                        par.push(threads > 1 && work >= PAR_MIN_WORK);
                    }
                    continue;
                }
            }
            let step = match op {
                #[cfg(target_arch = "x86_64")]
                _ if direct_plan.is_some() => {
                    let plan = Box::new(direct_plan.expect("checked"));
                    pads.push(plan.pad_buffer());
                    Step::Direct {
                        skip: residual.map(|(skip, _)| buf_of[skip]),
                        src,
                        dst,
                        plan,
                        pad: pads.len() - 1,
                    }
                }
                #[cfg(target_arch = "x86_64")]
                Op::Dense { units, .. } if direct || s.packed_avx2 => Step::Packed {
                    src,
                    dst,
                    rows: out_len / units,
                    plan: PackedPlan::new(direct, &flat(&t[0]), last, *units, bias, fuse_relu),
                },
                Op::Dense { units, .. } => Step::Gemm {
                    src,
                    dst,
                    rows: out_len / units,
                    k: last,
                    n: *units,
                    w: flat(&t[0]),
                    bias,
                    relu: fuse_relu,
                },
                Op::Conv2d { .. } => {
                    let geom = g.conv_geom(i);
                    if geom.is_pointwise() {
                        Step::Gemm {
                            src,
                            dst,
                            rows: batch * geom.ho * geom.wo,
                            k: geom.cin,
                            n: geom.cout,
                            w: flat(&t[0]),
                            bias,
                            relu: fuse_relu,
                        }
                    } else if geom.is_depthwise() {
                        let w = flat(&t[0]);
                        #[cfg(target_arch = "x86_64")]
                        if direct {
                            let plan = Box::new(direct::DwPlan::new(
                                &geom, batch, w, bias, fuse_relu, in_padded, out_border,
                            ));
                            pads.push(plan.pad_buffer());
                            steps.push(Step::DirectDw {
                                src,
                                dst,
                                plan,
                                pad: pads.len() - 1,
                            });
                            par.push(false);
                            let last = par.len() - 1;
                            par[last] = threads > 1 && step_work(g, i, batch) >= PAR_MIN_WORK;
                            continue;
                        }
                        Step::Depthwise {
                            src,
                            dst,
                            geom,
                            w_tiled: (geom.sw == 1)
                                .then(|| kernels::tile_depthwise_weights(&geom, &w)),
                            w,
                            bias,
                            relu: fuse_relu,
                        }
                    } else {
                        let rows = batch * geom.ho * geom.wo;
                        scratch_len =
                            scratch_len.max(rows * geom.kh * geom.kw * geom.cin / geom.groups);
                        Step::Conv {
                            src,
                            dst,
                            geom,
                            w: flat(&t[0]),
                            bias,
                            relu: fuse_relu,
                        }
                    }
                }
                Op::BatchNorm { eps } => {
                    let (mut scale, mut shift) = greenbench_core::fold::bn_scale_shift(t, *eps);
                    for j in i + 1..=i + bn_more {
                        let Op::BatchNorm { eps } = g.nodes[j].op else {
                            unreachable!("bn_chain counts batch norms only")
                        };
                        let (s2, b2) = greenbench_core::fold::bn_scale_shift(w.node(j), eps);
                        for c in 0..scale.len() {
                            scale[c] *= s2[c];
                            shift[c] = shift[c] * s2[c] + b2[c];
                        }
                    }
                    Step::ScaleShift {
                        src,
                        dst,
                        stride: concats.stride[ins[0]].unwrap_or(scale.len()),
                        scale,
                        shift,
                        relu: bn_relu,
                    }
                }
                Op::Relu => Step::Relu { src, dst },
                Op::Gelu => Step::Gelu { src, dst },
                Op::Softmax => Step::Softmax { src, dst, n: last },
                Op::LayerNorm { eps } => Step::LayerNorm {
                    src,
                    dst,
                    n: last,
                    gamma: flat(&t[0]),
                    beta: flat(&t[1]),
                    eps: *eps,
                },
                Op::MaxPool { .. } | Op::AvgPool { .. } => {
                    let (geom, max) = (g.pool_geom(i), matches!(op, Op::MaxPool { .. }));
                    Step::Pool {
                        src,
                        dst,
                        geom,
                        direct,
                        max,
                        #[cfg(target_arch = "x86_64")]
                        narrow: (direct && max)
                            .then(|| crate::direct::Narrow::new(&geom))
                            .flatten()
                            .map(Box::new),
                    }
                }
                Op::GlobalAvgPool => Step::GlobalAvgPool {
                    src,
                    dst,
                    rows: in_shape.iter().product::<usize>() / last,
                    c: last,
                },
                Op::Add => Step::Add {
                    a: src,
                    b: buf_of[ins[1]],
                    dst,
                },
                op @ greenbench_core::unary_ops!() => Step::Unary {
                    src,
                    dst,
                    f: op.unary().expect("unary op"),
                },
                Op::Mul => Step::Mul {
                    a: src,
                    b: buf_of[ins[1]],
                    dst,
                    a_len: in_shape.iter().product(),
                    b_len: g.value_shape(ins[1]).iter().product(),
                },
                Op::Concat { axis } => {
                    let out = g.out_shape(i);
                    Step::Concat {
                        srcs: ins
                            .iter()
                            .map(|&v| (buf_of[v], g.value_shape(v)[*axis..].iter().product()))
                            .collect(),
                        dst,
                        outer: batch * out[..*axis].iter().product::<usize>(),
                        row: out[*axis..].iter().product(),
                    }
                }
                // A named input: its values in each example's packed input.
                Op::Input { index } => {
                    let part = g.input.parts[*index].len();
                    Step::Slice {
                        src,
                        dst,
                        outer: batch,
                        row: g.input_len(),
                        offset: g.input.part_offset(*index),
                        part,
                    }
                }
                // The same values for every example.
                Op::Constant { .. } => Step::Fill {
                    dst,
                    values: flat(&t[0]),
                },
                // Several outputs: each example's values of each, flattened, in turn.
                Op::Pack { .. } => Step::Concat {
                    srcs: ins
                        .iter()
                        .map(|&v| (buf_of[v], g.value_shape(v).iter().product()))
                        .collect(),
                    dst,
                    outer: batch,
                    row: g.output_len(),
                },
                Op::Slice { axis, start, len } => {
                    let inner: usize = in_shape[axis + 1..].iter().product();
                    Step::Slice {
                        src,
                        dst,
                        outer: batch * in_shape[..*axis].iter().product::<usize>(),
                        row: in_shape[*axis] * inner,
                        offset: start * inner,
                        part: len * inner,
                    }
                }
                Op::ChannelShuffle { groups } => {
                    assert!(!in_padded, "a channel shuffle over a bordered input");
                    Step::ChannelShuffle {
                        src,
                        dst,
                        c: last,
                        groups: *groups,
                        border: out_border.map(|border| Lines {
                            h: in_shape[0],
                            w: in_shape[1],
                            border,
                        }),
                    }
                }
                Op::Embedding { dim, .. } => Step::Embedding {
                    src,
                    dst,
                    seq: in_shape[0],
                    dim: *dim,
                    table: flat(&t[0]),
                    pos: t.get(1).map(flat),
                },
                Op::Attention {
                    heads,
                    head_dim,
                    causal,
                    key_bias,
                } => {
                    scratch_len = scratch_len.max(batch * heads * in_shape[0] * in_shape[0]);
                    Step::Attention {
                        src,
                        dst,
                        s: in_shape[0],
                        h: *heads,
                        d: *head_dim,
                        causal: *causal,
                        bias: key_bias.then(|| buf_of[ins[1]]),
                    }
                }
                Op::Flatten | Op::Reshape { .. } => unreachable!("aliased above"),
                Op::Binary { op } => Step::Binary {
                    a: src,
                    b: buf_of[ins[1]],
                    dst,
                    map: Strided::binary(g.out_shape(i), in_shape, g.value_shape(ins[1]), batch),
                    op: *op,
                },
                Op::BinaryConst { op, shape, left } => Step::BinaryConst {
                    src,
                    dst,
                    c: flat(&t[0]),
                    map: Strided::with_constant(g.out_shape(i), in_shape, shape, *left, batch),
                    op: *op,
                    left: *left,
                },
                Op::Transpose { perm } => Step::Transpose {
                    src,
                    dst,
                    map: Strided::transpose(in_shape, perm, batch),
                },
                Op::MatMul => {
                    let b_shape = g.value_shape(ins[1]);
                    Step::MatMul {
                        a: src,
                        b: buf_of[ins[1]],
                        dst,
                        geom: MatMulGeom::of(in_shape, b_shape).expect("validated").0,
                        a_len: in_shape.iter().product(),
                        b_len: b_shape.iter().product(),
                    }
                }
            };
            steps.push(step);
            let work = step_work(g, i, batch);
            let min = if matches!(steps.last(), Some(Step::Gemm { .. })) {
                PAR_MIN_GEMM_WORK
            } else {
                PAR_MIN_WORK
            };
            par.push(threads > 1 && work >= min);
        }
        #[cfg(target_arch = "x86_64")]
        let team = if direct && threads > 1 {
            Team::plan(
                g,
                &steps,
                &step_nodes,
                batch,
                threads,
                s.team_min_work,
                input_border.is_some(),
            )
            .map(Arc::new)
        } else {
            None
        };
        #[cfg(not(target_arch = "x86_64"))]
        let team = None;
        // Buffers used at different steps share memory (bordered ones only with buffers of
        // the same layout), except the input and the output.
        let output = buf_of[nvals - 1];
        let own: Vec<bool> = (0..sizes.len())
            .map(|b| b == 0 || b == output || !s.reuse)
            .collect();
        let reuse = Reuse::plan(&sizes, &own, &buf_layout, &steps);
        let mut mem = Buffers::new(&sizes, &reuse, scratch_len, pads);
        mem.input_border = input_border;
        mem.output = buf_of[nvals - 1];
        let winograd_nodes = steps
            .iter()
            .zip(&step_nodes)
            .filter_map(|(st, &i)| st.winograd_tile().map(|m| (i, m)))
            .collect();
        Ok(CpuPrepared {
            steps,
            par,
            team,
            winograd_nodes,
            step_nodes: step_nodes.into_iter().zip(step_last).collect(),
            ..Self::empty(s, Some(g.clone()), batch, batch * g.output_len(), mem)
        })
    }
}

/// What a bordered buffer's layout is: its border and per-example shape, and so where its
/// zeros lie. Buffers share memory only with buffers of the same layout (or none).
fn layout_key(border: [usize; 4], shape: &[usize]) -> Vec<usize> {
    border.iter().chain(shape).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenbench_core::graph::{InputSpec, Node, Padding};

    /// Steps of `g` planned at batch 2 on one thread (seeded weights), on the direct kernels
    /// if asked and available; and whether they were.
    fn steps_planned(g: &Graph, direct: bool) -> (usize, bool) {
        let w = greenbench_core::generate_weights(g, 1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let mut s = Settings::new(1, pool, None);
        s.direct = direct && crate::direct_kernels_available();
        let p = CpuPrepared::plan(g, &w, 2, &s).unwrap();
        (p.steps.len(), s.direct)
    }

    /// A fire module's expand convolutions write their halves of the concatenation in
    /// place on the direct kernels (two steps, no copy); with an input that is no
    /// convolution's output, or on the portable kernels, the concatenation is a step.
    #[test]
    fn concatenated_convolutions_write_in_place() {
        for (with_input, direct, want) in [(false, true, 2), (true, true, 3), (false, false, 3)] {
            let mut nodes = vec![
                Node::with_inputs(
                    "e1",
                    Op::conv(8, [1, 1], [1, 1], Padding::Valid),
                    &["input"],
                ),
                Node::new("r1", Op::Relu),
                Node::with_inputs("e3", Op::conv(8, [3, 3], [1, 1], Padding::Same), &["input"]),
                Node::new("r3", Op::Relu),
            ];
            let parts: &[&str] = if with_input {
                &["r1", "r3", "input"]
            } else {
                &["r1", "r3"]
            };
            nodes.push(Node::with_inputs("cat", Op::Concat { axis: 2 }, parts));
            let shape = vec![6, 6, 4];
            let g = Graph::new(
                "fire",
                InputSpec {
                    shape,
                    token_vocab: None,
                    parts: vec![],
                },
                nodes,
            )
            .unwrap();
            let (steps, on_direct) = steps_planned(&g, direct);
            let want = if direct && !on_direct { 3 } else { want };
            assert_eq!(steps, want, "input part {with_input}, direct {direct}");
        }
    }

    /// ReLU, ReLU6, h-swish and sigmoid after a convolution or dense layer run in its
    /// epilogue (one step), on the direct and the portable kernels; tanh stays a step.
    #[test]
    fn activations_after_a_layer_are_its_epilogue() {
        let acts = [
            (Op::Relu, 1),
            (Op::Clip { min: 0.0, max: 6.0 }, 1),
            (Op::HardSwish, 1),
            (Op::Sigmoid, 1),
            (Op::Tanh, 2),
        ];
        for (act, steps) in acts {
            for layer in [
                Op::conv(8, [3, 3], [1, 1], Padding::Same),
                Op::Dense {
                    units: 8,
                    bias: true,
                },
            ] {
                let g = Graph::new(
                    "g",
                    InputSpec {
                        shape: vec![6, 6, 4],
                        token_vocab: None,
                        parts: vec![],
                    },
                    vec![Node::new("l", layer.clone()), Node::new("a", act.clone())],
                )
                .unwrap();
                for direct in [false, true] {
                    let (planned, _) = steps_planned(&g, direct);
                    assert_eq!(planned, steps, "{layer} + {act}, direct {direct}");
                }
            }
        }
    }
}
