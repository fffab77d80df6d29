//! `greenbench inspect MODEL --time`: where one model's time goes on the CPU backend, step by
//! step of the backend's own plan (a step may compute several fused layers).

use super::Format;
use anyhow::{Context, Result, bail};
use greenbench_core::backend::{Backend, Prepared, StepTime};
use greenbench_core::quant::QuantConfig;
use greenbench_core::weights::generate_inputs;
use greenbench_core::{Model, Precision};
use greenbench_cpu::CpuBackend;
use greenbench_results::text::{Table, duration, shape, thousands};
use std::time::Instant;

/// What `inspect --time` measures: the model at `batch` on `threads`, `seconds` of runs
/// untimed and then as long with the clock read around each step.
pub struct StepRun {
    pub precision: Precision,
    pub batch: usize,
    pub threads: usize,
    pub seconds: f64,
    pub calibration: usize,
    pub format: Format,
}

/// Windows of runs (each at least 3 runs) over `seconds` in all.
const WINDOWS: usize = 5;

/// Runs of `p` for about `seconds`, in [`WINDOWS`] windows; the time per example of the
/// fastest window (the one least disturbed by the machine).
fn run_for(p: &mut dyn Prepared, x: &[f32], batch: usize, seconds: f64) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..WINDOWS {
        let t0 = Instant::now();
        let mut runs = 0u64;
        while runs < 3 || t0.elapsed().as_secs_f64() < seconds / WINDOWS as f64 {
            p.run(x)?;
            runs += 1;
        }
        best = best.min(t0.elapsed().as_secs_f64() / (runs * batch as u64) as f64);
    }
    Ok(best)
}

/// Print the step profile of `m` (fp32, or the precision `r` names) on the CPU backend.
pub fn time_steps(m: &Model, r: &StepRun) -> Result<i32> {
    let cpu = CpuBackend::on_this_thread(r.threads)?;
    // The graph as it runs: bf16 adds its roundings (whose costs the table shows); int8
    // keeps the fp32 graph's nodes.
    let bf16;
    let (shown, mut p) = match r.precision {
        Precision::Fp32 => (m, cpu.prepare(&m.graph, &m.weights, r.batch)?),
        Precision::Bf16 => {
            bf16 = greenbench_core::bf16::model(m)?;
            (&bf16, cpu.prepare(&bf16.graph, &bf16.weights, r.batch)?)
        }
        Precision::Int8 => {
            let qm = greenbench_harness::runner::quantize_model(
                m,
                &QuantConfig::default(),
                r.calibration,
            )
            .map_err(anyhow::Error::msg)?;
            (m, cpu.prepare_quantized(&qm, r.batch)?)
        }
    };
    let x = generate_inputs(&m.graph, r.batch, m.seed, 0);
    // Warm-up, then the plan as the measured cells run it, then timed.
    run_for(&mut *p, &x, r.batch, 0.25)?;
    let untimed = run_for(&mut *p, &x, r.batch, r.seconds)?;
    p.time_steps()
        .map_err(anyhow::Error::msg)
        .with_context(|| {
            format!(
                "{} ({}, batch {}, {} thread(s)): steps cannot be timed",
                m.name, r.precision, r.batch, r.threads
            )
        })?;
    let timed = run_for(&mut *p, &x, r.batch, r.seconds)?;
    let steps = p.step_times();
    if steps.is_empty() {
        bail!("the CPU backend timed no step of {}", m.name);
    }
    // E.g. a batch-1 team dropped at prepare as slower here: the steps ran on one thread.
    let note = p.execution_note();
    report(shown, r, &steps, (untimed, timed), note.as_deref())?;
    Ok(0)
}

/// Per example seconds of a step.
fn per_example(s: &StepTime) -> f64 {
    s.seconds / s.examples.max(1) as f64
}

