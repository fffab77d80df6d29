//! Symbolic dimensions bound by name (`--dim sequence=128`, ONNX Runtime's free-dimension
//! override): a model whose inputs declare `["batch", "sequence", 768]` is imported once per
//! binding, each a model of its own (`bert[sequence=128]`), whose cells, tables and plots keep
//! the bindings apart. The leading dimension stays the batch (`--batch`); every other symbolic
//! dimension must be bound, and an unbound one is an error naming each input that uses it.

use crate::proto::type_proto;
use crate::proto::{GraphProto, tensor_shape_proto::dimension::Value as DimValue};
use std::collections::{BTreeMap, BTreeSet};

/// Sizes bound to symbolic dimension names.
pub type Dims = BTreeMap<String, usize>;

/// The `--dim` flag's values: each name with the sizes to sweep, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DimSweep(pub Vec<(String, Vec<usize>)>);

impl DimSweep {
    /// Parse `--dim` arguments. Each is a comma-separated list in which `NAME=SIZE` starts a
    /// name and a bare `SIZE` adds a size to the name before it: `sequence=64,128,256` sweeps
    /// one name, `sequence=128,past=1` binds two. A name given twice is an error.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<DimSweep, String> {
        let mut out: Vec<(String, Vec<usize>)> = vec![];
        for arg in args {
            for tok in arg.as_ref().split(',').map(str::trim) {
                if tok.is_empty() {
                    continue;
                }
                let size_of = |s: &str| -> Result<usize, String> {
                    match s.trim().parse::<usize>() {
                        Ok(v) if v >= 1 => Ok(v),
                        _ => Err(format!(
                            "--dim `{tok}`: a size is a whole number of at least 1, got `{}`",
                            s.trim()
                        )),
                    }
                };
                match tok.split_once('=') {
                    Some((name, size)) => {
                        let name = name.trim();
                        if name.is_empty() {
                            return Err(format!(
                                "--dim `{tok}`: the name is missing (NAME=SIZE, e.g. sequence=128)"
                            ));
                        }
                        if out.iter().any(|(n, _)| n == name) {
                            return Err(format!(
                                "--dim: `{name}` is given twice; sweep it with one list (--dim {name}=64,128)"
                            ));
                        }
                        out.push((name.to_string(), vec![size_of(size)?]));
                    }
                    None => match out.last_mut() {
                        Some((_, sizes)) => {
                            let v = size_of(tok)?;
                            if !sizes.contains(&v) {
                                sizes.push(v);
                            }
                        }
                        None => {
                            return Err(format!(
                                "--dim `{tok}`: expected NAME=SIZE (e.g. --dim sequence=128)"
                            ));
                        }
                    },
                }
            }
        }
        Ok(DimSweep(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names given.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Every combination of the sizes of the names in `used` (the others do not apply to
    /// this model), the first name varying slowest. One empty binding when none applies.
    pub fn bindings(&self, used: &BTreeSet<String>) -> Vec<Dims> {
        let mut out = vec![Dims::new()];
        for (name, sizes) in self.0.iter().filter(|(n, _)| used.contains(n)) {
            out = out
                .into_iter()
                .flat_map(|d| {
                    sizes.iter().map(move |&s| {
                        let mut d = d.clone();
                        d.insert(name.clone(), s);
                        d
                    })
                })
                .collect();
        }
        out
    }
}

/// `sequence=128` (several comma-separated, by name): how a binding is written in a model's
/// name, a table and a result file.
pub fn dims_label(d: &Dims) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A model's name with its bindings: `bert[sequence=128]` (the name alone when none).
pub fn bound_name(name: &str, d: &Dims) -> String {
    if d.is_empty() {
        name.to_string()
    } else {
        format!("{name}[{}]", dims_label(d))
    }
}

/// The symbolic dimensions of a graph's inputs (those without an initializer), the leading
/// (batch) one apart: name -> where it is used (`input_ids` dimension 1, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbolic {
    pub uses: BTreeMap<String, Vec<String>>,
    /// Names of leading dimensions: the batch, bound by `--batch`, never by `--dim`.
    pub batch_names: BTreeSet<String>,
}

impl Symbolic {
    pub fn of(g: &GraphProto) -> Symbolic {
        let inits: BTreeSet<&str> = g
            .initializer
            .iter()
            .filter_map(|t| t.name.as_deref())
            .collect();
        let mut s = Symbolic::default();
        for v in g
            .input
            .iter()
            .filter(|v| !inits.contains(v.name.as_deref().unwrap_or("")))
        {
            let name = v.name.clone().unwrap_or_default();
            let Some(type_proto::Value::TensorType(t)) =
                v.r#type.as_ref().and_then(|t| t.value.as_ref())
            else {
                continue;
            };
            let Some(shape) = &t.shape else { continue };
            for (i, d) in shape.dim.iter().enumerate() {
                if let Some(DimValue::DimParam(p)) = &d.value {
                    if i == 0 {
                        s.batch_names.insert(p.clone());
                    } else {
                        s.uses
                            .entry(p.clone())
                            .or_default()
                            .push(format!("input `{name}` dimension {i}"));
                    }
                }
            }
        }
        s
    }

    /// The names a binding must give.
    pub fn names(&self) -> BTreeSet<String> {
        self.uses.keys().cloned().collect()
    }

    /// Why `sweep` cannot bind this graph's inputs, if it cannot: a symbolic dimension left
    /// unbound (each named with its uses and the flag that binds it), or a batch dimension
    /// bound with `--dim`.
    pub fn check(&self, sweep: &DimSweep) -> Result<(), String> {
        if let Some(b) = sweep
            .names()
            .into_iter()
            .find(|n| self.batch_names.contains(*n) && !self.uses.contains_key(*n))
        {
            return Err(format!(
                "`{b}` is the leading (batch) dimension of the model's inputs; set it with --batch, not --dim"
            ));
        }
        let given: BTreeSet<&str> = sweep.names().into_iter().collect();
        let unbound: Vec<(&String, &Vec<String>)> = self
            .uses
            .iter()
            .filter(|(n, _)| !given.contains(n.as_str()))
            .collect();
        if unbound.is_empty() {
            return Ok(());
        }
        let list = unbound
            .iter()
            .map(|(n, uses)| format!("`{n}` ({})", uses.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        let example = unbound
            .iter()
            .map(|(n, _)| format!("--dim {n}=128"))
            .collect::<Vec<_>>()
            .join(" ");
        let s = if unbound.len() == 1 { "" } else { "s" };
        Err(format!(
            "{} symbolic dimension{s} unbound: {list}. Bind each to a size with --dim NAME=SIZE (a list sweeps it), e.g. {example}",
            unbound.len()
        ))
    }
}

/// Bindings read from a test data set: each symbolic dimension of `input`'s declared dims
/// takes the size the recorded tensor has there. A name bound to two sizes is an error.
pub fn bind_from_shape(
    input: &str,
    declared: &[Result<usize, String>],
    actual: &[usize],
    into: &mut Dims,
) -> Result<(), String> {
    if declared.len() != actual.len() {
        return Err(format!(
            "input `{input}` has {} dimensions, the test data's tensor {} ({actual:?})",
            declared.len(),
            actual.len()
        ));
    }
    for (i, (d, &a)) in declared.iter().zip(actual).enumerate().skip(1) {
        if let Err(name) = d {
            match into.insert(name.clone(), a) {
                Some(prev) if prev != a => {
                    return Err(format!(
                        "symbolic dimension `{name}` is {prev} in one input and {a} in input `{input}` dimension {i}"
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_lists_and_errors() {
        let s = DimSweep::parse(&["sequence=64,128, 256", "past=1"]).unwrap();
        assert_eq!(
            s.0,
            vec![
                ("sequence".to_string(), vec![64, 128, 256]),
                ("past".to_string(), vec![1])
            ]
        );
        let s = DimSweep::parse(&["a=2,b=3,4"]).unwrap();
        assert_eq!(s.0, vec![("a".into(), vec![2]), ("b".into(), vec![3, 4])]);
        assert!(DimSweep::parse(&["128"]).unwrap_err().contains("NAME=SIZE"));
        assert!(
            DimSweep::parse(&["s=0"])
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(DimSweep::parse(&["s=x"]).unwrap_err().contains("`x`"));
        assert!(DimSweep::parse(&["=4"]).unwrap_err().contains("name"));
        let e = DimSweep::parse(&["s=1", "s=2"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn bindings_are_the_product_of_the_names_a_model_uses() {
        let s = DimSweep::parse(&["sequence=64,128", "heads=2,4", "other=9"]).unwrap();
        let used: BTreeSet<String> = ["sequence", "heads"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let b = s.bindings(&used);
        let labels: Vec<String> = b.iter().map(dims_label).collect();
        assert_eq!(
            labels,
            [
                "heads=2,sequence=64",
                "heads=4,sequence=64",
                "heads=2,sequence=128",
                "heads=4,sequence=128"
            ]
        );
        assert_eq!(s.bindings(&BTreeSet::new()), vec![Dims::new()]);
        assert_eq!(bound_name("bert", &b[0]), "bert[heads=2,sequence=64]");
        assert_eq!(bound_name("bert", &Dims::new()), "bert");
    }

    #[test]
    fn unbound_and_batch_names_are_refused_with_their_uses() {
        let mut s = Symbolic::default();
        s.uses.insert(
            "sequence".into(),
            vec![
                "input `input_ids` dimension 1".into(),
                "input `attention_mask` dimension 1".into(),
            ],
        );
        s.batch_names.insert("batch_size".into());
        let e = s.check(&DimSweep::default()).unwrap_err();
        assert!(
            e.contains("1 symbolic dimension unbound: `sequence` (input `input_ids` dimension 1, input `attention_mask` dimension 1)"),
            "{e}"
        );
        assert!(e.contains("--dim sequence=128"), "{e}");
        let e = s
            .check(&DimSweep::parse(&["batch_size=8"]).unwrap())
            .unwrap_err();
        assert!(e.contains("--batch"), "{e}");
        assert!(s.check(&DimSweep::parse(&["sequence=8"]).unwrap()).is_ok());
    }

    #[test]
    fn test_data_shapes_bind_names() {
        let mut d = Dims::new();
        let decl = vec![Err("N".to_string()), Err("seq".to_string()), Ok(4)];
        bind_from_shape("x", &decl, &[3, 16, 4], &mut d).unwrap();
        assert_eq!(d["seq"], 16);
        assert!(!d.contains_key("N"), "the batch is not a --dim");
        let e = bind_from_shape("y", &decl, &[3, 12, 4], &mut d).unwrap_err();
        assert!(e.contains("16") && e.contains("12"), "{e}");
    }
}
