//! A crew: the threads of one run walking the same list of phases. Each phase is either
//! whole (one step, run by the calling thread while the others wait) or split into units
//! that every thread claims from atomic counters; nobody starts phase k + 1 before every
//! unit of phase k is done, and nobody sleeps between phases (a rayon fork-join per step
//! cost a helper's wake-up, 20-40 us on the dev VM, each time). A helper that wakes late
//! just joins at the current phase. The fp32 team (`team`) and the int8 team
//! (`int8::team`) both walk their phases here; this file knows nothing of steps.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The phases' unit counts and the counters of their claims.
pub(crate) struct Crew {
    /// Per phase: its unit count, and whether it is whole (one unit, on the calling thread).
    phases: Vec<(usize, bool)>,
    /// Per phase and thread slot: units of the slot's range claimed so far.
    claimed: Vec<AtomicUsize>,
    done: Vec<AtomicUsize>,
    threads: usize,
}

impl Crew {
    /// A crew of `threads` over `phases` (unit count, whole).
    pub(crate) fn new(phases: Vec<(usize, bool)>, threads: usize) -> Crew {
        let n = phases.len();
        Crew {
            phases,
            claimed: (0..n * threads).map(|_| AtomicUsize::new(0)).collect(),
            done: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            threads,
        }
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// One run: every thread of the current rayon pool's crew walks the phases, calling
    /// `unit(phase, u)` for each unit it claims (whole phases: `unit(phase, 0)` on the
    /// calling thread). The calling thread starts at once; the others join when rayon wakes
    /// them.
    ///
    /// `unit` must be safe to call from several threads at once for distinct units of one
    /// phase (they write disjoint memory and read only what finished phases wrote).
    pub(crate) fn run(&self, unit: &(dyn Fn(usize, usize) + Sync)) {
        for c in self.claimed.iter().chain(&self.done) {
            c.store(0, Ordering::Relaxed);
        }
        self.fork(unit, 0, self.threads);
    }

    /// Start the walks of threads `lo..hi` with nested `rayon::join`s (stack jobs: no heap
    /// allocation per run, unlike `rayon::scope`); the calling thread walks as `lo` at once.
    fn fork(&self, unit: &(dyn Fn(usize, usize) + Sync), lo: usize, hi: usize) {
        if hi - lo <= 1 {
            self.walk(unit, lo);
            return;
        }
        let mid = lo + (hi - lo).div_ceil(2);
        rayon::join(|| self.fork(unit, lo, mid), || self.fork(unit, mid, hi));
    }

    /// One thread's walk. Whole phases stay on the calling thread (`me == 0`), where small
    /// steps' data is cached. Split phases: thread t owns units [t U / n, (t + 1) U / n), the
    /// same part in every step, so most of what it reads it wrote itself; it takes its own
    /// units first, then helps with the others' that are still unclaimed. Phases are
    /// strictly ordered by acquire/release on `done`.
    fn walk(&self, unit: &(dyn Fn(usize, usize) + Sync), me: usize) {
        let n = self.threads;
        for (k, &(units, whole)) in self.phases.iter().enumerate() {
            let slots = if whole { usize::from(me == 0) } else { n };
            for j in 0..slots {
                let slot = (me + j) % n;
                let (lo, hi) = if whole {
                    (0, units)
                } else {
                    (slot * units / n, (slot + 1) * units / n)
                };
                loop {
                    let u = lo + self.claimed[k * n + slot].fetch_add(1, Ordering::Relaxed);
                    if u >= hi {
                        break;
                    }
                    unit(k, u);
                    self.done[k].fetch_add(1, Ordering::Release);
                }
            }
            while self.done[k].load(Ordering::Acquire) < units {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every unit of every phase runs exactly once, and no unit of a phase starts before the
    /// previous phase is complete.
    #[test]
    fn units_run_once_in_phase_order() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let phases = vec![(7, false), (1, true), (5, false), (13, false)];
        let crew = Crew::new(phases.clone(), 3);
        let ran: Vec<Vec<AtomicUsize>> = phases
            .iter()
            .map(|&(u, _)| (0..u).map(|_| AtomicUsize::new(0)).collect())
            .collect();
        let finished: Vec<AtomicUsize> = phases.iter().map(|_| AtomicUsize::new(0)).collect();
        let early = AtomicUsize::new(0);
        for _ in 0..20 {
            ran.iter()
                .flatten()
                .for_each(|c| c.store(0, Ordering::Relaxed));
            finished.iter().for_each(|c| c.store(0, Ordering::Relaxed));
            pool.install(|| {
                crew.run(&|k, u| {
                    if k > 0 && finished[k - 1].load(Ordering::Acquire) < phases[k - 1].0 {
                        early.fetch_add(1, Ordering::Relaxed);
                    }
                    ran[k][u].fetch_add(1, Ordering::Relaxed);
                    finished[k].fetch_add(1, Ordering::Release);
                })
            });
            for c in ran.iter().flatten() {
                assert_eq!(c.load(Ordering::Relaxed), 1);
            }
        }
        assert_eq!(early.load(Ordering::Relaxed), 0);
    }
}
