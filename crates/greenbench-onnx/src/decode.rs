//! Reading ONNX protobufs from untrusted files.
//!
//! Decoding goes through prost, whose allocations are bounded by the bytes present (a length
//! prefix larger than what follows is an error before anything is reserved) and whose nesting
//! depth is limited (100 levels), so a hostile file cannot overflow the stack. The sizes a
//! tensor *claims* — its dims — are checked against the data actually present (inline or in an
//! external file) before a value is converted, so a header saying "10^12 floats" over 4 bytes
//! fails with an error instead of allocating.

use crate::proto::{ModelProto, TensorProto, tensor_proto::DataType};
use prost::Message;
use std::path::{Component, Path, PathBuf};

/// The most elements one tensor may hold (4 GiB of f32): far beyond a small model, far below
/// what would exhaust memory through arithmetic overflow.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;

/// What went wrong reading an ONNX file or tensor.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{what} is not a valid ONNX protobuf ({err}); is it an ONNX file?")]
    Proto {
        what: String,
        err: prost::DecodeError,
    },
    #[error("tensor `{tensor}`: {message}")]
    Tensor { tensor: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DecodeError + '_ {
    move |err| DecodeError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Decode a ModelProto from bytes.
pub fn decode_model(bytes: &[u8], what: &str) -> Result<ModelProto, DecodeError> {
    ModelProto::decode(bytes).map_err(|err| DecodeError::Proto {
        what: what.to_string(),
        err,
    })
}

/// Decode a TensorProto from bytes (an ONNX test data file, `input_0.pb`).
pub fn decode_tensor(bytes: &[u8], what: &str) -> Result<TensorProto, DecodeError> {
    TensorProto::decode(bytes).map_err(|err| DecodeError::Proto {
        what: what.to_string(),
        err,
    })
}

/// Read and decode an `.onnx` file.
pub fn read_model(path: &Path) -> Result<ModelProto, DecodeError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    decode_model(&bytes, &path.display().to_string())
}

/// Read and decode a `.pb` tensor file.
pub fn read_tensor(path: &Path) -> Result<TensorProto, DecodeError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    decode_tensor(&bytes, &path.display().to_string())
}

/// A tensor's values: floating-point types as f32, integer types (and bool) as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A decoded tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub values: Values,
}

impl Tensor {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }
    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// The values as i64, for integer tensors (shapes, axes, token ids); floats that are not
    /// whole numbers are an error.
    pub fn to_i64(&self) -> Result<Vec<i64>, String> {
        match &self.values {
            Values::I64(v) => Ok(v.clone()),
            Values::F32(v) => v
                .iter()
                .map(|&x| {
                    if x.fract() == 0.0 && x.abs() < 9.0e15 {
                        Ok(x as i64)
                    } else {
                        Err(format!("value {x} is not a whole number"))
                    }
                })
                .collect(),
        }
    }
}

/// Bytes per element of a supported data type.
fn elem(dt: i32) -> Option<usize> {
    Some(match DataType::try_from(dt).ok()? {
        DataType::Float | DataType::Int32 => 4,
        DataType::Double | DataType::Int64 => 8,
        DataType::Float16 | DataType::Bfloat16 => 2,
        DataType::Int8 | DataType::Uint8 | DataType::Bool => 1,
        _ => return None,
    })
}

/// IEEE half to f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = m;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// The element count the dims claim, checked for negatives and overflow.
pub fn element_count(dims: &[i64]) -> Result<usize, String> {
    let mut n: usize = 1;
    for &d in dims {
        let d = usize::try_from(d).map_err(|_| format!("negative dimension {d}"))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                format!("dims {dims:?} claim more than {MAX_TENSOR_ELEMENTS} elements")
            })?;
    }
    Ok(n)
}

/// Where an external tensor lives, checked so that it cannot name a file outside the model's
/// folder.
fn external_path(t: &TensorProto, base: &Path) -> Result<(PathBuf, u64, Option<u64>), String> {
    let mut location = None;
    let mut offset = 0u64;
    let mut length = None;
    for kv in &t.external_data {
        let v = kv.value.as_deref().unwrap_or("");
        match kv.key.as_deref() {
            Some("location") => location = Some(v.to_string()),
            Some("offset") => {
                offset = v
                    .parse()
                    .map_err(|_| format!("external data offset `{v}` is not a number"))?
            }
            Some("length") => {
                length = Some(
                    v.parse()
                        .map_err(|_| format!("external data length `{v}` is not a number"))?,
                )
            }
            _ => {}
        }
    }
    let loc = location.ok_or("external data without a `location`")?;
    let rel = Path::new(&loc);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "external data location `{loc}` must be a relative path inside the model's folder"
        ));
    }
    Ok((base.join(rel), offset, length))
}

