//! Products with weights: Gemm and MatMul as dense layers (a flatten of an NCHW image absorbed
//! by permuting the weight rows), or as a product of two activations.

use super::boundary::Layout;
use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::proto::NodeProto;
use greenbench_core::graph::{Op, fmt_shape};
use ndarray::{ArrayD, IxDyn};

/// This family's ops.
pub(super) const OPS: &[(&str, ImportFn)] =
    &[("Gemm", |i, n| i.gemm(n)), ("MatMul", |i, n| i.matmul(n))];

impl Importer<'_> {
    /// The weight rows of a dense layer reading `x`, in the IR's order.
    pub(super) fn dense_rows(&self, x: &Act, k: usize, units: usize, w: Vec<f32>) -> Vec<f32> {
        // Rows of a flattened NCHW map: in the IR's NHWC order.
        let Some(g) = x
            .layout
            .gather()
            .filter(|_| matches!(x.layout, Layout::Flat { .. }))
        else {
            return w;
        };
        let mut out = vec![0f32; k * units];
        for (onnx_r, &ir_r) in g.iter().enumerate() {
            out[ir_r * units..(ir_r + 1) * units]
                .copy_from_slice(&w[onnx_r * units..(onnx_r + 1) * units]);
        }
        out
    }

    pub(super) fn dense_input(&self, n: &NodeProto, x: &Act) -> Result<usize, ImportError> {
        let k = *x.dims.last().expect("non-empty");
        let same_last = x.ir_shape.last() == Some(&k);
        match x.layout {
            Layout::Flat { .. } => Ok(k),
            Layout::Plain if same_last => Ok(k),
            _ if same_last && x.dims.len() == 1 => Ok(k),
            _ => Err(self.node_err(
                n,
                format!(
                    "a matrix product over the last axis of {} (an NCHW image) is not supported \
                     (flatten it first)",
                    fmt_shape(&x.dims)
                ),
            )),
        }
    }

    pub(super) fn gemm(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = self.need_act(n, 0)?;
        let b = self.need_const(n, 1, "B")?;
        if attr_i(n, "transA", 0) != 0 {
            return Err(self.node_err(n, "transA = 1 is not supported"));
        }
        if x.dims.len() != 1 {
            return Err(self.node_err(
                n,
                format!("A must be [N, K], got per-example {}", fmt_shape(&x.dims)),
            ));
        }
        let k = self.dense_input(n, &x)?;
        if b.dims.len() != 2 {
            return Err(self.node_err(n, format!("B must be 2-D, got {:?}", b.dims)));
        }
        let trans_b = attr_i(n, "transB", 0) != 0;
        let (bk, units) = if trans_b {
            (b.dims[1], b.dims[0])
        } else {
            (b.dims[0], b.dims[1])
        };
        if bk != k {
            return Err(self.node_err(n, format!("B {:?} does not take {k} inputs", b.dims)));
        }
        let alpha = attr_f(n, "alpha", 1.0);
        let beta = attr_f(n, "beta", 1.0);
        let mut wv = b.to_f32();
        if trans_b {
            wv = transpose2(&wv, units, k);
        }
        wv.iter_mut().for_each(|v| *v *= alpha);
        let wv = self.dense_rows(&x, k, units, wv);
        let mut ws = vec![ArrayD::from_shape_vec(IxDyn(&[k, units]), wv).expect("sized")];
        let bias = match self.input_val(n, 2)? {
            Some(Val::Const(c)) => {
                let v = c.to_f32();
                let full: Vec<f32> = match v.len() {
                    1 => vec![v[0] * beta; units],
                    l if l == units => v.iter().map(|x| x * beta).collect(),
                    _ => {
                        return Err(
                            self.node_err(n, format!("C {:?} is not a bias of {units}", c.dims))
                        );
                    }
                };
                ws.push(ArrayD::from_shape_vec(IxDyn(&[units]), full).expect("sized"));
                true
            }
            Some(_) => return Err(self.node_err(n, "C must be a constant")),
            None => false,
        };
        let name = self.emit(
            &Self::node_name(n),
            Op::Dense { units, bias },
            vec![x.ir],
            ws,
        );
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims: vec![units],
                layout: Layout::Plain,
                ir_shape: vec![units],
            }),
        );
        Ok(())
    }

    pub(super) fn matmul(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let x = match self.need(n, 0)? {
            Val::Act(a) => a.clone(),
            _ => {
                return Err(self.node_err(n, "a constant times an activation is not supported (the IR's dense layer is activation x weight)"));
            }
        };
        let b = match self.need(n, 1)? {
            Val::Const(t) => t.clone(),
            Val::Act(y) => {
                // A product of two activations.
                let y = y.clone();
                if x.dims.len() != y.dims.len() {
                    return Err(self.node_err(
                        n,
                        format!(
                            "MatMul of [N, ..] tensors of different ranks ({} and {}): the batch axis would broadcast against a per-example axis",
                            fmt_shape(&x.dims),
                            fmt_shape(&y.dims)
                        ),
                    ));
                }
                if let Err(e) = greenbench_core::graph::MatMulGeom::of(&x.dims, &y.dims) {
                    return Err(self.node_err(n, e));
                }
                let name = Self::node_name(n);
                let (a, b) = (self.plain_of(&name, x), self.plain_of(&name, y));
                let out = self.matmul_plain(&name, a, b);
                self.set(n, Val::Act(out));
                return Ok(());
            }
            _ => {
                return Err(self.node_err(n, "input 1 is an unfinished pattern"));
            }
        };
        if b.dims.len() != 2 {
            return Err(self.node_err(n, format!("the weight must be 2-D, got {:?}", b.dims)));
        }
        let k = self.dense_input(n, &x)?;
        if b.dims[0] != k {
            return Err(self.node_err(n, format!("weight {:?} does not take {k} inputs", b.dims)));
        }
        let units = b.dims[1];
        let wv = self.dense_rows(&x, k, units, b.to_f32());
        let ws = vec![ArrayD::from_shape_vec(IxDyn(&[k, units]), wv).expect("sized")];
        let name = self.emit(
            &Self::node_name(n),
            Op::Dense { units, bias: false },
            vec![x.ir],
            ws,
        );
        let mut dims = x.dims.clone();
        *dims.last_mut().expect("non-empty") = units;
        let mut ir_shape = x.ir_shape.clone();
        *ir_shape.last_mut().expect("non-empty") = units;
        self.set(
            n,
            Val::Act(Act {
                ir: name,
                dims,
                layout: Layout::Plain,
                ir_shape,
            }),
        );
        Ok(())
    }
}
