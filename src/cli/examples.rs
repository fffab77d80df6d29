//! `run --inputs DIR`: real examples, read from a test data directory (the ONNX layout,
//! `input_0.pb`, `input_1.pb`, ... one per model input), timed instead of generated ones.

use anyhow::{Context, Result, bail};
use greenbench_core::{Examples, Model};
use greenbench_onnx::import::import_file_with;
use greenbench_onnx::testdata;
use std::path::Path;

/// The `--dim` flags to load with: the ones given, or (none given) the sizes the examples'
/// shapes bind, so that `run --models bert.onnx --inputs DIR` needs nothing else.
pub fn dims_for(names: &[String], dir: &Path, given: &[String]) -> Result<Vec<String>> {
    let [name] = names else {
        bail!("--inputs DIR holds one model's examples: give exactly one ONNX file with --models");
    };
    if !name.ends_with(".onnx") {
        bail!(
            "--inputs DIR reads examples for an ONNX model's inputs; `{name}` is not an .onnx file"
        );
    }
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let dims = testdata::dims_from(Path::new(name), dir).map_err(anyhow::Error::msg)?;
    Ok(dims.iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// Attach the examples in `dir` to each loaded binding of the one model file `name`.
pub fn attach(models: &mut [Model], name: &str, dir: &Path) -> Result<()> {
    for m in models {
        let imp = import_file_with(Path::new(name), m.seed, &m.dims)?;
        let (count, x) = testdata::read_inputs(&imp, dir)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--inputs {}", dir.display()))?;
        let values = imp.io.input_to_ir(&x, count);
        m.graph
            .check_input(&values, count)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("--inputs {}", dir.display()))?;
        m.inputs = Some(Examples {
            source: format!("{} ({count} examples, cycled)", dir.display()),
            count,
            values,
        });
    }
    Ok(())
}