/// Read an external tensor's bytes: exactly `want` bytes at the recorded offset, checked
/// against the file's size first.
fn read_external(t: &TensorProto, base: Option<&Path>, want: usize) -> Result<Vec<u8>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let base = base.ok_or(
        "the tensor's data is in an external file, and no folder was given to find it in \
         (load the model from its file, with its data files beside it)",
    )?;
    let (path, offset, length) = external_path(t, base)?;
    if let Some(len) = length
        && len != want as u64
    {
        return Err(format!(
            "external data length {len} bytes does not match the {want} bytes its dims and type need"
        ));
    }
    let mut f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if offset.checked_add(want as u64).is_none_or(|end| end > size) {
        return Err(format!(
            "{} holds {size} bytes; the tensor needs {want} bytes at offset {offset}",
            path.display()
        ));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(buf)
}

/// Convert a TensorProto's data into values: `raw_data`, the typed fields, or external data
/// (found relative to `base`, the model's folder).
pub fn tensor_values(t: &TensorProto, base: Option<&Path>) -> Result<Tensor, DecodeError> {
    let name = t.name.clone().unwrap_or_default();
    let err = |message: String| DecodeError::Tensor {
        tensor: name.clone(),
        message,
    };
    let dt = t.data_type.unwrap_or(0);
    let size = elem(dt).ok_or_else(|| {
        err(format!(
            "data type {} is not supported (float, double, float16, int64, int32, int8, uint8, bool are)",
            DataType::try_from(dt).map_or_else(|_| dt.to_string(), |d| d.as_str_name().to_string())
        ))
    })?;
    let n = element_count(&t.dims).map_err(err)?;
    if t.segment.is_some() {
        return Err(err("segmented tensors are not supported".into()));
    }
    let external = t.data_location == Some(1);
    let raw: Option<Vec<u8>> = if external {
        Some(read_external(t, base, n * size).map_err(err)?)
    } else {
        t.raw_data.clone()
    };
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let mismatch = |have: usize| {
        err(format!(
            "dims {:?} need {n} elements, the data holds {have}",
            t.dims
        ))
    };
    let values = if let Some(raw) = raw {
        if raw.len() != n * size {
            return Err(mismatch(raw.len() / size));
        }
        let dt = DataType::try_from(dt).expect("checked by elem");
        match dt {
            DataType::Float => Values::F32(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DataType::Double => Values::F32(
                raw.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                    .collect(),
            ),
            DataType::Float16 => Values::F32(
                raw.chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes(c.try_into().unwrap())))
                    .collect(),
            ),
            DataType::Bfloat16 => Values::F32(
                raw.chunks_exact(2)
                    .map(|c| greenbench_core::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])))
                    .collect(),
            ),
            DataType::Int64 => Values::I64(
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
            ),
            DataType::Int32 => Values::I64(
                raw.chunks_exact(4)
                    .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                    .collect(),
            ),
            DataType::Int8 => Values::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
            _ => Values::I64(raw.iter().map(|&b| b as i64).collect()),
        }
    } else {
        let dt = DataType::try_from(dt).expect("checked by elem");
        let v = match dt {
            DataType::Float => Values::F32(t.float_data.clone()),
            DataType::Double => Values::F32(t.double_data.iter().map(|&x| x as f32).collect()),
            DataType::Float16 => {
                Values::F32(t.int32_data.iter().map(|&x| f16_to_f32(x as u16)).collect())
            }
            DataType::Bfloat16 => Values::F32(
                (t.int32_data.iter())
                    .map(|&x| greenbench_core::bf16::from_bits(x as u16))
                    .collect(),
            ),
            DataType::Int64 => Values::I64(t.int64_data.clone()),
            _ => Values::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
        };
        let have = match &v {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        };
        if have != n {
            return Err(mismatch(have));
        }
        v
    };
    Ok(Tensor { name, dims, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::StringStringEntryProto;

    fn t(dims: &[i64], dt: DataType) -> TensorProto {
        TensorProto {
            name: Some("t".into()),
            dims: dims.to_vec(),
            data_type: Some(dt as i32),
            ..Default::default()
        }
    }

    #[test]
    fn raw_typed_and_half_data_read() {
        let mut a = t(&[2], DataType::Float);
        a.raw_data = Some(
            [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert_eq!(tensor_values(&a, None).unwrap().to_f32(), vec![1.5, -2.0]);
        let mut b = t(&[1, 2], DataType::Float);
        b.float_data = vec![3.0, 4.0];
        assert_eq!(tensor_values(&b, None).unwrap().dims, vec![1, 2]);
        let mut c = t(&[2], DataType::Int64);
        c.int64_data = vec![-1, 7];
        assert_eq!(
            tensor_values(&c, None).unwrap().to_i64().unwrap(),
            vec![-1, 7]
        );
        let mut h = t(&[3], DataType::Float16);
        h.int32_data = vec![0x3c00, 0xc000, 0x0001];
        let v = tensor_values(&h, None).unwrap().to_f32();
        assert_eq!(&v[..2], &[1.0, -2.0]);
        assert_eq!(v[2], 2f32.powi(-24));
    }

    #[test]
    fn claimed_sizes_are_checked_before_allocating() {
        let mut a = t(&[1 << 20, 1 << 20], DataType::Float);
        a.raw_data = Some(vec![0; 4]);
        let e = tensor_values(&a, None).unwrap_err().to_string();
        assert!(e.contains("claim more than"), "{e}");
        let mut b = t(&[3], DataType::Float);
        b.raw_data = Some(vec![0; 8]);
        let e = tensor_values(&b, None).unwrap_err().to_string();
        assert!(e.contains("need 3 elements, the data holds 2"), "{e}");
        let c = t(&[-1], DataType::Float);
        assert!(tensor_values(&c, None).is_err());
        let d = t(&[1], DataType::String);
        let e = tensor_values(&d, None).unwrap_err().to_string();
        assert!(e.contains("STRING"), "{e}");
    }

    #[test]
    fn external_data_is_read_and_confined_to_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = [0f32, 1.0, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("w.bin"), &bytes).unwrap();
        let kv = |k: &str, v: &str| StringStringEntryProto {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        let mut a = t(&[2], DataType::Float);
        a.data_location = Some(1);
        a.external_data = vec![kv("location", "w.bin"), kv("offset", "8")];
        let v = tensor_values(&a, Some(dir.path())).unwrap();
        assert_eq!(v.to_f32(), vec![2.0, 3.0]);
        // Past the end of the file.
        a.external_data[1] = kv("offset", "12");
        let e = tensor_values(&a, Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("holds 16 bytes"), "{e}");
        // Outside the folder.
        a.external_data = vec![kv("location", "../w.bin")];
        let e = tensor_values(&a, Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("inside the model's folder"), "{e}");
        // No folder to look in.
        a.external_data = vec![kv("location", "w.bin")];
        assert!(tensor_values(&a, None).is_err());
    }

    #[test]
    fn garbage_and_deep_nesting_are_errors() {
        assert!(decode_model(&[0xff, 0xff, 0xff], "x").is_err());
        // A length prefix far past the end of the buffer.
        assert!(decode_model(&[0x3a, 0xff, 0xff, 0xff, 0x7f], "x").is_err());
        // GraphProto (7) -> NodeProto (1) -> AttributeProto (5) -> GraphProto (6) -> ...
        // nested 200 deep: prost's recursion limit refuses it.
        let mut inner: Vec<u8> = vec![];
        for _ in 0..200 {
            let mut attr = vec![0x32];
            push_len(&mut attr, &inner);
            let mut node = vec![0x2a];
            push_len(&mut node, &attr);
            let mut g = vec![0x0a];
            push_len(&mut g, &node);
            inner = g;
        }
        let mut model = vec![0x3a];
        push_len(&mut model, &inner);
        assert!(decode_model(&model, "deep").is_err());
    }

    fn push_len(out: &mut Vec<u8>, body: &[u8]) {
        let mut n = body.len() as u64;
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out.extend_from_slice(body);
    }
}
