//! Shape arithmetic and constant tensors: axes, strides, broadcasting, reshape resolution,
//! and the tensor operations constant folding evaluates (concat, gather, slice, transpose,
//! elementwise), each bounded by the fold limit.

use crate::decode::{Tensor, Values};
use greenbench_core::graph::Padding;

/// The batch entry of a folded shape tensor (`Shape` of an activation): any arithmetic on it
/// is a dynamic shape the importer refuses.
pub(super) const BATCH: i64 = i64::MIN + 7;

thread_local! {
    /// The fold limit of the import running on this thread ([`super::import_model_limited`]).
    pub(super) static FOLD_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(MAX_FOLDED_ELEMENTS) };
}

/// The most elements a constant computed at import time may hold by default (512 MiB of
/// f32; VGG-19's largest weight, made by `ConstantOfShape` in the onnx package's test models,
/// has 103 M): a file cannot make the importer allocate gigabytes by asking for a huge
/// `ConstantOfShape` or broadcast. [`import_model_limited`] sets another bound.
pub const MAX_FOLDED_ELEMENTS: usize = 1 << 27;

/// The most elements one example of the model's input may hold.
pub const MAX_INPUT_ELEMENTS: usize = 1 << 28;

pub(super) fn cap(count: usize) -> Result<usize, String> {
    let limit = FOLD_LIMIT.with(|l| l.get());
    if count > limit {
        Err(format!(
            "a constant of {count} elements is more than the {limit} greenbench folds at import"
        ))
    } else {
        Ok(count)
    }
}

pub(super) fn t_f32(name: &str, dims: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor {
        name: name.into(),
        dims,
        values: Values::F32(v),
    }
}

pub(super) fn t_i64(name: &str, dims: Vec<usize>, v: Vec<i64>) -> Tensor {
    Tensor {
        name: name.into(),
        dims,
        values: Values::I64(v),
    }
}

/// Normalise an axis against a rank.
pub(super) fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("axis {a} is outside a rank-{rank} tensor"))
    }
}

/// Per-example dims -> the full ONNX dims (batch first) and back.
pub(super) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// numpy broadcasting of two shapes.
pub(super) fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

/// Index into `src` (shape `dims`) for output position `pos` of broadcast shape `out`.
pub(super) fn bcast_index(out: &[usize], dims: &[usize], mut flat: usize) -> usize {
    let st = strides(dims);
    let mut idx = 0;
    let off = out.len() - dims.len();
    for i in (0..out.len()).rev() {
        let coord = flat % out[i];
        flat /= out[i];
        if i >= off {
            let d = dims[i - off];
            if d != 1 {
                idx += coord * st[i - off];
            }
        }
    }
    idx
}

pub(super) fn i64_values(t: &Tensor) -> Result<Vec<i64>, String> {
    t.to_i64()
}

/// `[top, left, bottom, right]` as the IR's padding: none is `Valid`, anything else
/// `Explicit` (TensorFlow's "same" comes back as the explicit pads it resolves to).
pub(super) fn canonical_padding(p: [usize; 4]) -> Padding {
    if p == [0; 4] {
        Padding::Valid
    } else {
        Padding::explicit(p[0], p[2], p[1], p[3])
    }
}

