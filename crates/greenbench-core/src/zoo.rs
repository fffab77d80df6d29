//! The reference model zoo of `shared/MODELS.md`, exactly, with batch norm unfolded (run
//! [`crate::fold::fold_batch_norm`] before executing), plus loading of user models from JSON.

use crate::graph::{Graph, InputSpec, Node, Op, Padding};
use std::path::Path;

/// The zoo, in the order tables list it.
pub const MODEL_NAMES: [&str; 7] = [
    "ds-cnn",
    "mobilenet-v1-0.25",
    "resnet8",
    "autoencoder",
    "lenet5",
    "mlp",
    "tiny-transformer",
];

/// The task a zoo model solves (shared/MODELS.md), as labels and reports name it: models of
/// one task are compared with each other, never across tasks.
pub fn zoo_task(name: &str) -> Option<&'static str> {
    Some(match name {
        "ds-cnn" => "keyword spotting (49x10 MFCC, 12 classes)",
        "mobilenet-v1-0.25" => "visual wake words (96x96x3, 2 classes)",
        "resnet8" => "image classification (CIFAR-10, 10 classes)",
        "autoencoder" => "anomaly detection (640 mel inputs)",
        "lenet5" | "mlp" => "digit classification (28x28, 10 classes)",
        "tiny-transformer" => "text classification (64 tokens, 2 classes)",
        _ => return None,
    })
}

/// Why a model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "unknown model `{name}`. Valid models: {}. A path to an ONNX file (.onnx) or a JSON model description (.json) also works.",
        MODEL_NAMES.join(", ")
    )]
    Unknown { name: String },
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("model `{name}` cannot be folded: {source}")]
    Invalid {
        name: String,
        source: Box<crate::GraphError>,
    },
    #[error(transparent)]
    Checkpoint(crate::checkpoint::CheckpointError),
    #[error("model file {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    /// Its weights alone would not fit in memory (checked before generating them).
    #[error("{0}")]
    TooLarge(String),
}

/// A zoo model by name, or a user model from a `.json` file path.
pub fn load_model(name_or_path: &str) -> Result<Graph, ModelError> {
    if name_or_path.ends_with(".json") || Path::new(name_or_path).is_file() {
        let text = std::fs::read_to_string(name_or_path).map_err(|source| ModelError::Io {
            path: name_or_path.to_string(),
            source,
        })?;
        return Graph::from_json(&text).map_err(|source| ModelError::Json {
            path: name_or_path.to_string(),
            source,
        });
    }
    zoo_model(name_or_path).ok_or_else(|| ModelError::Unknown {
        name: name_or_path.to_string(),
    })
}

/// A zoo model by name.
pub fn zoo_model(name: &str) -> Option<Graph> {
    let g = match name {
        "ds-cnn" => ds_cnn(),
        "mobilenet-v1-0.25" => mobilenet_v1_025(),
        "resnet8" => resnet8(),
        "autoencoder" => autoencoder(),
        "lenet5" => lenet5(),
        "mlp" => mlp(),
        "tiny-transformer" => tiny_transformer(),
        _ => return None,
    };
    Some(g.expect("zoo models are valid"))
}

struct Builder {
    nodes: Vec<Node>,
}

impl Builder {
    fn new() -> Self {
        Builder { nodes: vec![] }
    }
    /// Append a node fed by the previous one; returns its name.
    fn op(&mut self, name: impl Into<String>, op: Op) -> String {
        let n = Node::new(name, op);
        let name = n.name.clone();
        self.nodes.push(n);
        name
    }
    fn op_from(&mut self, name: impl Into<String>, op: Op, inputs: &[&str]) -> String {
        let n = Node::with_inputs(name, op, inputs);
        let name = n.name.clone();
        self.nodes.push(n);
        name
    }
    /// conv -> BN -> (ReLU); returns the last node's name.
    fn conv_bn(
        &mut self,
        name: &str,
        filters: usize,
        k: [usize; 2],
        s: usize,
        groups: usize,
        relu: bool,
    ) -> String {
        self.op(name, conv(filters, k, s, Padding::Same, groups));
        let bn = self.op(format!("{name}_bn"), Op::BatchNorm { eps: 1e-3 });
        if relu {
            self.op(format!("{name}_relu"), Op::Relu)
        } else {
            bn
        }
    }
    fn dense(&mut self, name: &str, units: usize) -> String {
        self.op(name, Op::Dense { units, bias: true })
    }
    fn finish(self, name: &str, input: InputSpec) -> Result<Graph, crate::GraphError> {
        Graph::new(name, input, self.nodes)
    }
}

