//! The graph IR: typed ops, named nodes, shape inference.
//!
//! Shapes are **per example** (the batch dimension is added by executors) and NHWC: an image
//! is `[H, W, C]`, a feature vector `[K]`, a token sequence `[S]`, a sequence of embeddings
//! `[S, D]`. A graph is validated when it is built ([`Graph::new`] or deserialisation), so every
//! `Graph` value has consistent shapes.

//!
//! By concern: [`ops`] (what each op is), [`geom`] (the shape arithmetic of products,
//! convolutions and pools), [`node`] (shapes, inputs, nodes, errors), [`infer`] (each op's
//! shape rule: validation), [`ir`] (the graph type). Everything is re-exported here, so users
//! name `greenbench_core::graph::X` whichever file holds it.

mod geom;
mod infer;
mod ir;
mod node;
mod ops;
mod shape;

pub use geom::*;
pub use ir::*;
pub use node::*;
pub use ops::*;
pub use shape::*;

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: usize, w: usize, c: usize) -> InputSpec {
        InputSpec {
            shape: vec![h, w, c],
            token_vocab: None,
            parts: vec![],
        }
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        // 49 rows, k = 10, s = 2: out 25, total pad (24*2+10-49) = 9 -> 4 top, 5 bottom.
        assert_eq!(same_padding(49, 10, 2), (25, 4, 5));
        // 96, k 3, s 2: out 48, total 1 -> 0 before, 1 after (odd pixel bottom/right).
        assert_eq!(same_padding(96, 3, 2), (48, 0, 1));
        assert_eq!(same_padding(32, 3, 1), (32, 1, 1));
        assert_eq!(same_padding(10, 4, 2), (5, 1, 1));
    }

    #[test]
    fn add_mismatch_names_node_and_both_shapes() {
        let nodes = vec![
            Node::new("c1", Op::conv(8, [3, 3], [2, 2], Padding::Same)),
            Node::with_inputs("sum", Op::Add, &["c1", "input"]),
        ];
        let err = Graph::new("bad", img(8, 8, 3), nodes).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sum`"), "{msg}");
        assert!(msg.contains("[8, 8, 3]"), "{msg}");
        assert!(msg.contains("[4, 4, 8]"), "{msg}");
    }

    #[test]
    fn dense_on_image_after_flatten_only() {
        let nodes = vec![Node::new(
            "att",
            Op::Attention {
                heads: 2,
                head_dim: 4,
                causal: false,
                key_bias: false,
            },
        )];
        let err = Graph::new(
            "bad",
            InputSpec {
                shape: vec![5, 20],
                token_vocab: None,
                parts: vec![],
            },
            nodes,
        )
        .unwrap_err();
        assert!(err.to_string().contains("[5, 20]"));
        assert!(err.to_string().contains("[S, 24]"));
    }

    #[test]
    fn unknown_input_and_duplicates() {
        let e = Graph::new(
            "g",
            img(4, 4, 1),
            vec![Node::with_inputs("r", Op::Relu, &["nope"])],
        )
        .unwrap_err();
        assert_eq!(
            e,
            GraphError::UnknownInput {
                node: "r".into(),
                input: "nope".into()
            }
        );
        let e = Graph::new(
            "g",
            img(4, 4, 1),
            vec![Node::new("r", Op::Relu), Node::new("r", Op::Relu)],
        )
        .unwrap_err();
        assert_eq!(e, GraphError::DuplicateName("r".into()));
    }

    #[test]
    fn json_round_trip_and_field_errors() {
        let g = Graph::new(
            "tiny",
            img(6, 6, 2),
            vec![
                Node::new(
                    "c",
                    Op::Conv2d {
                        filters: 4,
                        kernel: [3, 3],
                        stride: [1, 1],
                        padding: Padding::explicit(0, 1, 1, 0),
                        groups: 2,
                        bias: true,
                    },
                ),
                Node::new("r", Op::Relu),
            ],
        )
        .unwrap();
        let back = Graph::from_json(&g.to_json()).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.output_shape(), &vec![5, 5, 4]);

        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"dense","unitz":3}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("unitz"), "{msg}");
        let bad =
            r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"dense"}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("units"), "{msg}");
        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"d","op":{"type":"densse","units":2}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("densse"), "{msg}");
        // Shape errors surface through serde too, naming the node.
        let bad = r#"{"name":"x","input":{"shape":[4]},"nodes":[{"name":"p","op":{"type":"max_pool","kernel":[2,2],"stride":[2,2]}}]}"#;
        let msg = Graph::from_json(bad).unwrap_err().to_string();
        assert!(msg.contains("`p`") && msg.contains("[4]"), "{msg}");
    }
}
