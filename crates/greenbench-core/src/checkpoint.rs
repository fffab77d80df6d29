//! Checkpoints: a model's (unfolded) weights in the safetensors format, so `run`, `verify` and
//! `export` can use trained weights as well as seeded ones. Tensor `k` of node `name` is stored
//! as `name.k`; the metadata names the model.

use crate::graph::Graph;
use crate::weights::{Weights, check_weights};
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// A checkpoint that could not be read or does not fit the model. Names the file.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {message}")]
pub struct CheckpointError {
    pub path: String,
    pub message: String,
}

/// Save `w` (weights of `g`, unfolded) to `path`, atomically.
pub fn save(g: &Graph, w: &Weights, path: &Path) -> Result<(), CheckpointError> {
    let err = |message: String| CheckpointError {
        path: path.display().to_string(),
        message,
    };
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = g
        .nodes
        .iter()
        .zip(&w.per_node)
        .flat_map(|(n, ts)| {
            ts.iter().enumerate().map(move |(k, t)| {
                let b: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
                (format!("{}.{k}", n.name), b, t.shape().to_vec())
            })
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, b, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| err(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let meta = HashMap::from([
        ("greenbench_model".to_string(), g.name.clone()),
        (
            "format".to_string(),
            "greenbench unfolded weights, tensor k of node n as `n.k`".to_string(),
        ),
    ]);
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| err(e.to_string()))
}

/// Load weights for `g` from `path`, checking the model name and every shape.
pub fn load(g: &Graph, path: &Path) -> Result<Weights, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|e| CheckpointError {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    from_bytes(g, &bytes, path)
}

/// [`load`] on bytes already read (`path` names them in errors).
pub fn from_bytes(g: &Graph, bytes: &[u8], path: &Path) -> Result<Weights, CheckpointError> {
    let err = |message: String| CheckpointError {
        path: path.display().to_string(),
        message,
    };
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| err(e.to_string()))?;
    if let Some(m) = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("greenbench_model"))
        && m != &g.name
    {
        return Err(err(format!("holds weights of `{m}`, not `{}`", g.name)));
    }
    let shapes: Vec<Vec<Vec<usize>>> = (0..g.nodes.len())
        .map(|i| crate::weights::weight_shapes(g, i))
        .collect();
    let mut per_node = Vec::with_capacity(g.nodes.len());
    for (n, node_shapes) in g.nodes.iter().zip(&shapes) {
        let mut ts = Vec::new();
        for (k, want) in node_shapes.iter().enumerate() {
            let name = format!("{}.{k}", n.name);
            let v = st
                .tensor(&name)
                .map_err(|_| err(format!("no tensor `{name}`")))?;
            if v.dtype() != Dtype::F32 || v.shape() != want.as_slice() {
                return Err(err(format!(
                    "tensor `{name}` is {:?} {:?}, expected F32 {want:?}",
                    v.dtype(),
                    v.shape()
                )));
            }
            let data: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            ts.push(ArrayD::from_shape_vec(IxDyn(want), data).map_err(|e| err(e.to_string()))?);
        }
        per_node.push(ts);
    }
    let w = Weights { per_node };
    check_weights(g, &w).map_err(err)?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::generate_weights;
    use crate::zoo::zoo_model;

    #[test]
    fn round_trip_and_mismatches() {
        let dir = std::env::temp_dir().join(format!("gb-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lenet5.safetensors");
        let g = zoo_model("lenet5").unwrap();
        let w = generate_weights(&g, 4);
        save(&g, &w, &p).unwrap();
        assert_eq!(load(&g, &p).unwrap(), w);
        let other = zoo_model("mlp").unwrap();
        let e = load(&other, &p).unwrap_err().to_string();
        assert!(e.contains("lenet5") && e.contains("mlp"), "{e}");
        std::fs::write(&p, b"garbage").unwrap();
        let e = load(&g, &p).unwrap_err().to_string();
        assert!(
            e.contains("lenet5.safetensors") && e.contains("not a safetensors"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
