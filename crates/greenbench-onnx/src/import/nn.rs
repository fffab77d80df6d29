//! Neural-network ops: convolution (with a preceding zero Pad taken in), pooling, batch and
//! layer normalization, padding.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::{Op, fmt_shape};
use ndarray::{ArrayD, IxDyn};

/// This family's ops.
pub(super) const OPS: &[(&str, ImportFn)] = &[
    ("AveragePool", |i, n| i.pool(n)),
    ("BatchNormalization", |i, n| i.batch_norm(n)),
    ("Conv", |i, n| i.conv(n)),
    ("GlobalAveragePool", |i, n| i.global_pool(n)),
    ("LayerNormalization", |i, n| i.layer_norm(n)),
    ("MaxPool", |i, n| i.pool(n)),
    ("Pad", |i, n| i.pad(n)),
];

impl Importer<'_> {
    pub(super) fn conv(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        // A zero Pad before the convolution becomes part of its padding.
        let (x, extra) = match self.need(n, 0)? {
            Val::Padded(x, p) => (x.clone(), *p),
            _ => {
                let x = self.need_act(n, 0)?;
                (self.image_of(n, x), [0; 4])
            }
        };
        let w = self.need_const(n, 1, "the weight")?;
        let b = match self.input_val(n, 2)? {
            Some(Val::Const(t)) => Some(t.clone()),
            Some(_) => return Err(self.node_err(n, "the bias must be a constant")),
            None => None,
        };
        // A 1x1 convolution of a 1x1 map (a classifier after a global pool, DenseNet's and
        // SqueezeNet's heads) is a dense layer on the IR's [C].
        if x.ir_shape.len() == 1
            && extra == [0; 4]
            && let Layout::Chw { c, h: 1, w: 1 } = x.layout
            && w.dims.len() == 4
            && w.dims[1] == c
            && w.dims[2..] == [1, 1]
            && attr_i(n, "group", 1) == 1
            && attr_ints(n, "pads").is_none_or(|p| p.iter().all(|&v| v == 0))
            && attr_s(n, "auto_pad").is_none_or(|a| a == "NOTSET" || a == "VALID")
        {
            let co = w.dims[0];
            let wv = transpose2(&w.to_f32(), co, c);
            let mut ws = vec![ArrayD::from_shape_vec(IxDyn(&[c, co]), wv).expect("sized")];
            if let Some(b) = &b {
                ws.push(ArrayD::from_shape_vec(IxDyn(&[co]), b.to_f32()).expect("sized"));
            }
            let op = Op::Dense {
                units: co,
                bias: b.is_some(),
            };
            let name = self.emit(&Self::node_name(n), op, vec![x.ir], ws);
            self.set(
                n,
                Val::Act(Act {
                    ir: name,
                    dims: vec![co, 1, 1],
                    layout: Layout::Chw { c: co, h: 1, w: 1 },
                    ir_shape: vec![co],
                }),
            );
            return Ok(());
        }
        // A 1-D convolution over [N, C, L] (Whisper's and wav2vec2's front ends) is a 2-D one
        // over a [N, C, 1, L] map: the weight [M, C/g, k] as [M, C/g, 1, k].
        let one_d = w.dims.len() == 3 && extra == [0; 4];
        let (x, w) = if one_d {
            let x = self.sequence_image(n, x)?;
            let mut w = w.clone();
            w.dims.insert(2, 1);
            (x, w)
        } else {
            (x, w)
        };
        let Layout::Chw { c, h, w: wd } = x.layout else {
            return Err(self.node_err(
                n,
                format!(
                    "input of ONNX dims {} is not an NCHW image (2-D convolution over [N, C, H, W] and 1-D over [N, C, L] are supported)",
                    fmt_shape(&x.dims)
                ),
            ));
        };
        if w.dims.len() != 4 {
            return Err(self.node_err(n, "only 1-D and 2-D convolutions are supported"));
        }
        let (co, cig, kh, kw) = (w.dims[0], w.dims[1], w.dims[2], w.dims[3]);
        let groups = attr_i(n, "group", 1).max(1) as usize;
        if cig * groups != c || co % groups != 0 {
            return Err(self.node_err(
                n,
                format!(
                    "weight {:?} does not fit {c} input channels in {groups} groups",
                    w.dims
                ),
            ));
        }
        if let Some(d) = attr_ints(n, "dilations")
            && d.iter().any(|&d| d != 1)
        {
            return Err(self.node_err(n, format!("dilations {d:?}: only 1 is supported")));
        }
        let mut s = attr_ints(n, "strides").unwrap_or_else(|| vec![1; if one_d { 1 } else { 2 }]);
        if one_d && s.len() == 1 {
            s.insert(0, 1);
        }
        if s.len() != 2 || s.iter().any(|&v| v < 1) {
            return Err(self.node_err(n, format!("strides {s:?} must be positive, one per axis")));
        }
        let (sh, sw) = (s[0] as usize, s[1] as usize);
        let own = if one_d {
            let [b, e] = self.pads_1d(n, wd, kw, sw)?;
            [0, b, 0, e]
        } else {
            self.pads(
                n,
                [h + extra[0] + extra[2], wd + extra[1] + extra[3]],
                [kh, kw],
                [sh, sw],
            )?
        };
        let pads = [0, 1, 2, 3].map(|k| own[k] + extra[k]);
        let mut hwio = vec![0f32; w.len()];
        let src = w.to_f32();
        for o in 0..co {
            for i in 0..cig {
                for y in 0..kh {
                    for xx in 0..kw {
                        hwio[((y * kw + xx) * cig + i) * co + o] =
                            src[((o * cig + i) * kh + y) * kw + xx];
                    }
                }
            }
        }
        let mut ws = vec![ArrayD::from_shape_vec(IxDyn(&[kh, kw, cig, co]), hwio).expect("sized")];
        if let Some(b) = &b {
            if b.len() != co {
                return Err(
                    self.node_err(n, format!("bias has {} values for {co} filters", b.len()))
                );
            }
            ws.push(ArrayD::from_shape_vec(IxDyn(&[co]), b.to_f32()).expect("sized"));
        }
        let op = Op::Conv2d {
            filters: co,
            kernel: [kh, kw],
            stride: [sh, sw],
            padding: canonical_padding(pads),
            groups,
            bias: b.is_some(),
        };
        let hp = h + pads[0] + pads[2];
        let wp = wd + pads[1] + pads[3];
        if hp < kh || wp < kw {
            return Err(self.node_err(n, "the kernel does not fit the padded input"));
        }
        let (ho, wo) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
        let name = self.emit(&Self::node_name(n), op, vec![x.ir], ws);
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims: if one_d {
                    vec![co, wo]
                } else {
                    vec![co, ho, wo]
                },
                layout: Layout::Chw {
                    c: co,
                    h: ho,
                    w: wo,
                },
                ir_shape: vec![ho, wo, co],
            }),
        );
        Ok(())
    }

    /// Explicit pads `[begin, end]` of a 1-D convolution over `l` from `pads` or `auto_pad`.
    fn pads_1d(
        &self,
        n: &NodeProto,
        l: usize,
        k: usize,
        s: usize,
    ) -> Result<[usize; 2], ImportError> {
        let auto = attr_s(n, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" | "" => {
                let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 2]);
                if p.len() != 2 || p.iter().any(|&v| v < 0) {
                    return Err(self.node_err(
                        n,
                        format!("pads {p:?} of a 1-D convolution must be two non-negative numbers"),
                    ));
                }
                Ok([p[0] as usize, p[1] as usize])
            }
            "VALID" => Ok([0; 2]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let total = ((l.div_ceil(s) - 1) * s + k).saturating_sub(l);
                let small = total / 2;
                Ok(if auto == "SAME_UPPER" {
                    [small, total - small]
                } else {
                    [total - small, small]
                })
            }
            other => Err(self.node_err(n, format!("auto_pad {other} is not supported"))),
        }
    }

    /// A `[C, L]` activation as the IR's `[1, L, C]` map a 1-D convolution reads: as it is
    /// when a 1-D convolution (or the boundary) left it so, else transposed once.
    fn sequence_image(&mut self, n: &NodeProto, x: Act) -> Result<Act, ImportError> {
        match (x.layout, x.dims.as_slice()) {
            (Layout::Chw { h: 1, .. }, [_, _]) => Ok(x),
            (Layout::Plain, &[c, l]) => {
                let name = Self::node_name(n);
                let p = self.plain_of(&name, x);
                let t = self.emit(
                    &format!("{name}_lc"),
                    Op::Transpose { perm: vec![1, 0] },
                    vec![p.ir],
                    vec![],
                );
                let ir = self.emit(
                    &format!("{name}_1lc"),
                    Op::Reshape {
                        shape: vec![1, l, c],
                    },
                    vec![t],
                    vec![],
                );
                Ok(Act {
                    ir,
                    dims: vec![c, l],
                    layout: Layout::Chw { c, h: 1, w: l },
                    ir_shape: vec![1, l, c],
                })
            }
            _ => Err(self.node_err(
                n,
                format!(
                    "a 1-D convolution reads [N, C, L]; its input has ONNX dims {}",
                    fmt_shape(&x.dims)
                ),
            )),
        }
    }

    /// Explicit pads `[top, left, bottom, right]` from `pads` or `auto_pad`.
    pub(super) fn pads(
        &self,
        n: &NodeProto,
        hw: [usize; 2],
        k: [usize; 2],
        s: [usize; 2],
    ) -> Result<[usize; 4], ImportError> {
        let auto = attr_s(n, "auto_pad").unwrap_or_else(|| "NOTSET".into());
        match auto.as_str() {
            "NOTSET" | "" => {
                let p = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if p.len() != 4 || p.iter().any(|&v| v < 0) {
                    return Err(
                        self.node_err(n, format!("pads {p:?} must be four non-negative numbers"))
                    );
                }
                Ok([p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize])
            }
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut out = [0; 4];
                for d in 0..2 {
                    let o = hw[d].div_ceil(s[d]);
                    let total = ((o - 1) * s[d] + k[d]).saturating_sub(hw[d]);
                    let small = total / 2;
                    let (b, e) = if auto == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    out[d] = b;
                    out[d + 2] = e;
                }
                Ok(out)
            }
            other => Err(self.node_err(n, format!("auto_pad `{other}` is not known"))),
        }
    }

    pub(super) fn layer_norm(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        let x = self.need_act(n, 0)?;
        self.last_axis(n, &x, attr_i(n, "axis", -1))?;
        let d = *x.dims.last().expect("non-empty");
        let gamma = self.need_const(n, 1, "scale")?;
        let beta = match self.input_val(n, 2)? {
            Some(Val::Const(t)) => t.to_f32(),
            Some(_) => return Err(self.node_err(n, "bias must be a constant")),
            None => vec![0.0; d],
        };
        if gamma.len() != d || beta.len() != d {
            return Err(self.node_err(n, format!("scale/bias must have {d} values")));
        }
        let ws = vec![
            ArrayD::from_shape_vec(IxDyn(&[d]), gamma.to_f32()).expect("sized"),
            ArrayD::from_shape_vec(IxDyn(&[d]), beta).expect("sized"),
        ];
        let eps = attr_f(n, "epsilon", 1e-5);
        self.emit_same(n, Op::LayerNorm { eps }, x, ws)
    }

    pub(super) fn batch_norm(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        if attr_i(n, "training_mode", 0) != 0 {
            return Err(self.node_err(n, "training_mode = 1 is not supported (inference only)"));
        }
        let x = self.need_act(n, 0)?;
        // (A [N, C, H, W] the general ops left in the file's order: as the IR's image.)
        let x = self.image_of(n, x);
        // The channel axis (ONNX axis 1) must be the IR's last axis.
        let c = match x.layout {
            Layout::Chw { c, .. } => c,
            _ if x.dims.len() == 1 && x.layout.gather().is_none() => x.dims[0],
            _ => {
                return Err(self.node_err(
                    n,
                    format!(
                        "batch norm over channel axis 1 of {} is not supported",
                        fmt_shape(&x.dims)
                    ),
                ));
            }
        };
        let mut ws = vec![];
        for (k, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
            let t = self.need_const(n, k, what)?;
            if t.len() != c {
                return Err(
                    self.node_err(n, format!("{what} has {} values for {c} channels", t.len()))
                );
            }
            ws.push(ArrayD::from_shape_vec(IxDyn(&[c]), t.to_f32()).expect("sized"));
        }
        let eps = attr_f(n, "epsilon", 1e-5);
        self.emit_same(n, Op::BatchNorm { eps }, x, ws)
    }

    pub(super) fn pool(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        self.only_first_output(n)?;
        let x = self.need_act(n, 0)?;
        let x = self.image_of(n, x);
        let Layout::Chw { c, h, w } = x.layout else {
            return Err(self.node_err(
                n,
                format!("input {} is not an NCHW image", fmt_shape(&x.dims)),
            ));
        };
        let k = attr_ints(n, "kernel_shape").unwrap_or_default();
        if k.len() != 2 || k.iter().any(|&v| v < 1) {
            return Err(self.node_err(
                n,
                format!("kernel_shape {k:?}: 2-D pooling with a positive window is supported"),
            ));
        }
        let s = attr_ints(n, "strides").unwrap_or_else(|| vec![1, 1]);
        if s.len() != 2 || s.iter().any(|&v| v < 1) {
            return Err(self.node_err(n, format!("strides {s:?} must be two positive numbers")));
        }
        if let Some(d) = attr_ints(n, "dilations")
            && d.iter().any(|&d| d != 1)
        {
            return Err(self.node_err(n, format!("dilations {d:?}: only 1 is supported")));
        }
        let (kh, kw, sh, sw) = (k[0] as usize, k[1] as usize, s[0] as usize, s[1] as usize);
        let pads = self.pads(n, [h, w], [kh, kw], [sh, sw])?;
        let padding = canonical_padding(pads);
        let ceil_mode = attr_i(n, "ceil_mode", 0) != 0;
        let op = if n.op_type.as_deref() == Some("MaxPool") {
            if attr_i(n, "storage_order", 0) != 0 {
                // Only the (unsupported) indices output depends on it.
                self.only_first_output(n)?;
            }
            Op::MaxPool {
                kernel: [kh, kw],
                stride: [sh, sw],
                padding,
                ceil_mode,
            }
        } else {
            Op::AvgPool {
                kernel: [kh, kw],
                stride: [sh, sw],
                padding,
                ceil_mode,
                count_include_pad: attr_i(n, "count_include_pad", 0) != 0,
            }
        };
        let Some(geo) = greenbench_core::graph::pool_geometry(&op, &[h, w, c]) else {
            return Err(self.node_err(
                n,
                format!(
                    "the {kh}x{kw} window with pads {pads:?} does not fit the {h}x{w} input \
                     (or a pad is as large as the window)"
                ),
            ));
        };
        let (ho, wo) = (geo.ho, geo.wo);
        let name = self.emit(&Self::node_name(n), op, vec![x.ir], vec![]);
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims: vec![c, ho, wo],
                layout: Layout::Chw { c, h: ho, w: wo },
                ir_shape: vec![ho, wo, c],
            }),
        );
        Ok(())
    }

    pub(super) fn global_pool(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let x = self.image_of(n, x);
        let Layout::Chw { c, .. } = x.layout else {
            return Err(self.node_err(
                n,
                format!("input {} is not an NCHW image", fmt_shape(&x.dims)),
            ));
        };
        let name = self.emit(&Self::node_name(n), Op::GlobalAvgPool, vec![x.ir], vec![]);
        // ONNX keeps [C, 1, 1]; the IR's [C] is the same memory.
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims: vec![c, 1, 1],
                layout: Layout::Chw { c, h: 1, w: 1 },
                ir_shape: vec![c],
            }),
        );
        Ok(())
    }

    /// A constant zero Pad of an NCHW map's height and width, kept for the convolution after it.
    pub(super) fn pad(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let mode = attr_s(n, "mode").unwrap_or_else(|| "constant".into());
        let (pads, value) = if self.opset < 11 {
            (
                attr_ints(n, "pads").unwrap_or_default(),
                attr_f(n, "value", 0.0),
            )
        } else {
            let p = self.need_const(n, 1, "pads")?;
            let v = match self.input_val(n, 2)? {
                Some(Val::Const(t)) => t.to_f32().first().copied().unwrap_or(0.0),
                Some(_) => return Err(self.node_err(n, "the pad value must be a constant")),
                None => 0.0,
            };
            if self.input_val(n, 3)?.is_some() {
                return Err(self.node_err(n, "Pad with axes is not supported"));
            }
            (i64_values(&p).map_err(|m| self.node_err(n, m))?, v)
        };
        let r = x.dims.len() + 1;
        let Layout::Chw { .. } = x.layout else {
            return Err(self.node_err(n, "Pad of anything but an NCHW map"));
        };
        if mode != "constant" || value != 0.0 {
            return Err(self.node_err(
                n,
                format!("Pad mode {mode} with value {value}: only zero padding is supported"),
            ));
        }
        if pads.len() != 2 * r
            || pads.iter().any(|&p| p < 0)
            || [0, 1, r, r + 1].iter().any(|&k| pads[k] != 0)
        {
            return Err(self.node_err(
                n,
                format!(
                    "pads {pads:?}: only non-negative padding of height and width is supported"
                ),
            ));
        }
        let p = [pads[2], pads[3], pads[2 + r], pads[3 + r]].map(|v| v as usize);
        self.set(n, Val::Padded(x, p));
        Ok(())
    }
}
