//! Spin-waiting: a thread that finished its share early stays awake for the others. Used by
//! the thread team, the executor and the packed GEMM; it knows none of them.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How long a worker that finished its images early spins for the others, so that it is
/// still awake (not parked by rayon) when the next run starts: with back-to-back runs a
/// parked helper's wake-up cost about 70 us per batch-32 run on the dev VM (ds-cnn b32:
/// 23.8 us/example against 21.6 at batch 128).
pub(crate) const FINISH_SPIN: std::time::Duration = std::time::Duration::from_micros(500);

/// Spin until `finished` reaches `n` or `max` has passed (then the caller's own, sleeping,
/// wait takes over): a thread that is done early stays awake for the others.
pub(crate) fn spin_until(finished: &AtomicUsize, n: usize, max: std::time::Duration) {
    let t = std::time::Instant::now();
    while finished.load(Ordering::Acquire) < n && t.elapsed() < max {
        std::hint::spin_loop();
    }
}
