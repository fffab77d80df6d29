//! A max pool fused into the fp32 tile's convolution (the first layer and pool of
//! SqueezeNet, ResNet-50 and DenseNet-121: a 111x111x64 or 112x112x64 output, 3.2 MB, read
//! back whole by a pool step). Here a unit of work is a band of the pool's output rows of
//! one image: the tile computes the convolution rows under the band's windows into a
//! per-thread scratch (at most [`BAND_FLOATS`], so it stays in L2) and the pool reads them
//! from there. The convolution's output never goes to memory; where windows overlap
//! (3x3 stride 2) a band's first row is its neighbour's last, computed by both.

use super::DirectPlan;
use crate::direct::pool::{Narrow, max_pool_band};
use crate::kernels::AVec;
use greenbench_core::graph::PoolGeom;
use std::cell::RefCell;

/// The scratch of one band of convolution rows, in floats (512 KiB: inside L2 on the
/// machines measured, 1-2 MiB a core, beside the layer's weights).
const BAND_FLOATS: usize = 1 << 17;

thread_local! {
    /// A band's convolution rows (grown on a thread's first band, reused after).
    static SCRATCH: RefCell<AVec<f32>> = RefCell::new(AVec::default());
}

/// The fused max pool: its geometry over the convolution's output, its gathers (where
/// the narrow form runs), the batch, and the most pool rows a band may hold.
pub(crate) struct TilePool {
    g: PoolGeom,
    narrow: Option<Narrow>,
    batch: usize,
    /// The largest band whose convolution rows fit [`BAND_FLOATS`] (set at plan time).
    max_band: usize,
}

impl TilePool {
    /// Convolution rows under output rows `oys`' windows (clipped to the image).
    fn conv_rows(&self, oys: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let (mut lo, mut hi) = (usize::MAX, 0);
        for oy in oys {
            let w = self.g.rows(oy);
            if !w.is_empty() {
                (lo, hi) = (lo.min(w.start), hi.max(w.end));
            }
        }
        if lo < hi { lo..hi } else { 0..0 }
    }

    /// The largest band (pool rows) whose convolution rows fit [`BAND_FLOATS`], at least 1.
    fn max_band(&self) -> usize {
        let (ho, row) = (self.g.ho, self.g.w * self.g.c);
        let mut band = 1;
        while band < ho && self.conv_rows(0..band + 1).len() * row <= BAND_FLOATS {
            band += 1;
        }
        band
    }

    /// (pool rows per band, bands per image) for `threads`: bands of at most `max_band`
    /// rows; where the batch's bands are few, as many more as make their count a multiple of
    /// the threads (a team's threads take equal runs of units).
    fn layout(&self, threads: usize) -> (usize, usize) {
        let ho = self.g.ho;
        let mut per = ho.div_ceil(self.max_band);
        while threads > 1 && per < ho && self.batch * per < 8 * threads {
            if (self.batch * per).is_multiple_of(threads) {
                break;
            }
            per += 1;
        }
        let band = ho.div_ceil(per);
        (band, ho.div_ceil(band))
    }

    /// Units of work for `threads`: bands over the batch.
    pub(super) fn units(&self, threads: usize) -> usize {
        self.batch * self.layout(threads).1
    }
}

impl DirectPlan {
    /// Whether a max pool `p` over this plan's output fuses into it
    /// ([`Self::with_max_pool`]): the fp32 tile runs it (neither Winograd nor the
    /// pixels-in-lanes form), and the output over the batch has at least `min_floats` values
    /// (`crate::FUSED_POOL_MIN_FLOATS`: where it would not stay in L2 between two steps).
    pub fn takes_max_pool(
        g: &greenbench_core::graph::ConvGeom,
        batch: usize,
        winograd: Option<usize>,
        min_floats: usize,
    ) -> bool {
        g.groups == 1
            && !Self::runs_winograd(g, batch, winograd)
            && !crate::direct::lanes::Lanes::fits(g)
            && batch * g.ho * g.wo * g.cout >= min_floats
    }

    /// This plan with max pool `p` (over its output: `p.h`, `p.w`, `p.c` its sides and
    /// channels) fused: its output is the pooled image. `None` where the plan runs another
    /// form, stores a border, adds a residual or runs on bf16 operands.
    pub fn with_max_pool(mut self, p: PoolGeom) -> Option<Self> {
        let g = self.geo;
        let fits = self.out_pix.is_empty()
            && !self.residual
            && self.bf16.is_none()
            && self.wino.is_none()
            && self.lanes.is_none()
            && (p.h, p.w, p.c) == (g.ho, g.wo, self.cout);
        if !fits {
            return None;
        }
        let batch = self.pixels / (g.ho * g.wo);
        self.out_len = batch * p.ho * p.wo * p.c;
        let mut tp = TilePool {
            narrow: Narrow::new(&p),
            g: p,
            batch,
            max_band: 1,
        };
        tp.max_band = tp.max_band();
        self.tpool = Some(Box::new(tp));
        Some(self)
    }

    /// Unit `u` of the fused pool's ([`TilePool::units`] for `threads`): the band's
    /// convolution rows into this thread's scratch, every channel block, then the band's
    /// pooled rows into `y`.
    ///
    /// # Safety
    /// AVX-512F; `x` as [`Self::compute_unit`] reads it; `y` holds the pooled output, the
    /// band's rows written by this call alone.
    pub(super) unsafe fn tile_pooled_unit(&self, x: &[f32], y: *mut f32, u: usize, threads: usize) {
        let tp = self.tpool.as_ref().expect("a fused pool");
        let (band, per) = tp.layout(threads);
        let (n, a) = (u / per, (u % per) * band);
        assert!(n < tp.batch, "pool unit past the batch");
        let oys = a..(a + band).min(tp.g.ho);
        let rows = tp.conv_rows(oys.clone());
        let (ho, wo) = (self.geo.ho, self.geo.wo);
        let (q0, q1) = ((n * ho + rows.start) * wo, (n * ho + rows.end) * wo);
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let len = (q1 - q0) * self.cout;
            if s.len() < len {
                *s = AVec::zeroed(len);
            }
            let buf = s.as_mut_ptr();
            for b in 0..self.cout.div_ceil(16 * self.v) {
                // SAFETY: AVX-512F (the caller's); pixels q0..q1 land at `buf + (q - q0)
                // cout`, inside the scratch's `len`; their windows inside `x` as for any unit.
                unsafe { self.unit(x.as_ptr(), buf, std::ptr::null(), q0..q1, q0 * self.cout, b) };
            }
            let img = tp.g.ho * tp.g.wo * tp.g.c;
            // SAFETY: the scratch holds convolution rows `rows` of image n, every row under
            // the band's windows; image n's pooled rows are inside `y` (the caller's).
            unsafe {
                max_pool_band(
                    buf,
                    rows.start,
                    &tp.g,
                    tp.narrow.as_ref(),
                    oys,
                    y.add(n * img),
                )
            };
        });
    }
}