/// The step table (or JSON) of `steps`; `(untimed, timed)`: whole runs' time per example
/// without and with the clock; `note`: how the plan used the machine, where it differs from
/// what was asked.
fn report(
    m: &Model,
    r: &StepRun,
    steps: &[StepTime],
    (untimed, timed): (f64, f64),
    note: Option<&str>,
) -> Result<()> {
    let sum: f64 = steps.iter().map(per_example).sum();
    let layers = |s: &StepTime| -> Vec<String> {
        s.nodes
            .iter()
            .map(|&i| m.cost.nodes[i].name.clone())
            .collect()
    };
    let cost = |s: &StepTime| {
        s.nodes.iter().fold((0u64, 0u64), |(macs, fpo), &i| {
            let c = &m.cost.nodes[i].cost;
            (macs + c.macs, fpo + c.fpo())
        })
    };
    // With a batch split across threads, each step's time is summed over the threads.
    let summed = steps.iter().map(|s| s.threads).max().unwrap_or(1);
    let split = summed > 1;
    // A thread team shared the steps: each step's wall time, and each thread's time in it.
    let team = steps.iter().map(|s| s.thread_busy.len()).max().unwrap_or(0);
    let busy_per_example = |s: &StepTime| -> Vec<f64> {
        let mut b: Vec<f64> = s
            .thread_busy
            .iter()
            .map(|b| b / s.examples.max(1) as f64)
            .collect();
        b.resize(team, 0.0);
        b
    };
    // The team's use of its threads in a step: their busy time over threads x wall time.
    let team_use =
        |s: &StepTime| busy_per_example(s).iter().sum::<f64>() / (team as f64 * per_example(s));
    if let Format::Json = r.format {
        let rows: Vec<serde_json::Value> = steps
            .iter()
            .map(|s| {
                let (macs, fpo) = cost(s);
                serde_json::json!({
                    "kernel": s.kernel,
                    "nodes": s.nodes,
                    "layers": layers(s),
                    "macs_per_example": macs,
                    "fpo_per_example": fpo,
                    "seconds_per_example": per_example(s),
                    "share": per_example(s) / sum,
                    "thread_busy_seconds_per_example": busy_per_example(s),
                })
            })
            .collect();
        let v = serde_json::json!({
            "model": m.name,
            "precision": r.precision,
            "batch": r.batch,
            "threads": r.threads,
            "thread_time": split,
            "team_threads": team,
            "execution_note": note,
            "untimed_seconds_per_example": untimed,
            "timed_seconds_per_example": timed,
            "steps_seconds_per_example": sum,
            "steps": rows,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let per = if split { "thread-us/ex" } else { "us/ex" };
    // int8 layers do integer operations: their rate is of the fp32 model's counted work.
    let rate = if r.precision == Precision::Int8 {
        "Gop/s"
    } else {
        "GFPO/s"
    };
    let team_cols = if team > 0 {
        "|>busy us/ex by thread|>use"
    } else {
        ""
    };
    let mut t = Table::new(&format!(
        "step|kernel|layers|output|>MACs/ex|>{per}|>share|>{rate}{team_cols}"
    ));
    for (k, s) in steps.iter().enumerate() {
        let (macs, fpo) = cost(s);
        let ls = layers(s);
        let t_ex = per_example(s);
        let mut row = vec![
            k.to_string(),
            s.kernel.clone(),
            if ls.is_empty() {
                "(the model's input)".into()
            } else {
                ls.join(" + ")
            },
            s.nodes.last().map_or_else(
                || shape(&m.graph.input.shape, None),
                |&i| shape(&m.cost.nodes[i].output_shape, None),
            ),
            thousands(macs),
            format!("{:.2}", t_ex * 1e6),
            format!("{:.1} %", 100.0 * t_ex / sum),
            if fpo > 0 && t_ex > 0.0 {
                format!("{:.1}", fpo as f64 / t_ex / 1e9)
            } else {
                "-".into()
            },
        ];
        if team > 0 {
            let b: Vec<String> = busy_per_example(s)
                .iter()
                .map(|b| format!("{:.2}", b * 1e6))
                .collect();
            row.push(b.join(" / "));
            row.push(if t_ex > 0.0 {
                format!("{:.0} %", 100.0 * team_use(s))
            } else {
                "-".into()
            });
        }
        t.row(row);
    }
    println!(
        "{} — {}, CPU backend, batch {}, {} thread(s): time per step of the backend's plan, \
         per example ({:.2} s of runs with the clock read around each step)",
        m.name, r.precision, r.batch, r.threads, r.seconds
    );
    print!("{}", t.render());
    let threads_note = if split {
        format!(
            "; the batch is split across {summed} threads, so a step's time is summed over them \
             (thread time): the steps add up to about {summed} times the wall time"
        )
    } else if team > 0 {
        format!(
            "; a team of {team} threads shared each step (the batch is too small to split): \
             us/ex is the team's wall time in the step, busy the time each thread (the calling \
             thread first) spent computing its parts of it, use their sum over {team} x the \
             wall time (a step run whole by one thread while the others wait reads at most \
             {:.0} %)",
            100.0 / team as f64
        )
    } else {
        String::new()
    };
    if r.precision == Precision::Int8 {
        println!(
            "Gop/s: the fp32 model's counted FPO for the step's layers (2 x MACs + the rest) per \
             second, as int8 operations stand in for them"
        );
    }
    println!(
        "steps: {} an example in all (the mean over the timed runs){threads_note}. Whole runs, \
         fastest of {WINDOWS} windows: {} an example timed, {} untimed (the plan as the \
         measured cells run it; the difference is the clock's cost and the machine's spread). \
         A diagnosis, not a measured cell: `greenbench run` measures those.",
        duration(sum),
        duration(timed),
        duration(untimed),
    );
    if let Some(note) = note {
        println!("note: {note}");
    }
    Ok(())
}
