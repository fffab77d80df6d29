//! Measuring training: each run of a sweep (the H of E·D·H) trained on the CPU with its
//! wall-clock per epoch and the energy between its first and last step, written down as a
//! result-file cell (backend `cpu-train`) with its counted training FPO and test accuracy.
//! What the whole experiment costs is priced from these cells by greenbench-results.

use crate::energy::Energy;
use crate::env::{Fingerprint, now_utc, peak_rss_bytes};
use crate::protocol::Profile;
use crate::record::{Cell, CellStatus, Environment, ResultFile, RunStatus};
use crate::stats::summarize;
use greenbench_core::weights::Weights;
use greenbench_core::{DeviceKind, Graph};
use greenbench_train::data::Dataset;
use greenbench_train::nn::Net;
use greenbench_train::{EpochLog, Optimizer, TrainConfig, TrainCost, train, train_cost};

/// A training experiment: one model, one split of one dataset, one run per learning rate.
pub struct Experiment<'a> {
    pub model: &'a Graph,
    pub net: &'a Net,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub epochs: usize,
    pub batch: usize,
    pub optimizer: Optimizer,
    pub seed: u64,
    /// One run per value (H = its length).
    pub learning_rates: Vec<f32>,
}

impl Experiment<'_> {
    /// The counted training work of one run.
    pub fn cost(&self) -> TrainCost {
        train_cost(self.model, self.optimizer)
    }

    /// FPO per training example-pass (greenbench-train's count).
    pub fn fpo_per_example(&self) -> u64 {
        self.cost()
            .fpo_per_example_pass(self.train.len(), self.batch)
    }

    /// Training example-passes of one run (examples x epochs): the D of E·D·H.
    pub fn passes(&self) -> f64 {
        (self.train.len() * self.epochs) as f64
    }
}

/// One finished run of a sweep.
pub struct RunOutcome {
    pub lr: f32,
    pub test_accuracy: f64,
    /// Wall-clock of the whole run.
    pub seconds: f64,
    /// Energy per training example-pass, when a meter or the estimate gave one.
    pub energy_per_pass_j: Option<f64>,
    /// Its result-file cell.
    pub cell: Cell,
}

/// A finished sweep: every run, and the weights of the best test accuracy.
pub struct Sweep {
    pub runs: Vec<RunOutcome>,
    pub best: Option<(f64, Weights)>,
}

impl Sweep {
    /// The runs' cells, in sweep order.
    pub fn cells(&self) -> Vec<Cell> {
        self.runs.iter().map(|r| r.cell.clone()).collect()
    }
}

