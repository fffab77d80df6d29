//! Planning a graph for the GPU: weights uploaded, every activation and parameter buffer
//! allocated and every bind group made once, in `prepare`; one dispatch per kernel call,
//! recorded in order.

use crate::context::{GpuContext, MAX_HEAD_DIM, WG};
use crate::{GpuPrepared, Timer};
use greenbench_core::backend::BackendError;
use greenbench_core::graph::{Graph, MatMulGeom, Op};
use greenbench_core::strided::Strided;
use greenbench_core::weights::{Weights, check_weights};
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// One recorded dispatch.
pub(crate) struct Dispatch {
    /// The WGSL entry point (named in a dispatch profile).
    pub(crate) entry: &'static str,
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) bind_group: wgpu::BindGroup,
    pub(crate) groups: (u32, u32),
}

/// 16 u32 parameter slots, as `Params` in common.wgsl.
type Params = [u32; 16];

fn grid(threads: usize) -> (u32, u32) {
    let groups = threads.div_ceil(WG as usize).max(1) as u32;
    if groups <= 65_535 {
        (groups, 1)
    } else {
        (65_535, groups.div_ceil(65_535))
    }
}

struct Planner<'a> {
    ctx: &'a GpuContext,
    buffers: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
    /// Bytes one buffer binding may hold.
    binding_limit: u64,
}

/// The columns of a dense layer's weight block when the whole weight exceeds the binding
/// limit: a multiple of the matmul kernel's widest column tile (4 x 16), so the blocks'
/// dispatches keep full tiles. The smallest block [`crate::GpuBackend`] admits is this wide.
pub(crate) const DENSE_BLOCK_COLS: usize = 64;