pub(super) fn fmt_i64s(v: &[i64]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|&d| {
            if d == BATCH {
                "N".into()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

pub(super) fn transpose2(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

/// ONNX Reshape's target resolution (0 copies, -1 infers).
pub(super) fn resolve_reshape(
    dims: &[usize],
    shape: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (i, &s) in shape.iter().enumerate() {
        match s {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*dims.get(i).ok_or_else(|| {
                format!("shape entry {i} copies a dimension that does not exist")
            })?),
            s if s >= 0 => out.push(s as usize),
            _ => return Err(format!("reshape target {} is not valid", fmt_i64s(shape))),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!("cannot reshape {dims:?} to {}", fmt_i64s(shape)));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!(
            "cannot reshape {dims:?} ({total} elements) to {}",
            fmt_i64s(shape)
        ));
    }
    Ok(out)
}

pub(super) fn concat(ts: &[Tensor], a: usize, name: &str) -> Result<Tensor, String> {
    let r = ts.first().ok_or("Concat of nothing")?.dims.len();
    if a >= r {
        return Err(format!("Concat along axis {a} of rank-{r} tensors"));
    }
    let is_f = matches!(ts[0].values, Values::F32(_));
    for t in ts {
        if t.dims.len() != r || (0..r).any(|i| i != a && t.dims[i] != ts[0].dims[i]) {
            return Err("Concat of shapes that differ off the axis".into());
        }
    }
    let outer: usize = ts[0].dims[..a].iter().product();
    let mut dims = ts[0].dims.clone();
    dims[a] = ts.iter().map(|t| t.dims[a]).sum();
    let mut f = vec![];
    let mut iv = vec![];
    for o in 0..outer {
        for t in ts {
            let inner: usize = t.dims[a..].iter().product();
            if is_f {
                f.extend_from_slice(&t.to_f32()[o * inner..(o + 1) * inner]);
            } else {
                iv.extend_from_slice(&t.to_i64()?[o * inner..(o + 1) * inner]);
            }
        }
    }
    Ok(if is_f {
        t_f32(name, dims, f)
    } else {
        t_i64(name, dims, iv)
    })
}

pub(super) fn gather(
    x: &Tensor,
    idx: &[i64],
    idx_dims: &[usize],
    a: usize,
    name: &str,
) -> Result<Tensor, String> {
    if x.dims.is_empty() {
        return Err("Gather from a scalar".into());
    }
    let n = x.dims[a] as i64;
    let outer: usize = x.dims[..a].iter().product();
    let inner: usize = x.dims[a + 1..].iter().product();
    outer
        .checked_mul(idx.len())
        .and_then(|v| v.checked_mul(inner))
        .ok_or("the gathered constant overflows")
        .map_err(String::from)
        .and_then(cap)?;
    let mut dims: Vec<usize> = x.dims[..a].to_vec();
    dims.extend_from_slice(idx_dims);
    dims.extend_from_slice(&x.dims[a + 1..]);
    let pick = |i: i64| -> Result<usize, String> {
        let j = if i < 0 { i + n } else { i };
        if (0..n).contains(&j) {
            Ok(j as usize)
        } else {
            Err(format!("index {i} is outside 0..{n}"))
        }
    };
    let mut fi = vec![];
    let mut ii = vec![];
    let xf = x.to_f32();
    let xi = match &x.values {
        Values::I64(v) => Some(v),
        _ => None,
    };
    for o in 0..outer {
        for &i in idx {
            let j = pick(i)?;
            let s = (o * x.dims[a] + j) * inner;
            match xi {
                Some(v) => ii.extend_from_slice(&v[s..s + inner]),
                None => fi.extend_from_slice(&xf[s..s + inner]),
            }
        }
    }
    Ok(match xi {
        Some(_) => t_i64(name, dims, ii),
        None => t_f32(name, dims, fi),
    })
}

pub(super) fn slice(
    x: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
    name: &str,
) -> Result<Tensor, String> {
    let r = x.dims.len();
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&v| axis(v, r)).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    if starts.len() != axes.len() || ends.len() != axes.len() {
        return Err("Slice's starts, ends and axes differ in length".into());
    }
    let mut lo = vec![0usize; r];
    let mut hi = x.dims.clone();
    for (k, &ax) in axes.iter().enumerate() {
        if steps
            .as_ref()
            .is_some_and(|s| s.get(k).copied().unwrap_or(1) != 1)
        {
            return Err("Slice with a step other than 1 is not supported".into());
        }
        let d = x.dims[ax] as i64;
        let clampi = |v: i64| -> usize { (if v < 0 { v + d } else { v }).clamp(0, d) as usize };
        lo[ax] = clampi(starts[k]);
        hi[ax] = clampi(ends[k]).max(lo[ax]);
    }
    let dims: Vec<usize> = (0..r).map(|i| hi[i] - lo[i]).collect();
    let count: usize = dims.iter().product();
    let st = strides(&x.dims);
    let ost = strides(&dims);
    let xf = x.to_f32();
    let xi = match &x.values {
        Values::I64(v) => Some(v.clone()),
        _ => None,
    };
    let mut fo = Vec::with_capacity(count);
    let mut io = Vec::with_capacity(count);
    for flat in 0..count {
        let mut src = 0;
        for i in 0..r {
            let c = (flat / ost[i]) % dims[i].max(1);
            src += (c + lo[i]) * st[i];
        }
        match &xi {
            Some(v) => io.push(v[src]),
            None => fo.push(xf[src]),
        }
    }
    Ok(match xi {
        Some(_) => t_i64(name, dims, io),
        None => t_f32(name, dims, fo),
    })
}

pub(super) fn transpose(x: &Tensor, perm: &[usize], name: &str) -> Result<Tensor, String> {
    let r = x.dims.len();
    if perm.len() != r {
        return Err(format!("perm {perm:?} does not fit rank {r}"));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
    let st = strides(&x.dims);
    let ost = strides(&dims);
    let count: usize = dims.iter().product();
    let xf = x.to_f32();
    let mut out = vec![0f32; count];
    for (flat, o) in out.iter_mut().enumerate() {
        let mut src = 0;
        for i in 0..r {
            let c = (flat / ost[i]) % dims[i].max(1);
            src += c * st[perm[i]];
        }
        *o = xf[src];
    }
    if matches!(x.values, Values::I64(_)) {
        return Ok(t_i64(name, dims, out.iter().map(|&v| v as i64).collect()));
    }
    Ok(t_f32(name, dims, out))
}

pub(super) fn binary(op: &str, a: &Tensor, b: &Tensor, name: &str) -> Result<Tensor, String> {
    let dims = broadcast_shape(&a.dims, &b.dims)?;
    let count = cap(dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or("the broadcast shape overflows")?)?;
    if let (Values::I64(x), Values::I64(y)) = (&a.values, &b.values) {
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let (p, q) = (
                x[bcast_index(&dims, &a.dims, i)],
                y[bcast_index(&dims, &b.dims, i)],
            );
            if p == BATCH || q == BATCH {
                return Err(
                    "arithmetic on the dynamic batch size: the shape cannot be made static".into(),
                );
            }
            out.push(match op {
                "Add" | "Sum" => p.wrapping_add(q),
                "Sub" => p.wrapping_sub(q),
                "Mul" => p.wrapping_mul(q),
                _ => {
                    if q == 0 {
                        return Err("integer division by zero".into());
                    }
                    p.wrapping_div(q)
                }
            });
        }
        return Ok(t_i64(name, dims, out));
    }
    let (x, y) = (a.to_f32(), b.to_f32());
    let out = (0..count)
        .map(|i| {
            let (p, q) = (
                x[bcast_index(&dims, &a.dims, i)],
                y[bcast_index(&dims, &b.dims, i)],
            );
            match op {
                "Add" | "Sum" => p + q,
                "Sub" => p - q,
                "Mul" => p * q,
                _ => p / q,
            }
        })
        .collect();
    Ok(t_f32(name, dims, out))
}
