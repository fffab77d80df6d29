//! The file and graph walk: the model's opset, every operator that cannot be imported (all
//! at once), the inputs and initializers, then each node in order through constant folding,
//! the patterns, and the op table (op name -> import function, one per op family).

use super::array;
use super::boundary::{Imported, Io, IoTensor, Layout};
use super::contrib;
use super::dims::{DimSweep, Dims, Symbolic, bound_name};
use super::error::ImportError;
use super::fold;
use super::fuse;
use super::graph_io::{GraphInput, graph_input, io_tensors};
use super::math;
use super::matmul;
use super::nn;
use super::shape::{FOLD_LIMIT, MAX_FOLDED_ELEMENTS};
use super::values::{Act, ImportFn, Importer, Val};
use crate::decode::{self};
use crate::proto::{GraphProto, ModelProto, NodeProto, ValueInfoProto};
use greenbench_core::graph::{DType, Graph, InputSpec};
use greenbench_core::weights::Weights;
use greenbench_core::{Model, ModelError};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The op tables of the families, in lookup order. An op is imported by the one function its
/// name maps to; adding an op is a function in its family's file and a line in its table.
const FAMILIES: &[&[(&str, ImportFn)]] =
    &[fold::FOLDED, nn::OPS, math::OPS, array::OPS, matmul::OPS];

/// Operators the importer understands, sorted (some only in the forms the IR can run; those
/// say why when a form is not supported): every name in [`fold::CONSTANTS`] and the families'
/// tables.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<&'static str> = fold::CONSTANTS
        .iter()
        .chain(FAMILIES.iter().flat_map(|t| t.iter()))
        .map(|(name, _)| *name)
        .collect();
    ops.sort_unstable();
    ops.dedup();
    ops
}

fn lookup(table: &[(&str, ImportFn)], op: &str) -> Option<ImportFn> {
    table.iter().find(|(name, _)| *name == op).map(|(_, f)| *f)
}

/// The name an imported model goes by: the file stem, or the folder's name when the file is
/// `model.onnx` (the ONNX model zoo's layout: `mobilenetv2/model.onnx` is `mobilenetv2`).
pub fn model_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    if stem == "model"
        && let Some(dir) = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().and_then(|d| d.file_name()).map(|d| d.to_owned()))
    {
        return dir.to_string_lossy().to_string();
    }
    stem
}

/// Import an `.onnx` file (external data found beside it).
pub fn import_file(path: &Path, seed: u64) -> Result<Imported, ImportError> {
    import_file_with(path, seed, &Dims::new())
}

/// The folder a file's external data is read from.
fn base_of(path: &Path) -> Option<&Path> {
    path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    })
}

/// [`import_file`] with its symbolic dimensions bound to `dims` (the model is named
/// `stem[name=size,...]`).
pub fn import_file_with(path: &Path, seed: u64, dims: &Dims) -> Result<Imported, ImportError> {
    let m = decode::read_model(path)?;
    import_decoded(&m, path, seed, dims)
}

fn import_decoded(
    m: &ModelProto,
    path: &Path,
    seed: u64,
    dims: &Dims,
) -> Result<Imported, ImportError> {
    let mut imp = import_model_with(
        m,
        &bound_name(&model_name(path), dims),
        &path.display().to_string(),
        base_of(path),
        seed,
        dims,
    )?;
    imp.path = path.to_path_buf();
    Ok(imp)
}

/// Import `path` once per binding of `sweep` that applies to it (its symbolic dimensions;
/// a file without any is imported once). The file is decoded once.
pub fn import_file_swept(
    path: &Path,
    seed: u64,
    sweep: &DimSweep,
) -> Result<Vec<Imported>, ImportError> {
    let m = decode::read_model(path)?;
    let sym = m.graph.as_ref().map(Symbolic::of).unwrap_or_default();
    sym.check(sweep).map_err(|message| ImportError::Model {
        file: path.display().to_string(),
        message,
    })?;
    sweep
        .bindings(&sym.names())
        .iter()
        .map(|d| import_decoded(&m, path, seed, d))
        .collect()
}

/// Why a model named on the command line did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Import(#[from] Box<ImportError>),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}: an ONNX file carries its own weights; --weights applies to zoo and JSON models")]
    WeightsForOnnx(String),
}

