//! The pixels-in-lanes form of a convolution of few output channels (at most 8) over few
//! input bytes per kernel row (LeNet-5's first layer: one channel, 5x5, stride 1;
//! MobileNet's: three channels, 3x3, stride 2): 16 output pixels of a row in a register's
//! lanes, each lane's four bytes four neighbouring bytes of its window's kernel row (taps
//! times input channels: lane `j` gets bytes `j sw cin + 4g .. + 4` by `vpermb` of one
//! 64-byte load of the padded image row, or `vpermt2b` of two where 16 windows span more
//! than 64 bytes), times each output channel's four weights broadcast (`vpdpbusd`), one
//! accumulator per channel.
//!
//! The channels-in-lanes tile ([`super::gemm`]'s in-place VNNI form) fills 6 of its 16 lanes
//! with LeNet-5's 6 channels and reads one broadcast per pixel and quad; here every lane is a
//! pixel: `kh * ceil(kw cin / 4) * cout` `vpdpbusd` per 16 pixels against
//! `16 * kh * ceil(kw cin / 4)`.
//! The epilogue runs per channel register ([`Epi::per_lane_block`]), four channels packed to
//! bytes together ([`Epi::pack4`]), and one `vpermt2b` interleaves them into the pixels'
//! channel order (NHWC) for the store. Integer sums are exact: bit for bit the GEMM's result.
//!
//! A 2x2 stride-2 max pool after the layer (LeNet-5's pool1) fuses in ([`PixelLanes::pool2`]):
//! the kernel computes two output rows of up to 32 pixels, takes the larger integer sum of
//! each 2x2 window in registers, and finishes only the pooled sums. The requantizing epilogue
//! is monotone (non-negative multipliers, a clamp), so the epilogue of the largest sum is the
//! largest of the four epilogues: bit for bit the pool of the layer's output, with a quarter
//! of the epilogues, a quarter of the stores and no pool step.

use super::epilogue::Epi;
use greenbench_core::graph::ConvGeom;
use std::ops::Range;

/// The most output channels this form runs (two 4-channel packs, 128 bytes of table).
pub(super) const MAX_LANE_CHANNELS: usize = 8;

/// A few-channel convolution's weights and epilogue for the pixels-in-lanes kernel.
pub(super) struct PixelLanes {
    geom: ConvGeom,
    /// Quads per kernel row: `ceil(kw cin / 4)`.
    groups: usize,
    /// Quad `q = ky * groups + g`'s four weights (bytes `4g..4g + 4` of kernel row `ky`'s
    /// `kw cin` (tap, input channel) run, zero past it) for channel `c` as one int32 at
    /// `q * 8 + c` (channels past `cout`: zero).
    w: Vec<i32>,
    /// The epilogue in per-channel 16-lane blocks ([`Epi::per_lane_block`]).
    epi: Epi,
    /// `vpermb` (`vpermt2b`) indices, 64 per quad `g` of a row: lane `j` gets bytes
    /// `j sw cin + 4g .. + 4` of the loaded 64 (128) bytes (made here once, not per call).
    slide: Vec<[u8; 64]>,
    /// Byte `i` of a chunk's output (pixel `i / cout`, channel `i % cout`) from the two
    /// packed registers (`vpermt2b` indices, 128 of them: the first and second 64 bytes).
    order: [u8; 128],
    /// A 2x2 stride-2 max pool fused: outputs are pooled pixels.
    pool: bool,
    /// 16 pixels' windows span more than 64 bytes: two loads and `vpermt2b`.
    two: bool,
}

impl PixelLanes {
    /// The form for `c` with HWIO weights `hwio` and the layer's epilogue `epi`, where it
    /// applies and this CPU runs it (AVX-512 F/BW/VL/VNNI/VBMI, the wide epilogue).
    pub(super) fn new(c: ConvGeom, hwio: &[i8], epi: &Epi) -> Option<PixelLanes> {
        // A kernel row's bytes (`kw * cin`, in quads) and the bytes 16 pixels' windows span
        // (`15 sw cin` on from the first pixel's): one 64-byte load, or two.
        let run = c.kw * c.cin;
        let groups = run.div_ceil(4);
        let window = 15 * c.sw * c.cin + 4 * groups;
        let fits = c.groups == 1
            && c.cout <= MAX_LANE_CHANNELS
            && groups <= 12
            && window <= 128
            && epi.wide;
        if !fits || !available() {
            return None;
        }
        let mut w = vec![0i32; c.kh * groups * 8];
        for ky in 0..c.kh {
            for g in 0..groups {
                for co in 0..c.cout {
                    let mut b = [0u8; 4];
                    for (t, v) in b.iter_mut().enumerate() {
                        // Byte 4g + t of the kernel row's run: tap kx, input channel ci.
                        let j = 4 * g + t;
                        if j < run {
                            *v = hwio[(ky * run + j) * c.cout + co] as u8;
                        }
                    }
                    w[(ky * groups + g) * 8 + co] = i32::from_le_bytes(b);
                }
            }
        }
        let mut order = [0u8; 128];
        for (i, o) in order.iter_mut().enumerate().take(16 * c.cout) {
            let (p, co) = (i / c.cout, i % c.cout);
            // `pack4`'s byte of value p of register co % 4: 128-bit lane p / 4, dword
            // 4 (p / 4) + co % 4, byte p % 4 of it; the second pack (channels 4..8) from 64.
            *o = ((co / 4) * 64 + 16 * (p / 4) + 4 * (co % 4) + p % 4) as u8;
        }
        // Lane j's four bytes: its pixel's window from `j sw cin` on, quad g.
        let slide = (0..groups)
            .map(|g| std::array::from_fn(|i| ((i / 4) * c.sw * c.cin + 4 * g + i % 4) as u8))
            .collect();
        Some(PixelLanes {
            geom: c,
            groups,
            w,
            slide,
            epi: epi.per_lane_block(),
            order,
            pool: false,
            two: window > 64,
        })
    }

