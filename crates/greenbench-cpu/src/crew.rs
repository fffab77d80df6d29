//! A crew: the threads of one run walking the same list of phases. Each phase is either
//! whole (one step, run by the calling thread while the others wait) or split into units
//! that every thread claims from atomic counters; nobody starts phase k + 1 before every
//! unit of phase k is done, and nobody sleeps between phases (a rayon fork-join per step
//! cost a helper's wake-up, 20-40 us on the dev VM, each time). A helper that wakes late
//! just joins at the current phase. The fp32 team (`team`) and the int8 team
//! (`int8::team`) both walk their phases here; this file knows nothing of steps.
//!
//! A crew can also time its phases (`start_clock`, for `inspect --time`): the team's wall time
//! of each phase as the calling thread sees it, and each thread's time inside its units.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A phase's times over the runs since [`Crew::start_clock`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PhaseTime {
    /// The team's wall time in the phase: from the end of the previous phase (or the start of
    /// the run) to the moment the calling thread saw every unit done.
    pub wall: Duration,
    /// Per thread (the calling thread first), the time spent inside its units of the phase.
    pub busy: Vec<Duration>,
}

/// A step's wall seconds over the timed runs and each thread's busy seconds in it
/// ([`Crew::step_seconds`]).
pub(crate) type StepSeconds = (f64, Vec<f64>);