/// Load a model by zoo name, `.json` description or `.onnx` file (whose symbolic
/// dimensions, if any, must be bound: [`load_models_swept`]).
pub fn load_model(
    name_or_path: &str,
    seed: u64,
    checkpoint: Option<&Path>,
) -> Result<Model, LoadError> {
    let mut v = load_models_swept(name_or_path, seed, checkpoint, &DimSweep::default())?;
    Ok(v.remove(0))
}

/// Load a model by zoo name, `.json` description or `.onnx` file: one model, or for a file
/// with symbolic dimensions one per binding of `sweep` (each recording its `dims`).
pub fn load_models_swept(
    name_or_path: &str,
    seed: u64,
    checkpoint: Option<&Path>,
    sweep: &DimSweep,
) -> Result<Vec<Model>, LoadError> {
    if name_or_path.to_ascii_lowercase().ends_with(".onnx") {
        if checkpoint.is_some() {
            return Err(LoadError::WeightsForOnnx(name_or_path.to_string()));
        }
        return import_file_swept(Path::new(name_or_path), seed, sweep)
            .map(|v| v.into_iter().map(|i| i.model).collect())
            .map_err(|e| LoadError::Import(Box::new(e)));
    }
    Ok(vec![Model::load_with(name_or_path, seed, checkpoint)?])
}

impl Importer<'_> {
    fn import_node(&mut self, n: &NodeProto) -> Result<(), ImportError> {
        let op = n.op_type.as_deref().unwrap_or("");
        // Constants, shapes and pass-throughs, whatever their inputs are.
        if let Some(f) = lookup(fold::CONSTANTS, op) {
            return f(self, n);
        }
        // Constant folding: an op whose inputs are all constants.
        let all_const = !n.input.is_empty()
            && n.input
                .iter()
                .filter(|i| !i.is_empty())
                .all(|i| matches!(self.vals.get(i), Some(Val::Const(_))));
        if all_const {
            let t = self.fold(n).map_err(|m| self.node_err(n, m))?;
            self.set(n, Val::Const(t));
            return Ok(());
        }
        if let Some(v) = self.try_expr(n)? {
            if let Some(out) = n.output.first() {
                self.expr_node.insert(out.clone(), Self::node_name(n));
            }
            self.set(n, v);
            return Ok(());
        }
        // Lazy expressions become IR values before the other patterns look at their inputs.
        self.materialize_exprs(n)?;
        if let Some(v) = self.try_shuffle(n)? {
            self.set_lazy(n, v);
            return Ok(());
        }
        if let Some(v) = self.try_attention(n)? {
            self.set_lazy(n, v);
            return Ok(());
        }
        self.materialize_inputs(n)?;
        if n.domain.as_deref() == Some("com.microsoft") {
            let f = lookup(contrib::CONTRIB, op).expect("checked before the walk");
            return f(self, n);
        }
        match FAMILIES.iter().find_map(|t| lookup(t, op)) {
            Some(f) => f(self, n),
            None => Err(self.node_err(n, format!("operator {op} is not supported"))),
        }
    }
}

/// Import a decoded model. `base` is the folder external data is read from.
pub fn import_model(
    m: &ModelProto,
    name: &str,
    file: &str,
    base: Option<&Path>,
    seed: u64,
) -> Result<Imported, ImportError> {
    import_model_with(m, name, file, base, seed, &Dims::new())
}

/// [`import_model`] with the symbolic dimensions of its inputs bound to `dims`.
pub fn import_model_with(
    m: &ModelProto,
    name: &str,
    file: &str,
    base: Option<&Path>,
    seed: u64,
    dims: &Dims,
) -> Result<Imported, ImportError> {
    let before = FOLD_LIMIT.with(|l| l.replace(MAX_FOLDED_ELEMENTS));
    let r = import_inner(m, name, file, base, seed, dims);
    FOLD_LIMIT.with(|l| l.set(before));
    r
}

/// [`import_model`] with another bound on the elements of a constant folded at import (the
/// fuzz target keeps it far below its memory limit).
pub fn import_model_limited(
    m: &ModelProto,
    name: &str,
    file: &str,
    base: Option<&Path>,
    seed: u64,
    max_folded_elements: usize,
) -> Result<Imported, ImportError> {
    let before = FOLD_LIMIT.with(|l| l.replace(max_folded_elements));
    let r = import_inner(m, name, file, base, seed, &Dims::new());
    FOLD_LIMIT.with(|l| l.set(before));
    r
}

