//! A dispatch profile: the device time of each dispatch of a prepared model, for finding which
//! kernel a slow GPU cell spends its time in (`examples/dispatch_profile.rs` prints it).
//!
//! Each dispatch runs in a compute pass of its own, between two timestamp writes, so the
//! profile's sum is close to but not the same as a cell's device time (one pass for the
//! whole forward pass): it is a diagnostic, never a figure for a table.

use crate::{GpuBackend, GpuPrepared};
use greenbench_core::backend::BackendError;
use greenbench_core::graph::Graph;
use greenbench_core::weights::Weights;
use std::time::Duration;

/// One dispatch's device time, the median over the profiled runs.
#[derive(Debug, Clone)]
pub struct DispatchTime {
    /// The WGSL entry point.
    pub entry: &'static str,
    /// Workgroups dispatched (x, y).
    pub groups: (u32, u32),
    pub median: Duration,
}

impl GpuBackend {
    /// Prepare `graph` at `batch` and time each of its dispatches over `runs` runs on
    /// `input`. Fails on an adapter without timestamp queries.
    pub fn profile_dispatches(
        &self,
        graph: &Graph,
        weights: &Weights,
        batch: usize,
        input: &[f32],
        runs: usize,
    ) -> Result<Vec<DispatchTime>, BackendError> {
        let mut p = GpuPrepared::new(
            self.ctx.clone(),
            Some(graph),
            weights,
            batch,
            None,
            self.binding_limit,
        )?;
        profile(&mut p, input, runs)
    }

    /// [`Self::profile_dispatches`] of the peak's `[m, k] x [k, n]` matrix product.
    pub fn profile_matmul(
        &self,
        (m, k, n): (usize, usize, usize),
        runs: usize,
    ) -> Result<Vec<DispatchTime>, BackendError> {
        let empty = Weights { per_node: vec![] };
        let mut p = GpuPrepared::new(
            self.ctx.clone(),
            None,
            &empty,
            m,
            Some((k, n)),
            self.binding_limit,
        )?;
        profile(&mut p, &vec![0.5; m * k], runs)
    }
}

fn profile(
    p: &mut GpuPrepared,
    input: &[f32],
    runs: usize,
) -> Result<Vec<DispatchTime>, BackendError> {
    let ctx = p.ctx.clone();
    if !ctx.timestamps {
        return Err(BackendError::Invalid(
            "this adapter has no timestamp queries: no dispatch profile".into(),
        ));
    }
    let failed = |message: String| BackendError::Failed {
        backend: "gpu".into(),
        message,
    };
    let n = p.dispatches.len();
    let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
        label: Some("dispatch times"),
        ty: wgpu::QueryType::Timestamp,
        count: (2 * n) as u32,
    });
    let bytes = (16 * n) as u64;
    let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("dispatch timestamps"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let read = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("dispatch timestamps readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    ctx.queue
        .write_buffer(&p.input, 0, bytemuck::cast_slice(input));
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(runs); n];
    // One run more than asked: the first (pipelines' first use) is dropped.
    for run in 0..=runs {
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("dispatch profile"),
            });
        for (i, d) in p.dispatches.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(d.entry),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &queries,
                    beginning_of_pass_write_index: Some((2 * i) as u32),
                    end_of_pass_write_index: Some((2 * i + 1) as u32),
                }),
            });
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
        }
        enc.resolve_query_set(&queries, 0..(2 * n) as u32, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
        ctx.queue.submit([enc.finish()]);
        read.slice(..).map_async(wgpu::MapMode::Read, |_| {});
        ctx.wait().map_err(failed)?;
        {
            let view = read
                .slice(..)
                .get_mapped_range()
                .map_err(|e| failed(format!("reading timestamps: {e}")))?;
            let ticks: &[u64] = bytemuck::cast_slice(&view[..]);
            if run > 0 {
                for (i, s) in samples.iter_mut().enumerate() {
                    let dt = ticks[2 * i + 1].saturating_sub(ticks[2 * i]);
                    s.push(dt as f64 * ctx.period_ns as f64);
                }
            }
        }
        read.unmap();
    }
    Ok(p.dispatches
        .iter()
        .zip(samples)
        .map(|(d, mut s)| {
            s.sort_by(f64::total_cmp);
            let median = s.get(s.len() / 2).copied().unwrap_or(0.0);
            DispatchTime {
                entry: d.entry,
                groups: d.groups,
                median: Duration::from_nanos(median as u64),
            }
        })
        .collect())
}