/// The phase clock's counters (nanoseconds, summed over the timed runs).
struct Clock {
    on: AtomicBool,
    runs: AtomicU64,
    wall: Vec<AtomicU64>,
    /// Per phase and thread.
    busy: Vec<AtomicU64>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The phases' unit counts and the counters of their claims.
pub(crate) struct Crew {
    /// Per phase: its unit count, and whether it is whole (one unit, on the calling thread).
    phases: Vec<(usize, bool)>,
    /// Per phase and thread slot: units of the slot's range claimed so far.
    claimed: Vec<AtomicUsize>,
    done: Vec<AtomicUsize>,
    threads: usize,
    clock: Clock,
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
            clock: Clock {
                on: AtomicBool::new(false),
                runs: AtomicU64::new(0),
                wall: (0..n).map(|_| AtomicU64::new(0)).collect(),
                busy: (0..n * threads).map(|_| AtomicU64::new(0)).collect(),
            },
        }
    }

    /// Time the phases of the runs from now on (a clock read around every unit and at every
    /// phase's end, which untimed runs never pay); the counters start from zero.
    pub(crate) fn start_clock(&self) {
        let c = &self.clock;
        for a in c.wall.iter().chain(&c.busy).chain([&c.runs]) {
            a.store(0, Ordering::Relaxed);
        }
        c.on.store(true, Ordering::Relaxed);
    }

    /// The timed runs and each phase's times over them; `None` when the clock was not started.
    pub(crate) fn phase_times(&self) -> Option<(u64, Vec<PhaseTime>)> {
        let c = &self.clock;
        if !c.on.load(Ordering::Relaxed) {
            return None;
        }
        let ns = |a: &AtomicU64| Duration::from_nanos(a.load(Ordering::Relaxed));
        let n = self.threads;
        let times = (0..self.phases.len())
            .map(|k| PhaseTime {
                wall: ns(&c.wall[k]),
                busy: c.busy[k * n..(k + 1) * n].iter().map(ns).collect(),
            })
            .collect();
        Some((c.runs.load(Ordering::Relaxed), times))
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// The timed runs and, for `steps` steps where phase k belongs to step `phase_step[k]`,
    /// the team's wall seconds in each step and each thread's busy seconds (a step's phases
    /// summed); `None` when the clock was not started.
    pub(crate) fn step_seconds(
        &self,
        phase_step: impl Iterator<Item = usize>,
        steps: usize,
    ) -> Option<(u64, Vec<StepSeconds>)> {
        let (runs, times) = self.phase_times()?;
        let mut per_step = vec![(0.0, vec![0.0; self.threads]); steps];
        for (i, t) in phase_step.zip(times) {
            let s = &mut per_step[i];
            s.0 += t.wall.as_secs_f64();
            s.1.iter_mut()
                .zip(&t.busy)
                .for_each(|(a, b)| *a += b.as_secs_f64());
        }
        Some((runs, per_step))
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
        let timed = self.clock.on.load(Ordering::Relaxed);
        self.fork(unit, 0, self.threads, timed);
        if timed {
            self.clock.runs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Start the walks of threads `lo..hi` with nested `rayon::join`s (stack jobs: no heap
    /// allocation per run, unlike `rayon::scope`); the calling thread walks as `lo` at once.
    fn fork(&self, unit: &(dyn Fn(usize, usize) + Sync), lo: usize, hi: usize, timed: bool) {
        if hi - lo <= 1 {
            match timed {
                true => self.walk::<true>(unit, lo),
                false => self.walk::<false>(unit, lo),
            }
            return;
        }
        let mid = lo + (hi - lo).div_ceil(2);
        rayon::join(
            || self.fork(unit, lo, mid, timed),
            || self.fork(unit, mid, hi, timed),
        );
    }

    /// One thread's walk. Whole phases stay on the calling thread (`me == 0`), where small
    /// steps' data is cached. Split phases: thread t owns units [t U / n, (t + 1) U / n), the
    /// same part in every step, so most of what it reads it wrote itself; it takes its own
    /// units first, then helps with the others' that are still unclaimed. Phases are
    /// strictly ordered by acquire/release on `done`. `TIMED`: the phase clock is read.
    fn walk<const TIMED: bool>(&self, unit: &(dyn Fn(usize, usize) + Sync), me: usize) {
        let n = self.threads;
        let mut phase_start = TIMED.then(Instant::now);
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
                    if TIMED {
                        let t0 = Instant::now();
                        unit(k, u);
                        self.clock.busy[k * n + me]
                            .fetch_add(nanos(t0.elapsed()), Ordering::Relaxed);
                    } else {
                        unit(k, u);
                    }
                    self.done[k].fetch_add(1, Ordering::Release);
                }
            }
            while self.done[k].load(Ordering::Acquire) < units {
                std::hint::spin_loop();
            }
            if let Some(t0) = phase_start.as_mut()
                && me == 0
            {
                let now = Instant::now();
                self.clock.wall[k].fetch_add(nanos(now - *t0), Ordering::Relaxed);
                *t0 = now;
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

    /// The phase clock: a whole phase's time is the calling thread's, helpers never in it; a
    /// split phase's units are each counted once in some thread's busy time; every wall covers
    /// the calling thread's busy time in its phase; untimed crews report nothing.
    #[test]
    fn the_phase_clock_counts_walls_and_busy_time() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let phases = vec![(1, true), (6, false), (1, true)];
        let crew = Crew::new(phases, 2);
        let sleep = |ms: u64| std::thread::sleep(Duration::from_millis(ms));
        let work = |k: usize, _u: usize| match k {
            0 => sleep(4),
            1 => sleep(1),
            _ => sleep(2),
        };
        pool.install(|| crew.run(&work));
        assert!(crew.phase_times().is_none(), "no clock started");
        crew.start_clock();
        const RUNS: u32 = 3;
        let mut elapsed = Duration::ZERO;
        for _ in 0..RUNS {
            let t0 = Instant::now();
            pool.install(|| crew.run(&work));
            elapsed += t0.elapsed();
        }
        let (runs, t) = crew.phase_times().expect("timed");
        assert_eq!(runs, u64::from(RUNS));
        for (k, ms) in [(0, 4), (2, 2)] {
            assert!(t[k].busy[0] >= Duration::from_millis(ms) * RUNS, "{t:?}");
            assert_eq!(
                t[k].busy[1],
                Duration::ZERO,
                "a helper in a whole phase: {t:?}"
            );
        }
        let split: Duration = t[1].busy.iter().sum();
        assert!(split >= Duration::from_millis(6) * RUNS, "{t:?}");
        for p in &t {
            assert!(p.wall >= p.busy[0], "{t:?}");
        }
        // The walls lie inside the runs, and every thread's busy time inside the walls.
        let wall: Duration = t.iter().map(|p| p.wall).sum();
        assert!(wall <= elapsed, "{wall:?} of {elapsed:?}: {t:?}");
        for th in 0..2 {
            assert!(
                t.iter().map(|p| p.busy[th]).sum::<Duration>() <= wall,
                "{t:?}"
            );
        }
        // Restarting the clock starts from zero.
        crew.start_clock();
        assert_eq!(crew.phase_times().unwrap().0, 0);
        assert!(
            crew.phase_times()
                .unwrap()
                .1
                .iter()
                .all(|p| p.wall == Duration::ZERO)
        );
    }
}
