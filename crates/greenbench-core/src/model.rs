//! A model ready to hand to a backend: the folded graph, its seeded weights, its counts.

use crate::cost::{GraphCost, graph_cost};
use crate::fold::fold_batch_norm;
use crate::graph::Graph;
use crate::weights::{Weights, generate_weights};
use crate::zoo::{ModelError, load_model};

/// A loaded, batch-norm-folded model with deterministic weights.
#[derive(Clone, Debug)]
pub struct Model {
    /// Zoo name or the user's graph name.
    pub name: String,
    /// The folded graph every backend runs.
    pub graph: Graph,
    pub weights: Weights,
    /// Seeds the inputs a run generates, and the weights unless `weights_source` says where
    /// they came from instead.
    pub seed: u64,
    /// Where the weights came from when not generated from `seed`: a checkpoint, an ONNX
    /// file's initializers.
    pub weights_source: Option<String>,
    /// Per-example counts of the folded graph.
    pub cost: GraphCost,
    /// The symbolic dimensions of an imported model and the sizes they were bound to
    /// (`--dim sequence=128`); empty for models without any.
    pub dims: std::collections::BTreeMap<String, usize>,
    /// Real examples a run times instead of generated ones (`run --inputs DIR`).
    pub inputs: Option<Examples>,
}

/// Examples read from files (packed per example as the graph takes them), cycled to fill
/// each batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Examples {
    /// Where they came from, as result files record it.
    pub source: String,
    pub count: usize,
    /// `count` examples, batch-major.
    pub values: Vec<f32>,
}

impl Examples {
    /// Batch `set` of `batch` examples: examples `set * batch ..`, cycled.
    pub fn batch(&self, batch: usize, set: usize) -> Vec<f32> {
        let per = self.values.len() / self.count.max(1);
        (0..batch)
            .flat_map(|j| {
                let e = (set * batch + j) % self.count.max(1);
                self.values[e * per..(e + 1) * per].iter().copied()
            })
            .collect()
    }
}

impl Model {
    /// Load a zoo model by name (or a `.json` description), generate weights from `seed`,
    /// fold batch norm.
    pub fn load(name_or_path: &str, seed: u64) -> Result<Model, ModelError> {
        Self::load_with(name_or_path, seed, None)
    }

    /// [`Self::load`], with the weights from a safetensors checkpoint (`greenbench train
    /// --save`) instead of the seed's when `checkpoint` is given.
    pub fn load_with(
        name_or_path: &str,
        seed: u64,
        checkpoint: Option<&std::path::Path>,
    ) -> Result<Model, ModelError> {
        let g = load_model(name_or_path)?;
        let need = crate::memory::memory_need(&g, 1);
        if let Some(avail) = crate::host::available_memory_bytes()
            && need.weights > avail
        {
            return Err(ModelError::TooLarge(format!(
                "`{}` has {} of weights, more than the {} this machine has available",
                g.name,
                crate::host::bytes(need.weights),
                crate::host::bytes(avail)
            )));
        }
        let w = match checkpoint {
            Some(p) => crate::checkpoint::load(&g, p).map_err(ModelError::Checkpoint)?,
            None => generate_weights(&g, seed),
        };
        let mut m = Self::from_parts(&g, &w, seed)?;
        m.weights_source = checkpoint.map(|p| format!("checkpoint {}", p.display()));
        Ok(m)
    }

    /// Tokens per example, for models with a sequence: the token ids a token-input model
    /// reads, else the size bound to a symbolic dimension whose name says sequence (`seq...`).
    /// Per-token figures divide by it.
    pub fn tokens_per_example(&self) -> Option<u64> {
        if self.graph.input.token_vocab.is_some() {
            return Some(self.graph.input.shape.iter().product::<usize>() as u64);
        }
        if let Some(p) =
            (self.graph.input.parts.iter()).find(|p| p.role == crate::graph::InputRole::TokenIds)
        {
            return Some(p.len() as u64);
        }
        (self.dims.iter())
            .find(|(k, _)| k.to_ascii_lowercase().contains("seq"))
            .map(|(_, &v)| v as u64)
    }

    /// A model from a graph and its own weights (an imported file's): batch norm folded,
    /// work counted. `seed` still seeds the inputs a run generates.
    pub fn from_parts(g: &Graph, w: &Weights, seed: u64) -> Result<Model, ModelError> {
        let (graph, weights) = fold_batch_norm(g, w).map_err(|e| ModelError::Invalid {
            name: g.name.clone(),
            source: Box::new(e),
        })?;
        let cost = graph_cost(&graph);
        Ok(Model {
            name: graph.name.clone(),
            graph,
            weights,
            seed,
            weights_source: None,
            cost,
            dims: Default::default(),
            inputs: None,
        })
    }
}