fn conv(filters: usize, k: [usize; 2], s: usize, padding: Padding, groups: usize) -> Op {
    Op::Conv2d {
        filters,
        kernel: k,
        stride: [s, s],
        padding,
        groups,
        bias: true,
    }
}

fn image(h: usize, w: usize, c: usize) -> InputSpec {
    InputSpec {
        shape: vec![h, w, c],
        token_vocab: None,
        parts: vec![],
    }
}

fn vector(n: usize) -> InputSpec {
    InputSpec {
        shape: vec![n],
        token_vocab: None,
        parts: vec![],
    }
}

fn ds_cnn() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    b.conv_bn("conv1", 64, [10, 4], 2, 1, true);
    for i in 1..=4 {
        b.conv_bn(&format!("dw{i}"), 64, [3, 3], 1, 64, true);
        b.conv_bn(&format!("pw{i}"), 64, [1, 1], 1, 1, true);
    }
    b.op("pool", Op::GlobalAvgPool);
    b.dense("fc", 12);
    b.op("softmax", Op::Softmax);
    b.finish("ds-cnn", image(49, 10, 1))
}

fn mobilenet_v1_025() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    b.conv_bn("conv1", 8, [3, 3], 2, 1, true);
    let blocks: [(usize, usize); 13] = [
        (16, 1),
        (32, 2),
        (32, 1),
        (64, 2),
        (64, 1),
        (128, 2),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (128, 1),
        (256, 2),
        (256, 1),
    ];
    let mut c = 8;
    for (i, (out, s)) in blocks.iter().enumerate() {
        b.conv_bn(&format!("dw{}", i + 1), c, [3, 3], *s, c, true);
        b.conv_bn(&format!("pw{}", i + 1), *out, [1, 1], 1, 1, true);
        c = *out;
    }
    b.op("pool", Op::GlobalAvgPool);
    b.dense("fc", 2);
    b.op("softmax", Op::Softmax);
    b.finish("mobilenet-v1-0.25", image(96, 96, 3))
}

fn resnet8() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    let mut x = b.conv_bn("conv1", 16, [3, 3], 1, 1, true);
    for (stack, filters) in [(1usize, 16usize), (2, 32), (3, 64)] {
        let s = if stack == 1 { 1 } else { 2 };
        let p = format!("s{stack}");
        b.op_from(
            format!("{p}_conv1"),
            conv(filters, [3, 3], s, Padding::Same, 1),
            &[&x],
        );
        b.op(format!("{p}_conv1_bn"), Op::BatchNorm { eps: 1e-3 });
        b.op(format!("{p}_conv1_relu"), Op::Relu);
        let y = b.conv_bn(&format!("{p}_conv2"), filters, [3, 3], 1, 1, false);
        let shortcut = if stack == 1 {
            x.clone()
        } else {
            b.op_from(
                format!("{p}_proj"),
                conv(filters, [1, 1], 2, Padding::Same, 1),
                &[&x],
            )
        };
        b.op_from(format!("{p}_add"), Op::Add, &[&y, &shortcut]);
        x = b.op(format!("{p}_relu"), Op::Relu);
    }
    b.op("pool", Op::avg_pool([8, 8], [8, 8]));
    b.op("flatten", Op::Flatten);
    b.dense("fc", 10);
    b.op("softmax", Op::Softmax);
    b.finish("resnet8", image(32, 32, 3))
}

