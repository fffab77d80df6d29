//! What a training experiment is made of before anything runs: the dataset named on the
//! command line (shipped, or the user's files), fitted to the model's input, the optimizer by
//! name, and the H learning rates of a sweep. Every refusal says what to give instead.

use crate::Optimizer;
use crate::data::{self, DataError, Dataset};
use greenbench_core::graph::Graph;
use std::path::{Path, PathBuf};

/// A training set-up that cannot be used as given.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> SetupError {
    SetupError::Invalid(msg.into())
}

/// `adam`, or `sgd` (momentum 0.9).
pub fn optimizer_by_name(name: &str) -> Result<Optimizer, SetupError> {
    match name {
        "adam" => Ok(Optimizer::Adam),
        "sgd" => Ok(Optimizer::Sgd { momentum: 0.9 }),
        o => Err(invalid(format!("unknown optimizer `{o}`; use adam or sgd"))),
    }
}

/// The learning rates to train with: `lr` alone, or one per value of a sweep `lr=a,b,c`
/// (the H of E·D·H).
pub fn sweep_learning_rates(sweep: Option<&str>, lr: f32) -> Result<Vec<f32>, SetupError> {
    let Some(sw) = sweep else {
        return Ok(vec![lr]);
    };
    let vals = sw.strip_prefix("lr=").ok_or_else(|| {
        invalid(format!(
            "--sweep `{sw}`: only lr=a,b,c sweeps are supported"
        ))
    })?;
    vals.split(',')
        .map(|v| v.trim().parse::<f32>().ok().filter(|x| *x > 0.0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            invalid(format!(
                "--sweep `{sw}`: learning rates must be positive numbers"
            ))
        })
}

/// A dataset by name: `digits` (built into the binary, or read under `datasets_dir` when
/// given), `mnist` (IDX files) or
/// `cifar10` (binary batches) from `data_dir`.
pub fn load_dataset(
    name: &str,
    data_dir: Option<&Path>,
    datasets_dir: Option<&Path>,
) -> Result<Dataset, SetupError> {
    Ok(match name {
        "digits" => match datasets_dir {
            Some(d) => data::load_digits(&data::digits_path(d))?,
            None => data::shipped_digits()?,
        },
        "mnist" => {
            let dir = data_dir
                .ok_or_else(|| invalid("--dataset mnist needs --data-dir with the IDX files"))?;
            data::load_mnist(
                &dir.join("train-images-idx3-ubyte"),
                &dir.join("train-labels-idx1-ubyte"),
            )?
        }
        "cifar10" => {
            let dir = data_dir.ok_or_else(|| {
                invalid("--dataset cifar10 needs --data-dir with data_batch_*.bin")
            })?;
            let files: Vec<PathBuf> = (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect();
            data::load_cifar10(&files)?
        }
        o => {
            return Err(invalid(format!(
                "unknown dataset `{o}`; use digits, mnist or cifar10"
            )));
        }
    })
}

/// Fit `d` to the model's input: single-channel images are resized to its H x W (a vector
/// input of n x n values takes n x n images, flattened). Returns the data and the (H, W) it
/// was fitted to; fails when values or classes still do not match.
pub fn fit_to_model(
    d: Dataset,
    model: &Graph,
    classes: usize,
) -> Result<(Dataset, (usize, usize)), SetupError> {
    let want = &model.input.shape;
    let (h, w) = match want.as_slice() {
        [h, w, _] => (*h, *w),
        [n] => {
            let side = (*n as f64).sqrt() as usize;
            (side, side)
        }
        _ => (0, 0),
    };
    let fitted = if d.shape[..2] == [h, w] {
        d
    } else {
        data::resize(&d, h, w)
    };
    if fitted.example_len() != model.input_len() || fitted.classes != classes {
        return Err(invalid(format!(
            "{} examples ({} values, {} classes) do not fit {} (input {:?}, {} classes)",
            fitted.name,
            fitted.example_len(),
            fitted.classes,
            model.name,
            want,
            classes
        )));
    }
    Ok((fitted, (h, w)))
}
