//! The ops exporters build masks and positions with (GPT-2's causal mask, position ids):
//! `Range`, the comparisons, `Not`/`And`/`Or`/`Xor`, `Where`, `Expand`, `Trilu`, and the math
//! functions, folded at import when their inputs are constants (a sequence length bound with
//! `--dim` makes them so). Booleans are held as int64 0/1, as `Cast` to bool leaves them.
//! `Where` with a constant condition and one activation branch is imported as two
//! broadcasting constants: `x * m + b` (`m` 1 where the condition picks `x`, else 0; `b` the
//! other branch's value where it is picked, else 0: never `-inf * 0`).

use super::error::ImportError;
use super::shape::*;
use super::values::*;
use crate::decode::{Tensor, Values};
use crate::proto::NodeProto;
use greenbench_core::graph::{BinOp, MathFn};

fn no_batch(v: &[i64]) -> Result<(), String> {
    if v.contains(&BATCH) {
        Err(
            "compares or builds from the dynamic batch size: the value cannot be made static"
                .into(),
        )
    } else {
        Ok(())
    }
}

fn count(dims: &[usize]) -> Result<usize, String> {
    cap(dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the shape overflows")?)
}

/// `Range(start, limit, delta)`: int64 when all three are integers, else float.
pub(super) fn range(
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
    name: &str,
) -> Result<Tensor, String> {
    let one = |t: &Tensor, what: &str| -> Result<f64, String> {
        match &t.values {
            Values::I64(v) if v.len() == 1 => {
                no_batch(v)?;
                Ok(v[0] as f64)
            }
            Values::F32(v) if v.len() == 1 => Ok(v[0] as f64),
            _ => Err(format!("Range's {what} must be a scalar")),
        }
    };
    let (s, l, d) = (
        one(start, "start")?,
        one(limit, "limit")?,
        one(delta, "delta")?,
    );
    if d == 0.0 {
        return Err("Range with delta 0".into());
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    let n = cap(n)?;
    let ints = [start, limit, delta]
        .iter()
        .all(|t| matches!(t.values, Values::I64(_)));
    Ok(if ints {
        t_i64(
            name,
            vec![n],
            (0..n).map(|i| (s + d * i as f64) as i64).collect(),
        )
    } else {
        t_f32(
            name,
            vec![n],
            (0..n).map(|i| (s + d * i as f64) as f32).collect(),
        )
    })
}

/// Elementwise, broadcasting, `f(a, b)` over values as f64 (int64 kept exact below 2^53).
fn zip(
    a: &Tensor,
    b: &Tensor,
    name: &str,
    f: impl Fn(f64, f64) -> f64,
    int_out: bool,
) -> Result<Tensor, String> {
    let dims = broadcast_shape(&a.dims, &b.dims)?;
    let n = count(&dims)?;
    let vals = |t: &Tensor| -> Result<Vec<f64>, String> {
        Ok(match &t.values {
            Values::I64(v) => {
                no_batch(v)?;
                v.iter().map(|&x| x as f64).collect()
            }
            Values::F32(v) => v.iter().map(|&x| x as f64).collect(),
        })
    };
    let (x, y) = (vals(a)?, vals(b)?);
    let out: Vec<f64> = (0..n)
        .map(|i| {
            f(
                x[bcast_index(&dims, &a.dims, i)],
                y[bcast_index(&dims, &b.dims, i)],
            )
        })
        .collect();
    Ok(if int_out {
        t_i64(name, dims, out.iter().map(|&v| v as i64).collect())
    } else {
        t_f32(name, dims, out.iter().map(|&v| v as f32).collect())
    })
}

/// `Equal` of shapes holding the dynamic batch size where it is decided all the same: the
/// batch (at least 1) never equals a number below 1 (torch's `expand(N, -1, -1)` compares its
/// target with -1), and equals itself.
fn equal_with_batch(a: &Tensor, b: &Tensor, name: &str) -> Option<Result<Tensor, String>> {
    let (Values::I64(x), Values::I64(y)) = (&a.values, &b.values) else {
        return None;
    };
    if !x.contains(&BATCH) && !y.contains(&BATCH) {
        return None;
    }
    let dims = match broadcast_shape(&a.dims, &b.dims) {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let n = match count(&dims) {
        Ok(n) => n,
        Err(e) => return Some(Err(e)),
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (p, q) = (
            x[bcast_index(&dims, &a.dims, i)],
            y[bcast_index(&dims, &b.dims, i)],
        );
        out.push(match (p == BATCH, q == BATCH) {
            (true, true) => 1,
            (false, false) => i64::from(p == q),
            (true, false) if q < 1 => 0,
            (false, true) if p < 1 => 0,
            _ => {
                return Some(Err(
                    "compares the dynamic batch size with a number it may equal: the value cannot be made static".into(),
                ));
            }
        });
    }
    Some(Ok(t_i64(name, dims, out)))
}

/// Equal, Less, Greater, LessOrEqual, GreaterOrEqual, And, Or, Xor of constants.
pub(super) fn compare(op: &str, a: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, String> {
    if op == "Equal"
        && let Some(t) = equal_with_batch(a, b, name)
    {
        return t;
    }
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    let f: fn(f64, f64) -> bool = match op {
        "Equal" => |p, q| p == q,
        "Less" => |p, q| p < q,
        "Greater" => |p, q| p > q,
        "LessOrEqual" => |p, q| p <= q,
        "GreaterOrEqual" => |p, q| p >= q,
        "And" => |p, q| p != 0.0 && q != 0.0,
        "Or" => |p, q| p != 0.0 || q != 0.0,
        _ => |p, q| (p != 0.0) != (q != 0.0),
    };
    zip(a, b, name, |p, q| t(f(p, q)), true)
}

/// `Pow(a, b)` of constants.
pub(super) fn pow(a: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, String> {
    zip(a, b, name, f64::powf, false)
}

/// Not of a constant boolean.
pub(super) fn not(a: &Tensor, name: &str) -> Result<Tensor, String> {
    Ok(t_i64(
        name,
        a.dims.clone(),
        a.to_f32().iter().map(|&v| (v == 0.0) as i64).collect(),
    ))
}

/// `Where(c, x, y)` of constants.
pub(super) fn where_(c: &Tensor, x: &Tensor, y: &Tensor, name: &str) -> Result<Tensor, String> {
    let dims = broadcast_shape(&broadcast_shape(&c.dims, &x.dims)?, &y.dims)?;
    let n = count(&dims)?;
    let cv = c.to_f32();
    let pick = |i: usize| cv[bcast_index(&dims, &c.dims, i)] != 0.0;
    let choose = |i: usize| {
        if pick(i) {
            (true, bcast_index(&dims, &x.dims, i))
        } else {
            (false, bcast_index(&dims, &y.dims, i))
        }
    };
    fn select<T: Copy>(
        n: usize,
        p: &[T],
        q: &[T],
        choose: impl Fn(usize) -> (bool, usize),
    ) -> Vec<T> {
        (0..n)
            .map(|i| match choose(i) {
                (true, k) => p[k],
                (false, k) => q[k],
            })
            .collect()
    }
    Ok(match (&x.values, &y.values) {
        (Values::I64(p), Values::I64(q)) => t_i64(name, dims.clone(), select(n, p, q, choose)),
        _ => t_f32(
            name,
            dims.clone(),
            select(n, &x.to_f32(), &y.to_f32(), choose),
        ),
    })
}

/// `Expand(x, shape)` of a constant to a static shape (numpy's broadcasting both ways).
pub(super) fn expand(x: &Tensor, shape: &[i64], name: &str) -> Result<Tensor, String> {
    // To the batch (ViT's class token `cls.expand(N, -1, -1)`): the batch axis stays 1, the
    // same constant for every example (a Concat with an activation makes it one per example).
    let mut shape = shape.to_vec();
    if shape.first() == Some(&BATCH) && x.dims.len() == shape.len() && x.dims[0] == 1 {
        shape[0] = 1;
    }
    if shape.contains(&BATCH) {
        return Err(
            "Expand of a constant to the batch is supported from a leading 1 only (the same constant for every example)"
                .into(),
        );
    }
    let want: Vec<usize> = shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    let dims = broadcast_shape(&x.dims, &want)?;
    let n = count(&dims)?;
    let idx = |i: usize| bcast_index(&dims, &x.dims, i);
    Ok(match &x.values {
        Values::I64(v) => t_i64(name, dims.clone(), (0..n).map(|i| v[idx(i)]).collect()),
        Values::F32(v) => t_f32(name, dims.clone(), (0..n).map(|i| v[idx(i)]).collect()),
    })
}

/// `Trilu(x, k)` of a constant: the upper (`upper`) or lower triangle of each of the last two
/// axes' matrices from diagonal `k`, zeros elsewhere.
pub(super) fn trilu(x: &Tensor, k: i64, upper: bool, name: &str) -> Result<Tensor, String> {
    let r = x.dims.len();
    if r < 2 {
        return Err(format!("Trilu of a rank-{r} tensor (needs 2 or more)"));
    }
    let (rows, cols) = (x.dims[r - 2], x.dims[r - 1]);
    let keep = |i: usize| {
        let (row, col) = (((i / cols) % rows) as i64, (i % cols) as i64);
        if upper {
            col - row >= k
        } else {
            col - row <= k
        }
    };
    Ok(match &x.values {
        Values::I64(v) => t_i64(
            name,
            x.dims.clone(),
            v.iter()
                .enumerate()
                .map(|(i, &e)| if keep(i) { e } else { 0 })
                .collect(),
        ),
        Values::F32(v) => t_f32(
            name,
            x.dims.clone(),
            v.iter()
                .enumerate()
                .map(|(i, &e)| if keep(i) { e } else { 0.0 })
                .collect(),
        ),
    })
}

/// A math function of a constant.
pub(super) fn math(f: MathFn, x: &Tensor, name: &str) -> Tensor {
    t_f32(
        name,
        x.dims.clone(),
        x.to_f32()
            .iter()
            .map(|&v| f.eval(v as f64) as f32)
            .collect(),
    )
}

/// Whether `t` is a causal mask over `s` positions (trailing dims `[s, s]`, leading ones 1):
/// `keep(v)` holds on and below the diagonal, `drop(v)` above it.
fn causal_pattern(
    t: &Tensor,
    s: usize,
    keep: impl Fn(f32) -> bool,
    drop: impl Fn(f32) -> bool,
) -> bool {
    let r = t.dims.len();
    if r < 2 || t.dims[r - 2..] != [s, s] || t.dims[..r - 2].iter().any(|&d| d != 1) {
        return false;
    }
    t.to_f32().iter().enumerate().all(|(i, &v)| {
        let (row, col) = (i / s, i % s);
        if col <= row { keep(v) } else { drop(v) }
    })
}

/// A value that gives a softmax weight of zero in any row that keeps its diagonal.
fn masks_out(v: f32) -> bool {
    v <= -1e30
}

impl Importer<'_> {
    /// When `n` applies a causal mask to attention scores not yet masked or softmaxed
    /// (`Where(tril, scores, min)`, or `scores + mask` with 0 on and below the diagonal and
    /// min above; min at most -1e30 or -inf), those scores marked causal.
    pub(super) fn causal_scores(&self, n: &NodeProto) -> Option<Attn> {
        let val = |k: usize| n.input.get(k).and_then(|i| self.vals.get(i));
        let scores = |v: Option<&Val>| match v {
            Some(Val::Attn(a)) => match &**a {
                Attn::Scores {
                    q,
                    probs: false,
                    causal: false,
                    ..
                } => Some(((**a).clone(), q.dims[0])),
                _ => None,
            },
            _ => None,
        };
        let (a, masked) = match n.op_type.as_deref()? {
            "Where" => {
                let (a, s) = scores(val(1))?;
                let (Some(Val::Const(c)), Some(Val::Const(y))) = (val(0), val(2)) else {
                    return None;
                };
                let min_ok = y.len() == 1 && masks_out(y.to_f32()[0]);
                (
                    a,
                    min_ok && causal_pattern(c, s, |v| v != 0.0, |v| v == 0.0),
                )
            }
            "Add" => {
                let ((a, s), m) = match (val(0), val(1)) {
                    (x, Some(Val::Const(m))) => (scores(x)?, m),
                    (Some(Val::Const(m)), x) => (scores(x)?, m),
                    _ => return None,
                };
                (a, causal_pattern(m, s, |v| v == 0.0, masks_out))
            }
            _ => return None,
        };
        match (a, masked) {
            (
                Attn::Scores {
                    q,
                    k,
                    h,
                    d,
                    scale,
                    mask,
                    ..
                },
                true,
            ) => Some(Attn::Scores {
                q,
                k,
                h,
                d,
                scale,
                probs: false,
                causal: true,
                mask,
            }),
            _ => None,
        }
    }

    /// The causal mask on scores `[h, S, S]` written as general ops (an attention pattern
    /// that did not complete): `x * m + b`, as a constant-condition `Where` is.
    pub(super) fn causal_mask(&mut self, name: &str, sc: Act) -> Act {
        let s = *sc.dims.last().expect("scores");
        let (keep, min): (Vec<f32>, Vec<f32>) = (0..s * s)
            .map(|i| {
                if i % s <= i / s {
                    (1.0, 0.0)
                } else {
                    (0.0, f32::MIN)
                }
            })
            .unzip();
        let m = t_f32(&format!("{name}_keep"), vec![s, s], keep);
        let b = t_f32(&format!("{name}_min"), vec![s, s], min);
        let node = |nm: String| NodeProto {
            name: Some(nm),
            ..Default::default()
        };
        let y = self
            .const_binary(&node(format!("{name}_mask")), BinOp::Mul, sc, &m, false)
            .expect("[S, S] broadcasts over [h, S, S]");
        self.const_binary(&node(name.to_string()), BinOp::Add, y, &b, false)
            .expect("[S, S] broadcasts over [h, S, S]")
    }

    /// `Where(c, x, y)` with a constant condition and one activation branch: `x * m + b` as
    /// two broadcasting constants (see the module's note).
    pub(super) fn where_act(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let cond = match self.input_val(n, 0)? {
            Some(Val::Const(t)) => t.clone(),
            _ => {
                return Err(self.node_err(
                    n,
                    "a condition computed from the input (a padding mask from an input) is not in greenbench's IR yet; constant conditions (a causal mask) are",
                ));
            }
        };
        let (act_k, const_k) = match (self.input_val(n, 1)?, self.input_val(n, 2)?) {
            (Some(Val::Act(_)), Some(Val::Const(_))) => (1, 2),
            (Some(Val::Const(_)), Some(Val::Act(_))) => (2, 1),
            _ => {
                return Err(self.node_err(
                    n,
                    "Where of two activations is not in greenbench's IR; one branch must be a constant",
                ));
            }
        };
        let x = self.need_act(n, act_k)?;
        let other = self.need_const(n, const_k, "the constant branch")?;
        let picks_act = |c: f32| (c != 0.0) == (act_k == 1);
        let name = Self::node_name(n);
        let m = Tensor {
            name: format!("{name}_keep"),
            dims: cond.dims.clone(),
            values: Values::F32(
                cond.to_f32()
                    .iter()
                    .map(|&c| picks_act(c) as i32 as f32)
                    .collect(),
            ),
        };
        let zero = t_f32("", vec![], vec![0.0]);
        let b = if act_k == 1 {
            where_(&cond, &zero, &other, &format!("{name}_other"))
        } else {
            where_(&cond, &other, &zero, &format!("{name}_other"))
        }
        .map_err(|e| self.node_err(n, e))?;
        let mut scaled_node = n.clone();
        scaled_node.name = Some(format!("{name}_mask"));
        let y = self.const_binary(&scaled_node, BinOp::Mul, x, &m, false)?;
        let y = self.const_binary(n, BinOp::Add, y, &b, false)?;
        self.set(n, Val::Act(y));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(dims: Vec<usize>, v: Vec<i64>) -> Tensor {
        t_i64("", dims, v)
    }
    fn f(dims: Vec<usize>, v: Vec<f32>) -> Tensor {
        t_f32("", dims, v)
    }
    fn ints(t: &Tensor) -> Vec<i64> {
        t.to_i64().unwrap()
    }

    #[test]
    fn range_counts_like_onnx() {
        assert_eq!(
            ints(
                &range(
                    &i(vec![], vec![0]),
                    &i(vec![], vec![5]),
                    &i(vec![], vec![1]),
                    ""
                )
                .unwrap()
            ),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            ints(
                &range(
                    &i(vec![], vec![10]),
                    &i(vec![], vec![4]),
                    &i(vec![], vec![-3]),
                    ""
                )
                .unwrap()
            ),
            [10, 7]
        );
        let r = range(
            &f(vec![], vec![0.5]),
            &f(vec![], vec![2.0]),
            &f(vec![], vec![0.5]),
            "",
        )
        .unwrap();
        assert_eq!(r.to_f32(), [0.5, 1.0, 1.5]);
        assert!(
            range(
                &i(vec![], vec![0]),
                &i(vec![], vec![BATCH]),
                &i(vec![], vec![1]),
                ""
            )
            .is_err()
        );
        assert!(
            range(
                &i(vec![], vec![0]),
                &i(vec![], vec![3]),
                &i(vec![], vec![0]),
                ""
            )
            .is_err()
        );
    }

    #[test]
    fn comparisons_logic_and_where_broadcast() {
        let a = i(vec![3], vec![1, 2, 3]);
        let b = i(vec![], vec![2]);
        assert_eq!(ints(&compare("Less", &a, &b, "").unwrap()), [1, 0, 0]);
        assert_eq!(ints(&compare("Equal", &a, &b, "").unwrap()), [0, 1, 0]);
        assert_eq!(
            ints(&compare("GreaterOrEqual", &a, &b, "").unwrap()),
            [0, 1, 1]
        );
        let m = compare("Greater", &a, &b, "").unwrap();
        assert_eq!(ints(&not(&m, "").unwrap()), [1, 1, 0]);
        assert_eq!(
            ints(&compare("And", &m, &i(vec![3], vec![1, 1, 0]), "").unwrap()),
            [0, 0, 0]
        );
        assert_eq!(
            ints(&compare("Xor", &m, &i(vec![3], vec![1, 1, 0]), "").unwrap()),
            [1, 1, 1]
        );
        // Where broadcasts all three: a [2, 1] condition over [3] values.
        let c = i(vec![2, 1], vec![1, 0]);
        let w = where_(
            &c,
            &f(vec![3], vec![1.0, 2.0, 3.0]),
            &f(vec![], vec![f32::MIN]),
            "",
        )
        .unwrap();
        assert_eq!(w.dims, [2, 3]);
        assert_eq!(w.to_f32(), [1.0, 2.0, 3.0, f32::MIN, f32::MIN, f32::MIN]);
    }

    #[test]
    fn the_batch_is_decided_against_numbers_below_one_and_expanded_to() {
        // torch's `cls.expand(N, -1, -1)`: Where(Equal(shape, -1), 1, shape).
        let shape = i(vec![3], vec![BATCH, -1, -1]);
        let e = compare("Equal", &shape, &i(vec![], vec![-1]), "").unwrap();
        assert_eq!(ints(&e), [0, 1, 1]);
        let e = compare("Equal", &shape, &shape, "").unwrap();
        assert_eq!(ints(&e), [1, 1, 1]);
        assert!(compare("Equal", &shape, &i(vec![], vec![2]), "").is_err());
        assert!(compare("Less", &shape, &i(vec![], vec![-1]), "").is_err());
        let x = expand(&f(vec![1, 1, 2], vec![1.0, 2.0]), &[BATCH, 1, 1], "").unwrap();
        assert_eq!(x.dims, [1, 1, 2]);
        assert!(expand(&f(vec![2, 1], vec![1.0, 2.0]), &[BATCH, 3], "").is_err());
    }

    #[test]
    fn expand_and_trilu() {
        let e = expand(&i(vec![2, 1], vec![4, 5]), &[2, 3], "").unwrap();
        assert_eq!(
            (e.dims.clone(), ints(&e)),
            (vec![2, 3], vec![4, 4, 4, 5, 5, 5])
        );
        assert!(expand(&i(vec![1], vec![1]), &[BATCH, 2], "").is_err());
        let ones = i(vec![3, 3], vec![1; 9]);
        assert_eq!(
            ints(&trilu(&ones, 0, false, "").unwrap()),
            [1, 0, 0, 1, 1, 0, 1, 1, 1]
        );
        assert_eq!(
            ints(&trilu(&ones, 1, true, "").unwrap()),
            [0, 1, 1, 0, 0, 1, 0, 0, 0]
        );
        assert!(trilu(&i(vec![3], vec![1; 3]), 0, true, "").is_err());
    }
}