fn autoencoder() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    let widths = [128, 128, 128, 128, 8, 128, 128, 128, 128];
    for (i, w) in widths.iter().enumerate() {
        let name = format!("fc{}", i + 1);
        b.dense(&name, *w);
        b.op(format!("{name}_bn"), Op::BatchNorm { eps: 1e-3 });
        b.op(format!("{name}_relu"), Op::Relu);
    }
    b.dense("out", 640);
    b.finish("autoencoder", vector(640))
}

fn lenet5() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    let pad2 = Padding::Explicit {
        top: 2,
        bottom: 2,
        left: 2,
        right: 2,
    };
    b.op("conv1", conv(6, [5, 5], 1, pad2, 1));
    b.op("relu1", Op::Relu);
    let pool = Op::max_pool([2, 2], [2, 2]);
    b.op("pool1", pool.clone());
    b.op("conv2", conv(16, [5, 5], 1, Padding::Valid, 1));
    b.op("relu2", Op::Relu);
    b.op("pool2", pool);
    b.op("flatten", Op::Flatten);
    b.dense("fc1", 120);
    b.op("relu3", Op::Relu);
    b.dense("fc2", 84);
    b.op("relu4", Op::Relu);
    b.dense("fc3", 10);
    b.op("softmax", Op::Softmax);
    b.finish("lenet5", image(28, 28, 1))
}

fn mlp() -> Result<Graph, crate::GraphError> {
    let mut b = Builder::new();
    b.dense("fc1", 256);
    b.op("relu1", Op::Relu);
    b.dense("fc2", 256);
    b.op("relu2", Op::Relu);
    b.dense("fc3", 10);
    b.op("softmax", Op::Softmax);
    b.finish("mlp", vector(784))
}