    /// Fuse a 2x2 stride-2 max pool (no padding) of this layer's output: `false` (and no
    /// change) where the output's sides are odd or the epilogue is not monotone in the sums
    /// ([`Epi::monotone`]), where the pool's window would not be a max of the epilogues.
    pub(super) fn pool2(&mut self) -> bool {
        let c = &self.geom;
        let single = c.cin == 1 && c.sh == 1 && c.sw == 1;
        if !single || !c.ho.is_multiple_of(2) || !c.wo.is_multiple_of(2) || !self.epi.monotone() {
            return false;
        }
        self.pool = true;
        true
    }

    /// Whether a 2x2 max pool is fused ([`Self::pool2`]).
    pub(super) fn pooled(&self) -> bool {
        self.pool
    }

    /// The output pixels of one image: `ho * wo`, or the pooled image's with a fused pool.
    pub(super) fn pixels(&self) -> usize {
        let c = &self.geom;
        if self.pool {
            (c.ho / 2) * (c.wo / 2)
        } else {
            c.ho * c.wo
        }
    }

    /// Output pixels `pixels` (row-major over `ho x wo`, or over the pooled image's
    /// `ho / 2 x wo / 2` with a fused pool: [`Self::pixels`]) of one image from its padded image
    /// `src` (NHWC, the zero point around it, 64 bytes past the last row's last window)
    /// into
    /// `y` (pixel `pixels.start` first, `cout` bytes each).
    pub(super) fn run(&self, src: &[u8], pixels: Range<usize>, y: &mut [u8]) {
        let c = &self.geom;
        // A padded row's bytes.
        let wp = (c.w + c.pad_left + c.pad_right) * c.cin;
        let hp = c.h + c.pad_top + c.pad_bottom;
        // The last chunk's loads start at the last output pixel's window (a second load, with
        // `two`, is masked to the image's end).
        let last = ((c.ho - 1) * c.sh + c.kh - 1) * wp + (c.wo - 1) * c.sw * c.cin;
        assert!(src.len() >= last + 64 && (c.ho - 1) * c.sh + c.kh <= hp);
        assert!(y.len() >= pixels.len() * c.cout && pixels.end <= self.pixels());
        // SAFETY: `new` returned `Some` only where the CPU has the kernel's features; the
        // loads are inside `src` (asserted above), the stores inside `y`'s pixels.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match c.cout {
                1 => self.rows::<1>(src, wp, pixels, y),
                2 => self.rows::<2>(src, wp, pixels, y),
                3 => self.rows::<3>(src, wp, pixels, y),
                4 => self.rows::<4>(src, wp, pixels, y),
                5 => self.rows::<5>(src, wp, pixels, y),
                6 => self.rows::<6>(src, wp, pixels, y),
                7 => self.rows::<7>(src, wp, pixels, y),
                _ => self.rows::<8>(src, wp, pixels, y),
            }
        }
    }

    /// [`Self::run`] for `C` channels: the epilogue's form chosen once.
    ///
    /// # Safety
    /// As [`Self::run`] checks.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    unsafe fn rows<const C: usize>(
        &self,
        src: &[u8],
        wp: usize,
        pixels: Range<usize>,
        y: &mut [u8],
    ) {
        use super::epilogue::{ANY_MODE, HIGH_MODE};
        // SAFETY: AVX-512 F.
        let k = unsafe { self.epi.regs() };
        // SAFETY: the caller's.
        unsafe {
            match (self.pool, k.is_high()) {
                (false, true) if self.two => {
                    self.chunks::<C, HIGH_MODE, true>(src, wp, pixels, y, &k)
                }
                (false, false) if self.two => {
                    self.chunks::<C, ANY_MODE, true>(src, wp, pixels, y, &k)
                }
                (false, true) => self.chunks::<C, HIGH_MODE, false>(src, wp, pixels, y, &k),
                (false, false) => self.chunks::<C, ANY_MODE, false>(src, wp, pixels, y, &k),
                (true, true) => self.pooled_chunks::<C, HIGH_MODE>(src, wp, pixels, y, &k),
                (true, false) => self.pooled_chunks::<C, ANY_MODE>(src, wp, pixels, y, &k),
            }
        }
    }

    /// The pixels in chunks of up to 16 inside one output row each.
    ///
    /// # Safety
    /// As [`Self::run`] checks; `k` this epilogue's registers, `M` as they allow.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
    unsafe fn chunks<const C: usize, const M: u8, const TWO: bool>(
        &self,
        src: &[u8],
        wp: usize,
        pixels: Range<usize>,
        y: &mut [u8],
        k: &super::epilogue::EpiRegs,
    ) {
        use std::arch::x86_64::*;
        let c = &self.geom;
        let (groups, wo) = (self.groups, c.wo);
        // SAFETY: this function's features.
        let (slide, order0, order1) = unsafe { self.tables() };
        let wq = self.w.as_ptr();
        let sp = src.as_ptr();
        let (sh, step) = (c.sh, c.sw * c.cin);
        // SAFETY (whole body): the loads read `sp + (oy sh + ky) wp + ox sw cin .. + 64`,
        // inside `src` (the caller's bound), and with `TWO` the 64 bytes after them masked to
        // `src`'s end; the stores write the chunk's `n * C` bytes of `y`.
        unsafe {
            let mut p = pixels.start;
            while p < pixels.end {
                let (oy, ox) = (p / wo, p % wo);
                let n = (wo - ox).min(16).min(pixels.end - p);
                let mut acc = [_mm512_setzero_si512(); C];
                for ky in 0..c.kh {
                    let at = (oy * sh + ky) * wp + ox * step;
                    let row = _mm512_loadu_si512(sp.add(at) as *const __m512i);
                    let next = if TWO {
                        let left = src.len() - (at + 64);
                        _mm512_maskz_loadu_epi8(bytes_mask(left), sp.add(at + 64) as *const i8)
                    } else {
                        row
                    };
                    for g in 0..groups {
                        let x = if TWO {
                            _mm512_permutex2var_epi8(row, slide[g], next)
                        } else {
                            _mm512_permutexvar_epi8(slide[g], row)
                        };
                        let wg = wq.add((ky * groups + g) * 8);
                        for co in 0..C {
                            acc[co] =
                                _mm512_dpbusd_epi32(acc[co], x, _mm512_set1_epi32(*wg.add(co)));
                        }
                    }
                }
                let mut e = [_mm512_setzero_si512(); 8];
                for co in 0..C {
                    e[co] = self.epi.vec16_in::<false, M>(k, acc[co], 16 * co);
                }
                let out = y.as_mut_ptr().add((p - pixels.start) * C) as *mut i8;
                self.store::<C>(k, &e, n * C, out, order0, order1);
                p += n;
            }
        }
    }

    /// [`Self::chunks`] with the 2x2 max pool fused: pooled pixels in chunks of up to 16
    /// inside one pooled row, each from two output rows of up to 32 pixels (two registers a
    /// row and channel). Each input row's slides feed both output rows (kernel rows `r` and
    /// `r - 1`); the two rows' sums meet in a `vpmaxsd`, then the even and odd pixels of the
    /// 32 in another, and only the pooled sums are finished.
    ///
    /// # Safety
    /// As [`Self::run`] checks (with a fused pool); `k` this epilogue's registers, `M` as
    /// they allow.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    #[allow(clippy::needless_range_loop)] // index loops keep the accumulators in registers
    unsafe fn pooled_chunks<const C: usize, const M: u8>(
        &self,
        src: &[u8],
        wp: usize,
        pixels: Range<usize>,
        y: &mut [u8],
        k: &super::epilogue::EpiRegs,
    ) {
        use std::arch::x86_64::*;
        let c = &self.geom;
        let (groups, pw, kh) = (self.groups, c.wo / 2, c.kh);
        // SAFETY: this function's features.
        let (slide, order0, order1) = unsafe { self.tables() };
        let wq = self.w.as_ptr();
        let sp = src.as_ptr();
        // SAFETY (whole body): the loads read `sp + (oy + r) * wp + ox .. + 64` for output
        // rows `oy, oy + 1` (`oy + r <= ho - 2 + kh = hp - 1`) and `ox <= wo - 1`, inside
        // `src` (the caller's bound); the stores write the chunk's `n * C` bytes of `y`.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
            let mut q = pixels.start;
            while q < pixels.end {
                let (py, px) = (q / pw, q % pw);
                let n = (pw - px).min(16).min(pixels.end - q);
                let oy = 2 * py;
                // Per half (output pixels `2 px + 16 h ..`): the larger of the two rows' sums.
                let mut top = [[_mm512_setzero_si512(); C]; 2];
                for h in 0..1 + usize::from(n > 8) {
                    let ox = 2 * px + 16 * h;
                    let (mut a0, mut a1) =
                        ([_mm512_setzero_si512(); C], [_mm512_setzero_si512(); C]);
                    for r in 0..=kh {
                        let row = _mm512_loadu_si512(sp.add((oy + r) * wp + ox) as *const __m512i);
                        for g in 0..groups {
                            let x = _mm512_permutexvar_epi8(slide[g], row);
                            if r < kh {
                                let wg = wq.add((r * groups + g) * 8);
                                for co in 0..C {
                                    a0[co] = _mm512_dpbusd_epi32(
                                        a0[co],
                                        x,
                                        _mm512_set1_epi32(*wg.add(co)),
                                    );
                                }
                            }
                            if r > 0 {
                                let wg = wq.add(((r - 1) * groups + g) * 8);
                                for co in 0..C {
                                    a1[co] = _mm512_dpbusd_epi32(
                                        a1[co],
                                        x,
                                        _mm512_set1_epi32(*wg.add(co)),
                                    );
                                }
                            }
                        }
                    }
                    for co in 0..C {
                        top[h][co] = _mm512_max_epi32(a0[co], a1[co]);
                    }
                }
                let mut e = [_mm512_setzero_si512(); 8];
                for co in 0..C {
                    let (t0, t1) = (top[0][co], top[1][co]);
                    let m = _mm512_max_epi32(
                        _mm512_permutex2var_epi32(t0, even, t1),
                        _mm512_permutex2var_epi32(t0, odd, t1),
                    );
                    e[co] = self.epi.vec16_in::<false, M>(k, m, 16 * co);
                }
                let out = y.as_mut_ptr().add((q - pixels.start) * C) as *mut i8;
                self.store::<C>(k, &e, n * C, out, order0, order1);
                q += n;
            }
        }
    }

    /// The kernels' index registers: the quads' slides (up to 12) and the two halves of
    /// the output order.
    ///
    /// # Safety
    /// AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tables(
        &self,
    ) -> (
        [std::arch::x86_64::__m512i; 12],
        std::arch::x86_64::__m512i,
        std::arch::x86_64::__m512i,
    ) {
        use std::arch::x86_64::*;
        let mut slide = [_mm512_setzero_si512(); 12];
        // SAFETY: 64 bytes each (`slide` entries and both halves of `order`).
        unsafe {
            for (s, b) in slide.iter_mut().zip(&self.slide) {
                *s = _mm512_loadu_si512(b.as_ptr() as *const __m512i);
            }
            let order0 = _mm512_loadu_si512(self.order.as_ptr() as *const __m512i);
            let order1 = _mm512_loadu_si512(self.order.as_ptr().add(64) as *const __m512i);
            (slide, order0, order1)
        }
    }

    /// Pack `C` finished channel registers to bytes and store `bytes` of them, pixel by
    /// pixel (NHWC), at `out`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VBMI; `out` holds `bytes` bytes; `order0` / `order1` the `order` table.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
    #[inline]
    unsafe fn store<const C: usize>(
        &self,
        k: &super::epilogue::EpiRegs,
        e: &[std::arch::x86_64::__m512i; 8],
        bytes: usize,
        out: *mut i8,
        order0: std::arch::x86_64::__m512i,
        order1: std::arch::x86_64::__m512i,
    ) {
        use std::arch::x86_64::*;
        // SAFETY: the caller's.
        unsafe {
            let a = self.epi.pack4(k, [e[0], e[1], e[2], e[3]]);
            let b = if C > 4 {
                self.epi.pack4(k, [e[4], e[5], e[6], e[7]])
            } else {
                a
            };
            let lo = _mm512_permutex2var_epi8(a, order0, b);
            _mm512_mask_storeu_epi8(out, bytes_mask(bytes), lo);
            if bytes > 64 {
                let hi = _mm512_permutex2var_epi8(a, order1, b);
                _mm512_mask_storeu_epi8(out.add(64), bytes_mask(bytes - 64), hi);
            }
        }
    }
}

/// The mask of a register's first `n` bytes (all 64 from 64 on).
fn bytes_mask(n: usize) -> u64 {
    if n >= 64 { !0 } else { (1u64 << n) - 1 }
}

/// Whether this CPU runs the kernel (the wide int8 loops' AVX-512 F/BW/VL/DQ, and VNNI and
/// VBMI).
fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::epilogue::wide_int8()
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