impl Planner<'_> {
    fn storage(&mut self, label: &str, len: usize) -> usize {
        let b = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(4) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.buffers.push(b);
        self.buffers.len() - 1
    }

    fn upload(&mut self, label: &str, data: &[f32]) -> usize {
        let padded;
        let data = if data.is_empty() {
            padded = [0f32; 4];
            &padded[..]
        } else {
            data
        };
        let b = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(data),
                usage: wgpu::BufferUsages::STORAGE,
            });
        self.buffers.push(b);
        self.buffers.len() - 1
    }

    /// Record a dispatch of `entry` reading `srcs` (up to 3 buffer ids) into `dst`.
    fn dispatch(
        &mut self,
        entry: &'static str,
        params: Params,
        srcs: &[usize],
        dst: usize,
        groups: (u32, u32),
    ) -> Result<(), BackendError> {
        let pipeline = self.ctx.pipeline(entry)?;
        let ubuf = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: bytemuck::cast_slice(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let src = |i: usize| srcs.get(i).map_or(&self.ctx.dummy, |&b| &self.buffers[b]);
        let bind_group = self
            .ctx
            .device
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &self.ctx.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: ubuf.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: src(0).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: src(1).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: src(2).as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: self.buffers[dst].as_entire_binding(),
                    },
                ],
            });
        self.buffers.push(ubuf);
        self.dispatches.push(Dispatch {
            entry,
            pipeline,
            bind_group,
            groups,
        });
        Ok(())
    }

    /// `dst` = the strided map over `srcs` (`op`: a [`greenbench_core::graph::BinOp`] code, or
    /// 4 for a copy of `srcs[0]`); the map's lengths and strides go in a table buffer.
    fn strided(
        &mut self,
        map: &Strided,
        op: u32,
        srcs: &[usize],
        dst: usize,
    ) -> Result<(), BackendError> {
        let r = map.dims.len();
        let zeros = vec![0; r];
        let table: Vec<f32> = map
            .dims
            .iter()
            .chain(&map.strides[0])
            .chain(map.strides.get(1).unwrap_or(&zeros))
            .map(|&v| f32::from_bits(v as u32))
            .collect();
        let t = self.upload("strided map", &table);
        let mut p = [0u32; 16];
        p[..3].copy_from_slice(&[map.len() as u32, r as u32, op]);
        let a = srcs[0];
        let b = srcs.get(1).copied().unwrap_or(a);
        self.dispatch("strided", p, &[a, b, t], dst, grid(map.len()))
    }

    /// A dense layer `dst[m, n] = src[m, k] . w[k, n] (+ bias) (ReLU)` whose weight may exceed
    /// the binding limit: then uploaded as blocks of columns (each `[k, cols]`, within the
    /// limit), one matmul dispatch per block writing its columns of `dst`.
    #[allow(clippy::too_many_arguments)]
    fn dense(
        &mut self,
        label: &str,
        src: usize,
        w: &[f32],
        bias: Option<&[f32]>,
        dst: usize,
        (m, k, n): (usize, usize, usize),
        relu: bool,
    ) -> Result<(), BackendError> {
        let bias = bias.map(|b| self.upload(label, b));
        if (4 * k * n) as u64 <= self.binding_limit {
            let wk = self.upload(label, w);
            return self.matmul(src, wk, bias, dst, (m, k, n), relu);
        }
        let fit = (self.binding_limit / (4 * k as u64)) as usize;
        let cols = (fit / DENSE_BLOCK_COLS * DENSE_BLOCK_COLS).max(DENSE_BLOCK_COLS);
        let mut c0 = 0;
        while c0 < n {
            let nb = cols.min(n - c0);
            let block: Vec<f32> = (0..k)
                .flat_map(|r| w[r * n + c0..r * n + c0 + nb].iter().copied())
                .collect();
            let wk = self.upload(label, &block);
            self.matmul_cols(src, wk, bias, dst, (m, k, n), relu, c0..c0 + nb)?;
            c0 += nb;
        }
        Ok(())
    }

    /// `dst[m, n] = src[m, k] . w[k, n] (+ bias) (ReLU)`.
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &mut self,
        src: usize,
        w: usize,
        bias: Option<usize>,
        dst: usize,
        (m, k, n): (usize, usize, usize),
        relu: bool,
    ) -> Result<(), BackendError> {
        self.matmul_cols(src, w, bias, dst, (m, k, n), relu, 0..n)
    }

    /// [`Self::matmul`] of columns `cols` of `C` (row stride `n`) and of the bias, from a
    /// `[k, cols.len()]` weight block `w` (a dense layer's weight split by [`Self::dense`]).
    #[allow(clippy::too_many_arguments)]
    fn matmul_cols(
        &mut self,
        src: usize,
        w: usize,
        bias: Option<usize>,
        dst: usize,
        (m, k, n): (usize, usize, usize),
        relu: bool,
        cols: std::ops::Range<usize>,
    ) -> Result<(), BackendError> {
        let (c0, nb) = (cols.start, cols.len());
        let flags = u32::from(bias.is_some()) | (u32::from(relu) << 1);
        let mut p = [0u32; 16];
        // p[9], p[10]: the block's first column of C and of the bias (0 for a whole matmul).
        p[..11].copy_from_slice(&[
            m as u32, nb as u32, k as u32, flags, k as u32, nb as u32, n as u32, 0, 0, c0 as u32,
            c0 as u32,
        ]);
        let mut srcs = vec![src, w];
        srcs.extend(bias);
        let block = 4 * self.ctx.matmul_ts as usize;
        let groups = (nb.div_ceil(block) as u32, m.div_ceil(block) as u32);
        if groups.1 > 65_535 {
            return Err(BackendError::Invalid(format!(
                "a {m}-row matrix product exceeds the dispatch grid; use a smaller batch"
            )));
        }
        self.dispatch("matmul", p, &srcs, dst, groups)
    }
}

fn flat(t: &greenbench_core::weights::Tensor) -> Vec<f32> {
    t.iter().copied().collect()
}