fn tiny_transformer() -> Result<Graph, crate::GraphError> {
    let (seq, dim, heads, head_dim, ffn) = (64, 64, 4, 16, 256);
    let mut b = Builder::new();
    let mut x = b.op(
        "embed",
        Op::Embedding {
            vocab: 1000,
            dim,
            positions: true,
        },
    );
    for l in 1..=2 {
        let p = format!("l{l}");
        b.op_from(format!("{p}_ln1"), Op::LayerNorm { eps: 1e-5 }, &[&x]);
        b.dense(&format!("{p}_qkv"), 3 * dim);
        b.op(
            format!("{p}_attn"),
            Op::Attention {
                heads,
                head_dim,
                causal: false,
                key_bias: false,
            },
        );
        let proj = b.dense(&format!("{p}_proj"), dim);
        let r1 = b.op_from(format!("{p}_res1"), Op::Add, &[&x, &proj]);
        b.op(format!("{p}_ln2"), Op::LayerNorm { eps: 1e-5 });
        b.dense(&format!("{p}_ff1"), ffn);
        b.op(format!("{p}_gelu"), Op::Gelu);
        let ff2 = b.dense(&format!("{p}_ff2"), dim);
        x = b.op_from(format!("{p}_res2"), Op::Add, &[&r1, &ff2]);
    }
    b.op("ln_final", Op::LayerNorm { eps: 1e-5 });
    b.op("mean", Op::GlobalAvgPool);
    b.dense("fc", 2);
    b.op("softmax", Op::Softmax);
    b.finish(
        "tiny-transformer",
        InputSpec {
            shape: vec![seq],
            token_vocab: Some(1000),
            parts: vec![],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::graph_cost;
    use crate::fold::fold_batch_norm;
    use crate::weights::generate_weights;

    fn folded(name: &str) -> Graph {
        let g = zoo_model(name).unwrap();
        let w = generate_weights(&g, 0);
        fold_batch_norm(&g, &w).unwrap().0
    }

    /// shared/FPO.md: MLPerf Tiny targets, computed from the mlcommons/tiny Keras models.
    #[test]
    fn mlperf_tiny_macs_are_exact() {
        for (name, macs) in [
            ("ds-cnn", 2_656_768),
            ("mobilenet-v1-0.25", 7_489_664),
            ("resnet8", 12_501_632),
            ("autoencoder", 264_192),
        ] {
            assert_eq!(graph_cost(&folded(name)).total.macs, macs, "{name}");
            // Folding batch norm changes no MAC.
            assert_eq!(graph_cost(&zoo_model(name).unwrap()).total.macs, macs);
        }
    }

    #[test]
    fn mlperf_tiny_params() {
        let p = |n| graph_cost(&folded(n)).total.params;
        assert_eq!(p("ds-cnn"), 22_604);
        assert_eq!(p("resnet8"), 77_706);
        // "about 210.9 K" and "about 265.9 K" in shared/FPO.md.
        assert_eq!(
            (p("mobilenet-v1-0.25") as f64 / 100.0).round() / 10.0,
            210.9
        );
        assert_eq!(p("autoencoder"), 265_864);
        // Batch-norm statistics are not parameters, folded or not.
        assert_eq!(
            graph_cost(&zoo_model("ds-cnn").unwrap()).total.params,
            22_604
        );
    }

    #[test]
    fn classic_models_counted_by_hand() {
        // lenet5: conv1 28*28*6*25, conv2 10*10*16*150, fc 400*120 + 120*84 + 84*10.
        let c = graph_cost(&folded("lenet5")).total;
        assert_eq!(c.macs, 117_600 + 240_000 + 48_000 + 10_080 + 840);
        assert_eq!(c.params, 156 + 2_416 + 48_120 + 10_164 + 850);
        // mlp: 784*256 + 256*256 + 256*10.
        let c = graph_cost(&folded("mlp")).total;
        assert_eq!(c.macs, 200_704 + 65_536 + 2_560);
        assert_eq!(c.params, 200_960 + 65_792 + 2_570);
        // softmax over 10: 4*10-2 = 38 FPO and 10 exp; relu 512; biases 522.
        assert_eq!(c.other_fpo, 38 + 512 + 522);
        assert_eq!(c.transcendentals, 10);
        assert_eq!(c.fpo(), 2 * c.macs + c.other_fpo);
    }

    #[test]
    fn tiny_transformer_counts() {
        let c = graph_cost(&folded("tiny-transformer")).total;
        // Per layer: qkv 64*64*192, attention 4*64*64*(16+16), proj 64*64*64,
        // ffn 64*64*256*2; head 64*2.
        let layer = 786_432 + 524_288 + 262_144 + 2 * 1_048_576;
        assert_eq!(c.macs, 2 * layer + 128);
        assert_eq!(c.params, 168_322);
        // exp: 2 layers * 4 heads * 64*64 + softmax 2; tanh: 2 * 64*256; rsqrt: 5 LNs * 64.
        assert_eq!(c.transcendentals, 2 * 16_384 + 2 + 2 * 16_384 + 5 * 64);
    }

    #[test]
    fn ds_cnn_uses_asymmetric_same_padding() {
        let g = folded("ds-cnn");
        let geom = g.conv_geom(0);
        assert_eq!((geom.ho, geom.wo), (25, 5));
        assert_eq!((geom.pad_top, geom.pad_bottom), (4, 5));
        assert_eq!((geom.pad_left, geom.pad_right), (1, 1));
        let g = folded("mobilenet-v1-0.25");
        let geom = g.conv_geom(0);
        assert_eq!((geom.pad_top, geom.pad_bottom, geom.ho), (0, 1, 48));
    }

    #[test]
    fn folding_removes_every_zoo_batch_norm() {
        for name in MODEL_NAMES {
            let g = folded(name);
            assert!(
                !g.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm { .. })),
                "{name}"
            );
            assert_eq!(
                g.output_shape(),
                zoo_model(name).unwrap().output_shape(),
                "{name}"
            );
        }
    }

    #[test]
    fn unknown_model_lists_valid_ones() {
        let msg = load_model("resnet9").unwrap_err().to_string();
        for n in MODEL_NAMES {
            assert!(msg.contains(n), "{msg}");
        }
    }

    #[test]
    fn zoo_graphs_round_trip_through_json() {
        for name in MODEL_NAMES {
            let g = zoo_model(name).unwrap();
            assert_eq!(Graph::from_json(&g.to_json()).unwrap(), g);
        }
    }
}