fn import_inner(
    m: &ModelProto,
    name: &str,
    file: &str,
    base: Option<&Path>,
    seed: u64,
    bound: &Dims,
) -> Result<Imported, ImportError> {
    let merr = |message: String| ImportError::Model {
        file: file.to_string(),
        message,
    };
    let opset = m
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(1);
    if opset < 7 {
        return Err(merr(format!(
            "opset {opset} is older than 7, the oldest greenbench imports"
        )));
    }
    let g: &GraphProto = m
        .graph
        .as_ref()
        .ok_or_else(|| merr("the file has no graph".into()))?;

    // Every symbolic dimension but the batch bound, or each unbound one named.
    let given = DimSweep(bound.iter().map(|(k, &v)| (k.clone(), vec![v])).collect());
    Symbolic::of(g).check(&given).map_err(merr)?;

    // Multi-node spellings of one operator (the decomposed LayerNorm) become that operator.
    let nodes = fuse::rewrite(g, base);

    // Every operator that cannot be imported, all at once.
    let supported = supported_ops();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &nodes {
        let op = n.op_type.clone().unwrap_or_default();
        let domain = n.domain.as_deref().unwrap_or("");
        let known = match domain {
            "" | "ai.onnx" => supported.contains(&op.as_str()),
            "com.microsoft" => lookup(contrib::CONTRIB, &op).is_some(),
            _ => false,
        };
        if !known {
            let label = if matches!(domain, "" | "ai.onnx") {
                op
            } else {
                format!("{domain}.{op}")
            };
            missing
                .entry(label)
                .or_default()
                .push(n.name.clone().unwrap_or_default());
        }
    }
    if !missing.is_empty() {
        let count: usize = missing.values().map(|v| v.len()).sum();
        let list = missing
            .iter()
            .map(|(op, nodes)| {
                let shown: Vec<String> = nodes.iter().take(3).map(|n| format!("\"{n}\"")).collect();
                let more = if nodes.len() > 3 {
                    format!(", … {} in all", nodes.len())
                } else {
                    String::new()
                };
                let noun = if nodes.len() == 1 { "node" } else { "nodes" };
                format!("{op} ({noun} {}{more})", shown.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let list = if missing.keys().any(|k| k.starts_with("com.microsoft.")) {
            format!(
                "{list} (com.microsoft is ONNX Runtime's own domain, written by Optimum's and onnxruntime's transformer optimisers; greenbench imports its {}: export without optimisation, e.g. `optimum-cli export onnx` without `--optimize`, or with torch.onnx)",
                contrib::CONTRIB
                    .iter()
                    .map(|(op, _)| *op)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            list
        };
        return Err(ImportError::Unsupported {
            file: file.to_string(),
            count,
            list,
            supported: supported.join(", "),
        });
    }

    let mut imp = Importer {
        file: file.to_string(),
        opset,
        base,
        vals: HashMap::new(),
        nodes: vec![],
        weights: vec![],
        index: HashMap::new(),
        names: HashMap::new(),
        readers: HashMap::new(),
        vocabs: HashMap::new(),
        integral: Default::default(),
        masks: Default::default(),
        fixed_batch: None,
        expr_node: HashMap::new(),
        converted: HashMap::new(),
    };
    imp.names.insert("input".into(), 1);
    for init in &g.initializer {
        let t = decode::tensor_values(init, base)?;
        imp.vals
            .insert(init.name.clone().unwrap_or_default(), Val::Const(t));
    }
    for n in &nodes {
        for i in &n.input {
            *imp.readers.entry(i.clone()).or_insert(0) += 1;
        }
    }
    for o in &g.output {
        *imp.readers
            .entry(o.name.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }

    // The model's inputs: graph inputs without an initializer (IR version 3 lists both).
    let declared: Vec<&ValueInfoProto> = g
        .input
        .iter()
        .filter(|v| !imp.vals.contains_key(v.name.as_deref().unwrap_or("")))
        .collect();
    if declared.is_empty() {
        return Err(merr("the graph declares no input".into()));
    }
    let ins: Vec<GraphInput> = declared
        .iter()
        .map(|v| graph_input(v, bound))
        .collect::<Result<_, _>>()
        .map_err(merr)?;
    let fixed_batch = ins[0].fixed_batch;
    if let Some(other) = ins.iter().find(|i| i.fixed_batch != fixed_batch) {
        return Err(merr(format!(
            "inputs `{}` and `{}` disagree on the batch dimension: both symbolic, or both 1",
            ins[0].name, other.name
        )));
    }
    imp.fixed_batch = fixed_batch;
    let in_name = ins[0].name.clone();
    let per = ins[0].per.clone();
    let input_int = ins[0].dtype != DType::F32;
    let several = ins.len() > 1;
    let (ir_shape, in_layout) = if several {
        imp.named_inputs(&ins);
        (vec![], Layout::Plain)
    } else if per.len() == 3 && !input_int {
        let (c, h, w) = (per[0], per[1], per[2]);
        // A 3-D per-example input is NCHW if a Conv/pool reads it directly, else NHWC-as-is.
        let nchw = reads_as_image(g, &in_name);
        if nchw {
            (vec![h, w, c], Layout::Chw { c, h, w })
        } else {
            (per.clone(), Layout::Plain)
        }
    } else if per.len() == 2 && !input_int && reads_as_image(g, &in_name) {
        // [N, C, L] read by a 1-D convolution: held as the IR's [1, L, C].
        let (c, l) = (per[0], per[1]);
        (vec![1, l, c], Layout::Chw { c, h: 1, w: l })
    } else {
        (per.clone(), Layout::Plain)
    };
    if !several {
        if input_int {
            imp.integral.insert("input".into());
            if ins[0].name.to_ascii_lowercase().contains("mask") {
                return Err(merr(format!(
                    "input `{in_name}` is an attention mask and the model's only input: nothing to mask"
                )));
            }
        }
        imp.vals.insert(
            in_name.clone(),
            Val::Act(Act {
                ir: "input".into(),
                dims: per.clone(),
                layout: in_layout,
                ir_shape: ir_shape.clone(),
            }),
        );
    }

    for n in &nodes {
        imp.import_node(n)?;
    }

    if g.output.is_empty() {
        return Err(merr("the graph declares no output".into()));
    }
    let mut outs: Vec<(String, Act)> = vec![];
    for o in &g.output {
        let out_name = o.name.clone().unwrap_or_default();
        // A lazy output (an elementwise expression) becomes its IR op.
        let out_node = NodeProto {
            name: Some("output".into()),
            op_type: Some("Identity".into()),
            input: vec![out_name.clone()],
            ..Default::default()
        };
        imp.materialize_inputs(&out_node)?;
        let out = match imp.vals.get(&out_name) {
            Some(Val::Act(a)) => a.clone(),
            Some(Val::Expr(..) | Val::Shuffle { .. } | Val::Attn(_) | Val::Padded(..)) => {
                return Err(merr(format!(
                    "output `{out_name}` is an unfinished pattern"
                )));
            }
            Some(Val::Const(_)) => {
                return Err(merr(format!(
                    "output `{out_name}` is a constant: the model computes nothing from its input"
                )));
            }
            None => {
                return Err(merr(format!(
                    "output `{out_name}` is not produced by any node"
                )));
            }
        };
        if out.ir == "input"
            || imp.index.get(&out.ir).is_some_and(|&i| {
                matches!(imp.nodes[i].op, greenbench_core::graph::Op::Input { .. })
            })
        {
            return Err(merr(format!(
                "output `{out_name}` is an input: nothing to run"
            )));
        }
        outs.push((out_name, out));
    }
    let out_names: Vec<IoTensor> = outs
        .iter()
        .map(|(n, a)| IoTensor {
            name: n.clone(),
            dims: a.dims.clone(),
            dtype: DType::F32,
        })
        .collect();
    let out_name = outs[0].0.clone();
    let out = if outs.len() == 1 {
        outs.pop().expect("one output").1
    } else {
        imp.pack_outputs(outs)
    };

    // Keep the nodes the output needs; it must be the last.
    let used_inputs: Vec<bool> = ins
        .iter()
        .map(|gi| match imp.vals.get(&gi.name) {
            Some(Val::Act(a)) => {
                a.ir == "input" || imp.nodes.iter().any(|n| n.inputs.contains(&a.ir))
            }
            _ => false,
        })
        .collect();
    let parts = if several {
        imp.input_parts(&ins, &used_inputs).map_err(merr)?
    } else {
        vec![]
    };
    let token_vocab = imp.vocabs.get("input").copied();
    let Importer {
        nodes,
        weights,
        index,
        ..
    } = imp;
    let mut keep = vec![false; nodes.len()];
    let mut stack = vec![index[&out.ir]];
    while let Some(i) = stack.pop() {
        if keep[i] {
            continue;
        }
        keep[i] = true;
        for s in &nodes[i].inputs {
            if let Some(&j) = index.get(s) {
                stack.push(j);
            }
        }
    }
    let last = index[&out.ir];
    let mut kept_nodes = vec![];
    let mut kept_w = vec![];
    for (i, (node, w)) in nodes.into_iter().zip(weights).enumerate() {
        if keep[i] && i <= last {
            kept_nodes.push(node);
            kept_w.push(w);
        }
    }
    let spec = if several {
        InputSpec::packed(parts)
    } else {
        InputSpec::new(ir_shape, if input_int { token_vocab } else { None })
    };
    if !several && input_int && token_vocab.is_none() {
        return Err(merr(format!(
            "input `{in_name}` holds integers but feeds no embedding lookup"
        )));
    }
    let graph = Graph::new(name, spec, kept_nodes).map_err(|source| ImportError::Graph {
        file: file.to_string(),
        err: Box::new(source),
    })?;
    let weights = Weights { per_node: kept_w };
    // Check every weight's shape against what the IR expects.
    for i in 0..graph.nodes.len() {
        let want = greenbench_core::weights::weight_shapes(&graph, i);
        let have: Vec<Vec<usize>> = weights.per_node[i]
            .iter()
            .map(|t| t.shape().to_vec())
            .collect();
        if want != have {
            return Err(merr(format!(
                "node `{}`: weights {have:?}, the IR expects {want:?}",
                graph.nodes[i].name
            )));
        }
    }
    let mut model =
        Model::from_parts(&graph, &weights, seed).map_err(|source| ImportError::Fold {
            file: file.to_string(),
            err: Box::new(source),
        })?;
    model.weights_source = Some(format!("the initializers of {file}"));
    model.dims = bound.clone();
    let io = Io {
        input_name: in_name,
        input_dims: per,
        input_int,
        fixed_batch,
        output_name: out_name,
        output_dims: out.dims.clone(),
        input_layout: in_layout,
        output_layout: out.layout,
        inputs: io_tensors(&ins),
        outputs: out_names,
    };
    Ok(Imported {
        model,
        io,
        opset,
        path: PathBuf::new(),
    })
}

/// Whether a 4-D input `name` is NCHW: when, through ops that do not care about the layout
/// (elementwise, Concat, Split, Slice...), an image op reads it (a Conv or pool, as torch.onnx
/// writes) before any NHWC -> NCHW Transpose does (as tf2onnx and greenbench's own exports
/// write). Otherwise the input is taken as declared.
fn reads_as_image(g: &GraphProto, name: &str) -> bool {
    const IMAGE: &[&str] = &[
        "Conv",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "BatchNormalization",
        "LRN",
    ];
    const AGNOSTIC: &[&str] = &[
        "Relu",
        "Clip",
        "Sigmoid",
        "HardSigmoid",
        "HardSwish",
        "Tanh",
        "LeakyRelu",
        "Erf",
        "Abs",
        "Neg",
        "Sqrt",
        "Exp",
        "Log",
        "Reciprocal",
        "Sign",
        "Identity",
        "Dropout",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Pow",
        "Sum",
        "Concat",
        "Split",
        "Slice",
        "Pad",
    ];
    let mut frontier = vec![name.to_string()];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = frontier.pop() {
        if !seen.insert(v.clone()) || seen.len() > 10_000 {
            continue;
        }
        for n in g.node.iter().filter(|n| n.input.contains(&v)) {
            let op = n.op_type.as_deref().unwrap_or("");
            if IMAGE.contains(&op) {
                return true;
            }
            if AGNOSTIC.contains(&op) {
                frontier.extend(n.output.iter().cloned());
            }
        }
    }
    false
}