/// Train every configuration of `exp` in turn, measuring each. `on_epoch` hears each
/// epoch as it ends, `on_run` each run as it ends (the CLI prints them).
pub fn run_sweep(
    exp: &Experiment<'_>,
    energy: &Energy,
    machine: &Fingerprint,
    on_epoch: &mut dyn FnMut(f32, &EpochLog),
    on_run: &mut dyn FnMut(&RunOutcome),
) -> Result<Sweep, String> {
    let cost = exp.cost();
    let fpo_per_example = cost.fpo_per_example_pass(exp.train.len(), exp.batch);
    let params = greenbench_core::cost::graph_cost(exp.model).total.params;
    let steps_per_epoch = exp.train.len().div_ceil(exp.batch) as u64;
    let passes = exp.passes();
    let kind = energy.kind();
    let mut sweep = Sweep {
        runs: Vec::new(),
        best: None,
    };
    for &lr in &exp.learning_rates {
        let cfg = TrainConfig {
            epochs: exp.epochs,
            batch: exp.batch,
            lr,
            optimizer: exp.optimizer,
            seed: exp.seed,
        };
        let r0 = energy.read()?;
        let t0 = std::time::Instant::now();
        let done = train(
            exp.net,
            greenbench_core::generate_weights(exp.model, exp.seed),
            exp.train,
            exp.test,
            &cfg,
            &mut |e| on_epoch(lr, e),
        );
        let secs = t0.elapsed().as_secs_f64();
        let r1 = energy.read()?;
        if sweep.best.as_ref().is_none_or(|b| done.test_accuracy > b.0) {
            sweep.best = Some((done.test_accuracy, done.weights.clone()));
        }
        let joules = energy.joules_between(&r0, &r1, secs);
        let per_epoch: Vec<f64> = done
            .epochs
            .iter()
            .map(|e| e.seconds / exp.train.len() as f64)
            .collect();
        let t = summarize(&per_epoch);
        let e_per = joules.map(|j| j / passes);
        let (g, usd) = e_per.map_or((None, None), |j| {
            let (g, u) = greenbench_energy::co2e_and_cost(
                j * 1e6,
                energy.prices.grid_g_co2e_per_kwh,
                energy.prices.usd_per_kwh,
            );
            (Some(g), Some(u))
        });
        let cell = Cell {
            host: Some(machine.hostname.clone()),
            model: exp.model.name.clone(),
            dims: Default::default(),
            tokens_per_example: None,
            inputs: None,
            backend: "cpu-train".into(),
            device: machine.cpu_model.clone(),
            device_kind: DeviceKind::Cpu,
            threads: Some(1),
            batch: exp.batch,
            precision: greenbench_core::Precision::Fp32,
            status: CellStatus::Ok,
            error: None,
            params,
            macs_per_example: cost.forward_macs + cost.backward_macs,
            fpo_per_example,
            transcendentals_per_example: cost.transcendentals,
            int_ops_per_example: 0,
            examples_per_s: Some(1.0 / t.median),
            gflops: Some(fpo_per_example as f64 / t.median / 1e9),
            time_per_example_s: Some(t),
            device_time_per_example_s: None,
            device_time_note: Some(
                "CPU training: wall-clock per training example-pass, one window per epoch".into(),
            ),
            pct_of_peak: None,
            energy_per_example_j: e_per,
            energy_source: energy.source(),
            energy_kind: e_per.map(|_| kind.to_string()),
            energy_gross_per_example_j: e_per,
            energy_net_per_example_j: e_per,
            energy_samples_j: vec![],
            avg_power_w: joules.map(|j| j / secs),
            fpo_per_joule: e_per
                .filter(|j| *j > 0.0)
                .map(|j| fpo_per_example as f64 / j),
            co2e_g_per_million: g,
            cost_usd_per_million: usd,
            other_cpu_cores: None,
            steal_share: None,
            cpu_mhz: None,
            warnings: vec![],
            unstable: false,
            stable: None,
            peak_rss_bytes: peak_rss_bytes(),
            weights_seed: Some(exp.seed),
            weights_source: Some("generated from weights_seed, then trained by this run".into()),
            weights_fingerprint: format!("{:016x}", done.weights.fingerprint()),
            warmup_batches: 0,
            window_batches: vec![steps_per_epoch; exp.epochs],
            cpu_s: None,
            power_series_w: vec![],
            remeasured: None,
            machine_reference: None,
            precision_note: None,
            algorithm_note: None,
            execution_note: None,
            accuracy: Some(done.test_accuracy),
            train_passes: Some(passes as u64),
            train: Some(format!(
                "{} ({} train / {} test, seed {}), {} epochs, batch {}, {:?}, lr {lr}",
                exp.train.name,
                exp.train.len(),
                exp.test.len(),
                exp.seed,
                exp.epochs,
                exp.batch,
                exp.optimizer
            )),
        };
        let mut cell = cell;
        if crate::cluster::SlurmJob::from_env().is_some_and(|j| j.node_shared) {
            crate::runner::withhold_node_energy(&mut cell);
        }
        let run = RunOutcome {
            lr,
            test_accuracy: done.test_accuracy,
            seconds: secs,
            energy_per_pass_j: e_per,
            cell,
        };
        on_run(&run);
        sweep.runs.push(run);
    }
    Ok(sweep)
}

/// The result file of a finished sweep (profile `train`: one window per epoch).
pub fn sweep_result_file(
    machine: Fingerprint,
    started_utc: String,
    exp: &Experiment<'_>,
    command: Vec<String>,
    cells: Vec<Cell>,
    shard: Option<crate::cluster::Shard>,
) -> ResultFile {
    ResultFile {
        schema_version: crate::SCHEMA_VERSION,
        status: RunStatus::Complete,
        environment: Environment {
            machine,
            started_utc,
            finished_utc: Some(now_utc()),
            profile: Profile {
                name: "train".into(),
                warmup_s: 0.0,
                windows: exp.epochs,
                window_s: 0.0,
                input_sets: 1,
                idle_s: 0.0,
                until_stable: None,
            },
            seed: exp.seed,
            command,
            peaks: vec![],
            energy: None,
            shard,
            slurm: crate::cluster::SlurmJob::from_env(),
        },
        cells,
        merged_from: vec![],
    }
}
