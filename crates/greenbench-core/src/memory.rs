//! What a model needs in memory, from the IR's shapes alone, before anything is allocated: a
//! model description that asks for terabytes gets an error naming the node and the bytes, not
//! an out-of-memory kill or an allocation abort halfway through a run.

use crate::graph::Graph;
use crate::host::bytes;

/// Memory a model needs at a batch size, in bytes (f32 everywhere).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryNeed {
    pub weights: u64,
    /// Every value's activations at the batch (input and each node's output), as a plain
    /// executor holding all of them would.
    pub activations: u64,
    /// The largest single activation: its node (`input` for the input) and bytes.
    pub largest: (String, u64),
}

/// Shapes multiplied out, saturating (a description can claim more than u64 holds).
fn elements(shape: &[usize]) -> u64 {
    shape.iter().fold(1u64, |n, d| n.saturating_mul(*d as u64))
}

/// The memory `g` needs at `batch`.
pub fn memory_need(g: &Graph, batch: usize) -> MemoryNeed {
    let f32s = |n: u64| n.saturating_mul(4);
    let per = |v: usize| f32s(elements(g.value_shape(v)).saturating_mul(batch as u64));
    let mut largest = ("input".to_string(), per(0));
    let mut activations = per(0);
    for (i, node) in g.nodes.iter().enumerate() {
        let b = per(i + 1);
        activations = activations.saturating_add(b);
        if b > largest.1 {
            largest = (node.name.clone(), b);
        }
    }
    let weights = f32s(crate::cost::graph_cost(g).total.params);
    MemoryNeed {
        weights,
        activations,
        largest,
    }
}

/// An error when `g` at `batch` cannot fit in `available` bytes (when known), naming what
/// needs the memory. Weights and the largest activation must fit with room to spare; the
/// whole set of activations is what a plain executor would hold.
pub fn check_fits(g: &Graph, batch: usize, available: Option<u64>) -> Result<MemoryNeed, String> {
    let need = memory_need(g, batch);
    let Some(avail) = available else {
        return Ok(need);
    };
    let total = need.weights.saturating_add(need.activations);
    if total > avail {
        let (node, b) = &need.largest;
        return Err(format!(
            "`{}` at batch {batch} needs {} ({} of weights, {} of activations; node `{node}`'s output alone is {}), more than the {} this machine has available. Use a smaller batch or model",
            g.name,
            bytes(total),
            bytes(need.weights),
            bytes(need.activations),
            bytes(*b),
            bytes(avail)
        ));
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{InputSpec, Node, Op, Padding};

    fn huge() -> Graph {
        Graph::new(
            "huge",
            InputSpec {
                shape: vec![4096, 4096, 64],
                token_vocab: None,
                parts: vec![],
            },
            vec![Node::new(
                "wide",
                Op::conv(65_536, [3, 3], [1, 1], Padding::Same),
            )],
        )
        .unwrap()
    }

    #[test]
    fn a_model_too_big_is_named_before_anything_is_allocated() {
        let need = memory_need(&huge(), 1);
        assert_eq!(need.largest.0, "wide");
        assert_eq!(need.largest.1, 4096 * 4096 * 65_536 * 4);
        let e = check_fits(&huge(), 1, Some(24 << 30)).unwrap_err();
        assert!(
            e.contains("node `wide`") && e.contains("4.0 TiB") && e.contains("24.0 GiB"),
            "{e}"
        );
        let small = crate::zoo::zoo_model("mlp").unwrap();
        assert!(check_fits(&small, 32, Some(24 << 30)).is_ok());
        assert!(
            check_fits(&huge(), 1, None).is_ok(),
            "unknown memory: no verdict"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