impl GpuPrepared {
    pub(crate) fn new(
        ctx: Arc<GpuContext>,
        graph: Option<&Graph>,
        w: &Weights,
        batch: usize,
        matmul: Option<(usize, usize)>,
        binding_limit: u64,
    ) -> Result<Self, BackendError> {
        if batch == 0 {
            return Err(BackendError::Invalid("batch must be at least 1".into()));
        }
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut pl = Planner {
            ctx: &ctx,
            buffers: vec![],
            dispatches: vec![],
            binding_limit,
        };
        let (input, input_len, output, output_len) = match (graph, matmul) {
            (None, Some((k, n))) => {
                let m = batch;
                let a = pl.storage("A", m * k);
                let b: Vec<f32> = (0..k * n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
                let b = pl.upload("B", &b);
                let c = pl.storage("C", m * n);
                pl.matmul(a, b, None, c, (m, k, n), false)?;
                (a, m * k, c, m * n)
            }
            (Some(g), _) => plan_graph(&mut pl, g, w, batch)?,
            (None, None) => unreachable!("a graph or a matmul"),
        };
        let fail = |what: &str, e: wgpu::Error| BackendError::Failed {
            backend: "gpu".into(),
            message: format!("{what}: {e}"),
        };
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(fail("out of GPU memory while preparing", e));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(fail("preparing the model failed", e));
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (output_len * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let timer = ctx.timestamps.then(|| Timer {
            queries: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            read: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps readback"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        });
        let Planner {
            buffers,
            dispatches,
            ..
        } = pl;
        let input_buf = buffers[input].clone();
        let output_buf = buffers[output].clone();
        Ok(GpuPrepared {
            graph: graph.cloned(),
            batch,
            dispatches,
            input: input_buf,
            input_len,
            output: output_buf,
            staging,
            host_out: vec![0.0; output_len],
            timer,
            last_device_time: None,
            _keep: buffers,
            ctx,
        })
    }
}

/// Plan every node; returns (input buffer, its length, output buffer, its length).
fn plan_graph(
    pl: &mut Planner<'_>,
    g: &Graph,
    w: &Weights,
    batch: usize,
) -> Result<(usize, usize, usize, usize), BackendError> {
    check_weights(g, w).map_err(BackendError::Invalid)?;
    let nvals = g.nodes.len() + 1;
    let mut buf_of = vec![usize::MAX; nvals];
    let input_len = batch * g.input_len();
    buf_of[0] = pl.storage("input", input_len);
    let mut skip_next = false;
    for i in 0..g.nodes.len() {
        let v = i + 1;
        if skip_next {
            skip_next = false;
            continue;
        }
        let node = &g.nodes[i];
        let (ins, in_shape, last, out_len) = g.node_io(i, batch);
        let src = buf_of[ins[0]];
        let t = w.node(i);
        if matches!(node.op, Op::Flatten | Op::Reshape { .. }) {
            buf_of[v] = src;
            continue;
        }
        // A constant: its values for every example, uploaded once.
        if let Op::Constant { .. } = node.op {
            let one = t[0].as_slice().expect("standard layout");
            let tiled: Vec<f32> = (0..batch).flat_map(|_| one.iter().copied()).collect();
            buf_of[v] = pl.upload(&node.name, &tiled);
            continue;
        }
        let fuse_relu = g.relu_fusable(i);
        let dst = pl.storage(&node.name, out_len);
        buf_of[v] = dst;
        if fuse_relu {
            buf_of[v + 1] = dst;
            skip_next = true;
        }
        let threads = grid(out_len);
        let mut p = [0u32; 16];
        let unsupported = |why: String| BackendError::Unsupported {
            backend: "gpu".into(),
            node: node.name.clone(),
            op: node.op.kind().into(),
            why,
        };
        match &node.op {
            Op::Dense { units, .. } => {
                let bias = t.get(1).map(flat);
                pl.dense(
                    &node.name,
                    src,
                    &flat(&t[0]),
                    bias.as_deref(),
                    dst,
                    (out_len / units, last, *units),
                    fuse_relu,
                )?;
            }
            Op::Conv2d { .. } => {
                let c = g.conv_geom(i);
                let wk = pl.upload(&node.name, &flat(&t[0]));
                let bias = t.get(1).map(|b| pl.upload(&node.name, &flat(b)));
                let rows = batch * c.ho * c.wo;
                if c.is_pointwise() {
                    pl.matmul(src, wk, bias, dst, (rows, c.cin, c.cout), fuse_relu)?;
                } else {
                    let flags = u32::from(bias.is_some()) | (u32::from(fuse_relu) << 1);
                    let geo = [
                        c.h, c.w, c.cin, c.ho, c.wo, c.kh, c.kw, c.sh, c.sw, c.pad_top, c.pad_left,
                    ];
                    for (slot, val) in p.iter_mut().zip(geo) {
                        *slot = val as u32;
                    }
                    if c.groups == 1 {
                        let kk = c.kh * c.kw * c.cin;
                        let cols = pl.storage("im2col", rows * kk);
                        p[11] = (rows * kk) as u32;
                        pl.dispatch("im2col", p, &[src], cols, grid(rows * kk))?;
                        pl.matmul(cols, wk, bias, dst, (rows, kk, c.cout), fuse_relu)?;
                    } else {
                        p[11] = out_len as u32;
                        p[12] = c.cout as u32;
                        p[13] = c.groups as u32;
                        p[14] = flags;
                        let mut srcs = vec![src, wk];
                        srcs.extend(bias);
                        pl.dispatch("conv_direct", p, &srcs, dst, threads)?;
                    }
                }
            }
            Op::BatchNorm { eps } => {
                let (scale, shift) = greenbench_core::fold::bn_scale_shift(t, *eps);
                let s = pl.upload("bn scale", &scale);
                let h = pl.upload("bn shift", &shift);
                p[0] = out_len as u32;
                p[1] = last as u32;
                pl.dispatch("scale_shift", p, &[src, s, h], dst, threads)?;
            }
            Op::Relu | Op::Gelu => {
                p[0] = out_len as u32;
                let e = if matches!(node.op, Op::Relu) {
                    "relu"
                } else {
                    "gelu"
                };
                pl.dispatch(e, p, &[src], dst, threads)?;
            }
            Op::Add => {
                p[0] = out_len as u32;
                pl.dispatch("add", p, &[src, buf_of[ins[1]]], dst, threads)?;
            }
            op @ greenbench_core::unary_ops!() => {
                let (code, params) = op.unary().expect("unary op").code();
                p[..4].copy_from_slice(&[
                    out_len as u32,
                    code,
                    params[0].to_bits(),
                    params[1].to_bits(),
                ]);
                pl.dispatch("unary", p, &[src], dst, threads)?;
            }
            Op::Mul => {
                p[..3].copy_from_slice(&[
                    out_len as u32,
                    in_shape.iter().product::<usize>() as u32,
                    g.value_shape(ins[1]).iter().product::<usize>() as u32,
                ]);
                pl.dispatch("mul_bcast", p, &[src, buf_of[ins[1]]], dst, threads)?;
            }
            Op::Concat { axis } => {
                let out = g.out_shape(i);
                let outer = batch * out[..*axis].iter().product::<usize>();
                let row = out[*axis..].iter().product::<usize>();
                let mut offset = 0;
                for &v in ins {
                    let part = g.value_shape(v)[*axis..].iter().product::<usize>();
                    p[..4].copy_from_slice(&[
                        (outer * part) as u32,
                        part as u32,
                        row as u32,
                        offset as u32,
                    ]);
                    pl.dispatch("concat_part", p, &[buf_of[v]], dst, grid(outer * part))?;
                    offset += part;
                }
            }
            // A named input: its values in each example's packed input.
            Op::Input { index } => {
                p[..4].copy_from_slice(&[
                    out_len as u32,
                    g.input.parts[*index].len() as u32,
                    g.input_len() as u32,
                    g.input.part_offset(*index) as u32,
                ]);
                pl.dispatch("slice_part", p, &[src], dst, threads)?;
            }
            // Several outputs: each example's values of each, flattened, in turn.
            Op::Pack { .. } => {
                let row = g.output_len();
                let mut offset = 0;
                for &v in ins {
                    let part = g.value_shape(v).iter().product::<usize>();
                    p[..4].copy_from_slice(&[
                        (batch * part) as u32,
                        part as u32,
                        row as u32,
                        offset as u32,
                    ]);
                    pl.dispatch("concat_part", p, &[buf_of[v]], dst, grid(batch * part))?;
                    offset += part;
                }
            }
            Op::Slice { axis, start, len } => {
                let inner: usize = in_shape[axis + 1..].iter().product();
                p[..4].copy_from_slice(&[
                    out_len as u32,
                    (len * inner) as u32,
                    (in_shape[*axis] * inner) as u32,
                    (start * inner) as u32,
                ]);
                pl.dispatch("slice_part", p, &[src], dst, threads)?;
            }
            Op::ChannelShuffle { groups } => {
                p[..3].copy_from_slice(&[out_len as u32, last as u32, *groups as u32]);
                pl.dispatch("channel_shuffle", p, &[src], dst, threads)?;
            }
            Op::Softmax | Op::LayerNorm { .. } => {
                let rows = out_len / last;
                p[0] = rows as u32;
                p[1] = last as u32;
                let mut srcs = vec![src];
                let e = if let Op::LayerNorm { eps } = node.op {
                    p[2] = eps.to_bits();
                    srcs.push(pl.upload("ln gamma", &flat(&t[0])));
                    srcs.push(pl.upload("ln beta", &flat(&t[1])));
                    "layer_norm"
                } else {
                    "softmax"
                };
                pl.dispatch(e, p, &srcs, dst, grid(rows))?;
            }
            Op::GlobalAvgPool => {
                p[0] = out_len as u32;
                p[1] = (in_shape.iter().product::<usize>() / last) as u32;
                p[2] = last as u32;
                pl.dispatch("global_avg_pool", p, &[src], dst, threads)?;
            }
            Op::MaxPool { .. } | Op::AvgPool { .. } => {
                let q = g.pool_geom(i);
                let geo = [q.h, q.w, q.c, q.ho, q.wo, q.kh, q.kw, q.sh, q.sw];
                for (slot, val) in p.iter_mut().zip(geo) {
                    *slot = val as u32;
                }
                p[9] = u32::from(matches!(node.op, Op::MaxPool { .. }));
                p[10] = u32::from(q.count_include_pad);
                p[11] = out_len as u32;
                p[12..16].copy_from_slice(&[
                    q.pad_top as u32,
                    q.pad_left as u32,
                    q.pad_bottom as u32,
                    q.pad_right as u32,
                ]);
                pl.dispatch("pool", p, &[src], dst, threads)?;
            }
            Op::Embedding { dim, .. } => {
                let table = pl.upload("embedding", &flat(&t[0]));
                let mut srcs = vec![src, table];
                if let Some(pos) = t.get(1) {
                    srcs.push(pl.upload("positions", &flat(pos)));
                }
                p[..4].copy_from_slice(&[
                    out_len as u32,
                    in_shape[0] as u32,
                    *dim as u32,
                    u32::from(t.len() > 1),
                ]);
                pl.dispatch("embedding", p, &srcs, dst, threads)?;
            }
            Op::Attention {
                heads,
                head_dim,
                causal,
                key_bias,
            } => {
                if *head_dim > MAX_HEAD_DIM {
                    return Err(unsupported(format!(
                        "head_dim {head_dim} > {MAX_HEAD_DIM}, the kernel's register budget"
                    )));
                }
                let s = in_shape[0];
                let rows = batch * heads * s;
                p[..7].copy_from_slice(&[
                    rows as u32,
                    s as u32,
                    *heads as u32,
                    *head_dim as u32,
                    (1.0 / (*head_dim as f32).sqrt()).to_bits(),
                    u32::from(*causal),
                    u32::from(*key_bias),
                ]);
                let srcs: &[usize] = if *key_bias {
                    &[src, buf_of[ins[1]]]
                } else {
                    &[src]
                };
                pl.dispatch("attention", p, srcs, dst, grid(rows))?;
            }
            Op::Flatten | Op::Reshape { .. } | Op::Constant { .. } => {
                unreachable!("aliased or uploaded above")
            }
            Op::Binary { op } => {
                let map = Strided::binary(g.out_shape(i), in_shape, g.value_shape(ins[1]), batch);
                pl.strided(&map, op.code(), &[src, buf_of[ins[1]]], dst)?;
            }
            Op::BinaryConst { op, shape, left } => {
                let map = Strided::with_constant(g.out_shape(i), in_shape, shape, *left, batch);
                let c = pl.upload(&node.name, &flat(&t[0]));
                let srcs = if *left { [c, src] } else { [src, c] };
                pl.strided(&map, op.code(), &srcs, dst)?;
            }
            Op::Transpose { perm } => {
                let map = Strided::transpose(in_shape, perm, batch);
                pl.strided(&map, 4, &[src], dst)?;
            }
            Op::MatMul => {
                let b_shape = g.value_shape(ins[1]);
                let m = MatMulGeom::of(in_shape, b_shape).expect("validated").0;
                let block = 4 * pl.ctx.matmul_ts as usize;
                let products = batch * m.mats;
                let groups = (
                    m.n.div_ceil(block) as u32,
                    (m.m.div_ceil(block) * products) as u32,
                );
                if m.m.div_ceil(block) * products > 65_535 {
                    return Err(unsupported(format!(
                        "{products} products of {} rows exceed the dispatch grid; use a smaller batch",
                        m.m
                    )));
                }
                let mut q = [0u32; 16];
                q[..7].copy_from_slice(&[
                    m.m as u32, m.n as u32, m.k as u32, 0, m.k as u32, m.n as u32, m.n as u32,
                ]);
                q[11] = m.mats as u32;
                q[12..16].copy_from_slice(&[
                    in_shape.iter().product::<usize>() as u32,
                    m.a_step as u32,
                    b_shape.iter().product::<usize>() as u32,
                    m.b_step as u32,
                ]);
                pl.dispatch("matmul", q, &[src, buf_of[ins[1]]], dst, groups)?;
            }
        }
    }
    Ok((
        buf_of[0],
        input_len,
        buf_of[nvals - 1],
        batch * g.output_len(),
    ))
}
