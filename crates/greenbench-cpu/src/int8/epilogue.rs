//! The integer epilogue of a conv / dense layer (zero-point correction folded into the bias,
//! fixed-point or fp32 requantization, the activation's clamp), per output channel, in an
//! AVX-512 form and a plain loop (the quantize step at an int8 border is `quantize.rs`).

use greenbench_core::quant::{QLinear, Requantizer, round_shift_up};

/// The integer epilogue of a conv / dense layer, per output channel. Its per-channel arrays
/// repeat the channels' values cyclically to a length `span + 64`, `span` a multiple of 16
/// (and at least 256) and of the channel count, so a run of whole pixels is finished in full
/// 16-lane blocks whatever the channel count ([`Epi::finish_run`]), and 16 lanes can be read
/// from any offset below `span + 48`.
pub(super) struct Epi {
    /// Output channels.
    pub(super) ch: usize,
    pub(super) span: usize,
    /// `bias - z_x * sum_k w` (the zero-point correction folded in), or `bias` where the
    /// kernel subtracts the zero point itself (depthwise).
    pub(super) bias: Vec<i32>,
    pub(super) mult: Vec<i32>,
    /// `mult` one channel on (`mult_next[i] = mult[i + 1]`, cyclically): loaded at a block's
    /// start, its even lanes are the block's odd channels' multipliers, where `vpmuldq` reads.
    pub(super) mult_next: Vec<i32>,
    pub(super) shift: Vec<u32>,
    /// The fp32 requantizer's multipliers (empty for the fixed-point one).
    pub(super) scale: Vec<f32>,
    /// The fixed-point requantizer's one shift when every channel shares it and it is 32..=53
    /// (every real multiplier below 1/2 and above 2^-23): results then fit 32 bits before the
    /// clamp, and the zero point rides in the rounding constant (`zy << shift` fits beside
    /// the products: see [`Self::vec16`]).
    pub(super) common_shift: Option<u32>,
    pub(super) zy: i32,
    pub(super) lo: i32,
    pub(super) hi: i32,
    /// Run the AVX-512 form (16 channels at a time).
    pub(super) wide: bool,
}

impl Epi {
    pub(super) fn new(l: &QLinear, col_sums: Option<&[i32]>, wide: bool) -> Epi {
        let bias = match col_sums {
            Some(s) => l
                .bias
                .iter()
                .zip(s)
                .map(|(&b, &s)| (b as i64 - l.x.zero as i64 * s as i64) as i32)
                .collect(),
            None => l.bias.clone(),
        };
        let ch = bias.len();
        let mult: Vec<i32> = l.requant.iter().map(|r| r.multiplier).collect();
        let lcm = ch / gcd(ch, 16) * 16;
        let span = lcm * 256usize.div_ceil(lcm);
        // Tiled 64 channels past `span`: a fused epilogue reads 16 from any channel offset
        // below `span + 48` (a depthwise row's 64-value blocks start anywhere in it).
        fn tile<T: Copy>(v: &[T], span: usize) -> Vec<T> {
            v.iter().copied().cycle().take(span + 64).collect()
        }
        Epi {
            ch,
            span,
            bias: tile(&bias, span),
            mult: tile(&mult, span),
            mult_next: (0..span + 64).map(|i| mult[(i + 1) % ch]).collect(),
            shift: tile(&l.requant.iter().map(|r| r.shift).collect::<Vec<_>>(), span),
            scale: match l.requantizer {
                Requantizer::Fp32 => tile(&l.scale, span),
                Requantizer::Fixed => vec![],
            },
            common_shift: l
                .requant
                .first()
                .map(|r| r.shift)
                .filter(|&s| (32..=53).contains(&s) && l.requant.iter().all(|r| r.shift == s)),
            zy: l.y.zero,
            lo: l.lo as i32,
            hi: l.hi as i32,
            wide,
        }
    }

    /// This epilogue for the VNNI depthwise rows' accumulators, whose 64-value blocks come
    /// out of `vpdpbusd` lane-permuted (`dw_vnni_rows`: register `k`'s lane `L` element `i`
    /// holds value `16 L + 4 k + i` of the block): its arrays hold, at position `64 b + 16 k +
    /// 4 L + i`, the channel of value `64 b + 16 L + 4 k + i`, cyclically over `span` (a
    /// multiple of 64 and of the channel count), so register `k` of a block at `f` meets its
    /// channels at `f % span + 16 k`. The results, packed with `vpackssdw` / `vpackuswb`,
    /// come out in order. Only for [`Self::vec16`] from a block start; `finish` would apply
    /// channels in the wrong order.
    pub(super) fn quad_permuted(&self, span: usize) -> Epi {
        assert!(span.is_multiple_of(64) && span.is_multiple_of(self.ch));
        // Position p of the permuted arrays reads position `src(p)` of these (any copy of
        // the channel: these arrays are cyclic in the channel count).
        self.remapped(span, |p| {
            let (b, j) = (p / 64, p % 64);
            let (k, l, i) = (j / 16, (j % 16) / 4, j % 4);
            (b * 64 + 16 * l + 4 * k + i) % span % self.ch
        })
    }

    /// This epilogue for registers whose 16 lanes are 16 pixels of one channel (the
    /// pixels-in-lanes convolution, `lanes.rs`): position `16 c + i` of its arrays holds
    /// channel `c`'s values, so [`Self::vec16`] at `16 c` finishes channel `c`'s register.
    /// Only for `vec16` at those offsets, `c` below 8.
    pub(super) fn per_lane_block(&self) -> Epi {
        assert!(
            self.ch <= 8,
            "the pixels-in-lanes epilogue holds 8 channels"
        );
        self.remapped(128, |p| (p / 16) % self.ch)
    }

    /// Whether the result never falls as the sum rises, channel by channel (every multiplier
    /// non-negative; the rounding and the clamp are monotone): then the epilogue of the
    /// largest of several sums is the largest of their epilogues, and a max pool can run on
    /// the sums.
    pub(super) fn monotone(&self) -> bool {
        self.mult.iter().all(|&m| m >= 0) && self.scale.iter().all(|&s| s >= 0.0)
    }

    /// This epilogue for `p` neighbouring pixels as one of `p * ch` channels (a widened
    /// convolution, [`super::conv::widened`]): channel `d * ch + c` is channel `c`.
    pub(super) fn widened(&self, p: usize) -> Epi {
        let ch = self.ch * p;
        let lcm = ch / gcd(ch, 16) * 16;
        let mut e = self.remapped(lcm * 256usize.div_ceil(lcm), |q| q % self.ch);
        e.ch = ch;
        e
    }

    /// These arrays read through `src` (position p of the new ones: channel `src(p)` of
    /// these), `span + 64` long; `mult_next` remade from the new `mult`.
    fn remapped(&self, span: usize, src: impl Fn(usize) -> usize) -> Epi {
        let len = span + 64;
        let perm = |v: &[i32]| -> Vec<i32> { (0..len).map(|p| v[src(p)]).collect() };
        let mult = perm(&self.mult);
        Epi {
            ch: self.ch,
            span,
            bias: perm(&self.bias),
            mult_next: (0..len).map(|p| mult[(p + 1) % len]).collect(),
            mult,
            shift: (0..len).map(|p| self.shift[src(p)]).collect(),
            scale: if self.scale.is_empty() {
                vec![]
            } else {
                (0..len).map(|p| self.scale[src(p)]).collect()
            },
            common_shift: self.common_shift,
            zy: self.zy,
            lo: self.lo,
            hi: self.hi,
            wide: self.wide,
        }
    }

    /// Whole pixels (every channel of each), contiguous: `acc` and `out` of one length, a
    /// multiple of the channel count.
    #[inline]
    pub(super) fn finish_run(&self, acc: &[i32], out: &mut [u8]) {
        debug_assert!(acc.len().is_multiple_of(self.ch));
        for (a, o) in acc.chunks(self.span).zip(out.chunks_mut(self.span)) {
            self.finish(a, 0, o);
        }
    }

    /// Channels `c0..c0 + acc.len()` of one output row.
    #[inline]
    pub(super) fn finish(&self, acc: &[i32], c0: usize, out: &mut [u8]) {
        let n = acc.len();
        let mut j = 0;
        #[cfg(target_arch = "x86_64")]
        if self.wide {
            // SAFETY: `wide` is set only where AVX-512F is present; the function reads
            // `acc[..n]`, `self.*[c0..c0 + n]` and writes `out[..n]` in whole 16-lane blocks.
            j = unsafe { self.finish_avx512(acc, c0, out) };
        }
        if !self.scale.is_empty() {
            let (lo, hi) = ((self.lo - self.zy) as f32, (self.hi - self.zy) as f32);
            for j in j..n {
                let c = c0 + j;
                let v = (acc[j].wrapping_add(self.bias[c]) as f32 * self.scale[c]).clamp(lo, hi);
                out[j] = (v.round_ties_even() as i32 + self.zy) as u8;
            }
            return;
        }
        for j in j..n {
            let c = c0 + j;
            let v = (acc[j] as i64 + self.bias[c] as i64) * self.mult[c] as i64;
            out[j] = (round_shift_up(v, self.shift[c]) + self.zy as i64)
                .clamp(self.lo as i64, self.hi as i64) as u8;
        }
    }

    /// [`Self::finish`] in 16-channel blocks (the last one masked); returns how many
    /// channels it did (all).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn finish_avx512(&self, acc: &[i32], c0: usize, out: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let n = acc.len();
        assert!(out.len() >= n && c0 + n.next_multiple_of(16) <= self.bias.len());
        // SAFETY: AVX-512 F (this function's features).
        let regs = unsafe { self.regs() };
        for b in 0..n.div_ceil(16) {
            let j = b * 16;
            // The last block may be partial: its lanes past `n` are masked off.
            let k = lanes_from(j, n);
            // SAFETY: the masked load and store touch lanes j..min(j + 16, n) only; `vec16`
            // reads the per-channel arrays at c0 + j..c0 + j + 16, inside them (asserted).
            unsafe {
                let v = _mm512_maskz_loadu_epi32(k, acc.as_ptr().add(j));
                let r = self.vec16::<true>(&regs, v, c0 + j);
                _mm_mask_storeu_epi8(
                    out.as_mut_ptr().add(j) as *mut i8,
                    k,
                    _mm512_cvtepi32_epi8(r),
                );
            }
        }
        n
    }

    /// The epilogue's loop-invariant registers ([`EpiRegs`]), made once per tile or row
    /// rather than once per 16 values.
    ///
    /// # Safety
    /// AVX-512 F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn regs(&self) -> EpiRegs {
        use std::arch::x86_64::*;
        let fp32 = !self.scale.is_empty();
        let shift = self.common_shift.unwrap_or(33);
        EpiRegs {
            mode: if fp32 {
                Mode::Fp32
            } else if self.common_shift.is_some_and(|s| s > 32) {
                Mode::High
            } else if self.common_shift.is_some() {
                Mode::Common
            } else {
                Mode::PerChannel
            },
            zy: _mm512_set1_epi32(self.zy),
            lo: if fp32 {
                _mm512_castps_si512(_mm512_set1_ps((self.lo - self.zy) as f32))
            } else {
                _mm512_set1_epi32(self.lo)
            },
            hi: if fp32 {
                _mm512_castps_si512(_mm512_set1_ps((self.hi - self.zy) as f32))
            } else {
                _mm512_set1_epi32(self.hi)
            },
            // The rounding half plus the zero point at the products' scale (Common only:
            // shift <= 53, so the sum stays below 2^62 in magnitude with every product).
            half: _mm512_set1_epi64((1i64 << (shift - 1)) + ((self.zy as i64) << shift)),
            lo8: _mm512_set1_epi8(self.lo as u8 as i8),
            hi8: _mm512_set1_epi8(self.hi as u8 as i8),
            even: _mm_cvtsi32_si128(shift as i32),
            odd: _mm_cvtsi32_si128(shift as i32 - 32),
            // High (shift - 32 = t in 1..=21): 2^(t - 1) + zy 2^t < 2^30.
            half32: _mm512_set1_epi32(
                ((1i64 << (shift.max(33) - 33)) + ((self.zy as i64) << (shift.max(33) - 32)))
                    as i32,
            ),
        }
    }

    /// The epilogue of 16 raw int32 sums in a register, channels `c..c + 16` (of the tiled
    /// per-channel arrays: `c + 16 <= bias.len()`), to 16 uint8 values in int32 lanes, with
    /// the loop-invariant registers `k` (this epilogue's [`Self::regs`]). Fused into the GEMM
    /// tiles and the depthwise rows, and run by [`Self::finish_avx512`]:
    ///
    /// - fp32 requantizer: convert, multiply, clamp, round half to even (`cvtps2dq` under the
    ///   default rounding mode), add the zero point;
    /// - fixed-point, one shift for every channel of 32..=53 (every real multiplier below
    ///   1/2; `Requant::uniform` gives one shift per layer): `(p + half + (zy << shift)) >>
    ///   shift` by one count (the zero point added at the products' scale is added to the
    ///   quotient exactly: `zy << shift` is a multiple of `2^shift`), even channels'
    ///   products shifted by `shift` (the result in their low 32 bits), odd channels' by
    ///   `shift - 32` (the same result in their high 32 bits), blended; the clamp in 32-bit
    ///   lanes (|p| < 2^62, |half + (zy << shift)| < 2^62: no overflow). 11 vector
    ///   instructions, 9 with `CLAMP` false, where the caller packs four results to bytes and
    ///   clamps them there ([`Self::pack4`]); with the shift above 32 (`Mode::High`, every
    ///   multiplier below 1/4) only the products' high halves count: 7 instructions without
    ///   the clamp, two of them shuffles rather than 64-bit shifts;
    /// - fixed-point otherwise: the same in 64-bit lanes with a shift per channel.
    ///
    /// `CLAMP` false leaves the clamp to [`Self::pack4`] (only the one-shift form skips it;
    /// the others clamp in any case, the fp32 one before its conversion).
    ///
    /// # Safety
    /// AVX-512 F/BW/VL; `c + 16 <= self.bias.len()`; `k` made by this epilogue's `regs`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn vec16<const CLAMP: bool>(
        &self,
        k: &EpiRegs,
        acc: std::arch::x86_64::__m512i,
        c: usize,
    ) -> std::arch::x86_64::__m512i {
        // SAFETY: the caller's.
        unsafe { self.vec16_in::<CLAMP, ANY_MODE>(k, acc, c) }
    }

    /// [`Self::vec16`] with its form fixed at compile time where `M` is [`HIGH_MODE`] (`k`'s
    /// mode must then be `High`): a kernel that checks the mode once, outside its loop, runs
    /// the loop without a jump on the mode every 16 values.
    ///
    /// # Safety
    /// As [`Self::vec16`]; with `M == HIGH_MODE`, `k.is_high()`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn vec16_in<const CLAMP: bool, const M: u8>(
        &self,
        k: &EpiRegs,
        acc: std::arch::x86_64::__m512i,
        c: usize,
    ) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        debug_assert!(c + 16 <= self.bias.len());
        debug_assert!(M != HIGH_MODE || k.is_high());
        let mode = if M == HIGH_MODE { Mode::High } else { k.mode };
        // SAFETY: every per-channel array has `bias`'s length (the caller's bound).
        unsafe {
            let ld = |p: *const i32| _mm512_loadu_si512(p.add(c) as *const __m512i);
            let v = _mm512_add_epi32(acc, ld(self.bias.as_ptr()));
            match mode {
                Mode::Fp32 => {
                    let f = _mm512_mul_ps(
                        _mm512_cvtepi32_ps(v),
                        _mm512_loadu_ps(self.scale.as_ptr().add(c)),
                    );
                    let (lo, hi) = (_mm512_castsi512_ps(k.lo), _mm512_castsi512_ps(k.hi));
                    let f = _mm512_min_ps(_mm512_max_ps(f, lo), hi);
                    return _mm512_add_epi32(_mm512_cvtps_epi32(f), k.zy);
                }
                Mode::High => {
                    // Shift s = 32 + t, t >= 1: with the product P = H 2^32 + L (H its signed
                    // high half, 0 <= L < 2^32) and the rounding constant 2^(s-1) + zy 2^s =
                    // (2^(t-1) + zy 2^t) 2^32, floor((P + const) / 2^s) = (H + 2^(t-1) + zy
                    // 2^t) >> t exactly (L / 2^32 < 1 never carries into a quotient of
                    // integers by 2^t), and |H| < 2^30 keeps the sum in 32 bits. The odd
                    // lanes' values move down by a shuffle, the even products' high halves
                    // up into place by a masked shuffle of the odd products: port 5, where
                    // the 64-bit shifts of `Common` all wait for port 0.
                    let odd = _mm512_shuffle_epi32::<0xf5>(v);
                    let pe = _mm512_mul_epi32(v, ld(self.mult.as_ptr()));
                    let po = _mm512_mul_epi32(odd, ld(self.mult_next.as_ptr()));
                    let h = _mm512_mask_shuffle_epi32::<0xf5>(po, 0x5555, pe);
                    let r = _mm512_sra_epi32(_mm512_add_epi32(h, k.half32), k.odd);
                    if !CLAMP {
                        return r;
                    }
                    return _mm512_min_epi32(_mm512_max_epi32(r, k.lo), k.hi);
                }
                Mode::Common => {
                    let pe = _mm512_mul_epi32(v, ld(self.mult.as_ptr()));
                    let po =
                        _mm512_mul_epi32(_mm512_srli_epi64(v, 32), ld(self.mult_next.as_ptr()));
                    let re = _mm512_sra_epi64(_mm512_add_epi64(pe, k.half), k.even);
                    let ro = _mm512_sra_epi64(_mm512_add_epi64(po, k.half), k.odd);
                    let r = _mm512_mask_blend_epi32(0xaaaa, re, ro);
                    if !CLAMP {
                        return r;
                    }
                    return _mm512_min_epi32(_mm512_max_epi32(r, k.lo), k.hi);
                }
                Mode::PerChannel => {}
            }
            let one = _mm512_set1_epi64(1);
            let m = ld(self.mult.as_ptr());
            let s = ld(self.shift.as_ptr() as *const i32);
            let round = |p: __m512i, s: __m512i| {
                let h = _mm512_sllv_epi64(one, _mm512_sub_epi64(s, one));
                _mm512_srav_epi64(_mm512_add_epi64(p, h), s)
            };
            let re = round(
                _mm512_mul_epi32(v, m),
                _mm512_and_si512(s, _mm512_set1_epi64(0xffff_ffff)),
            );
            let ro = round(
                _mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)),
                _mm512_srli_epi64(s, 32),
            );
            // Clamped in 64-bit lanes (the results may pass 32 bits), then interleaved.
            let (zy, lo, hi) = (
                _mm512_set1_epi64(self.zy as i64),
                _mm512_set1_epi64(self.lo as i64),
                _mm512_set1_epi64(self.hi as i64),
            );
            let clamp =
                |r: __m512i| _mm512_min_epi64(_mm512_max_epi64(_mm512_add_epi64(r, zy), lo), hi);
            _mm512_or_si512(clamp(re), _mm512_slli_epi64(clamp(ro), 32))
        }
    }

    /// Four results of [`Self::vec16`] (unclamped or not) as 64 bytes, clamped: `vpackssdw`
    /// of `r0` and `r1`, of `r2` and `r3` (signed saturation to 16 bits keeps every value's
    /// clamp), then `vpackuswb` (to 0..=255), then the clamp bounds in bytes: 128-bit lane
    /// `L` holds values `4L .. 4L + 4` of `r0`, `r1`, `r2`, `r3` in turn (dword `4L + v` is
    /// register `v`'s; `vpermd` by [`ORDER4`] puts them register by register).
    ///
    /// # Safety
    /// AVX-512 F/BW; `k` made by this epilogue's `regs`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn pack4(
        &self,
        k: &EpiRegs,
        r: [std::arch::x86_64::__m512i; 4],
    ) -> std::arch::x86_64::__m512i {
        use std::arch::x86_64::*;
        let lo = _mm512_packs_epi32(r[0], r[1]);
        let hi = _mm512_packs_epi32(r[2], r[3]);
        _mm512_min_epu8(_mm512_max_epu8(_mm512_packus_epi16(lo, hi), k.lo8), k.hi8)
    }
}

/// The `vpermd` indices that put [`Epi::pack4`]'s bytes register by register (dword `4v + L`
/// from `4L + v`): 16 values of `r0`, then of `r1`, `r2`, `r3`.
#[cfg(target_arch = "x86_64")]
pub(super) const ORDER4: [i32; 16] = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];

/// [`Epi::vec16_in`]'s `M`: the form read from the registers at run time.
#[cfg(target_arch = "x86_64")]
pub(super) const ANY_MODE: u8 = 0;
/// [`Epi::vec16_in`]'s `M`: the `High` form, fixed at compile time.
#[cfg(target_arch = "x86_64")]
pub(super) const HIGH_MODE: u8 = 1;

/// Which form [`Epi::vec16`] takes.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Fp32,
    /// Fixed-point, one shift of exactly 32 for every channel.
    Common,
    /// Fixed-point, one shift of 33..=53 for every channel: only the products' high halves
    /// are needed.
    High,
    /// Fixed-point, a shift per channel.
    PerChannel,
}

/// An epilogue's loop-invariant registers ([`Epi::regs`]): the zero point and clamp bounds
/// (fp32 bounds for the fp32 requantizer), the common shift's rounding half and counts.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct EpiRegs {
    mode: Mode,
    zy: std::arch::x86_64::__m512i,
    lo: std::arch::x86_64::__m512i,
    hi: std::arch::x86_64::__m512i,
    half: std::arch::x86_64::__m512i,
    lo8: std::arch::x86_64::__m512i,
    hi8: std::arch::x86_64::__m512i,
    even: std::arch::x86_64::__m128i,
    odd: std::arch::x86_64::__m128i,
    half32: std::arch::x86_64::__m512i,
}

#[cfg(target_arch = "x86_64")]
impl EpiRegs {
    /// Whether these registers are for the `High` form ([`HIGH_MODE`]).
    pub(super) fn is_high(&self) -> bool {
        self.mode == Mode::High
    }
}

pub(super) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}

/// The 16-lane mask of a block starting at `j` of `n` values: all lanes, or those before `n`.
#[inline(always)]
pub(super) fn lanes_from(j: usize, n: usize) -> u16 {
    if j + 16 <= n {
        0xffff
    } else {
        ((1u32 << (n - j)) - 1) as u16
    }
}

/// Whether the AVX-512 forms of the integer loops and epilogues run here (F, BW, VL, DQ).
pub(super) fn wide_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use greenbench_core::quant::{QParams, Requant};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The epilogue (AVX-512 where present, and the plain loop) against the reference's
        /// `QLinear::finish`, bit for bit: both requantizers; real multipliers below and above
        /// 1/2 (the one-shift form and the per-channel-shift form); one shift per layer or one
        /// per channel; any channel count and starting channel.
        #[test]
        fn epilogue_matches_the_reference(
            ch in 1usize..70, log2 in -20f64..1.5, spread in 0f64..6.0, uniform in any::<bool>(),
            fp32 in any::<bool>(), zy in 0i32..256, lo in 0u8..128, width in 1u8..128,
            c0 in 0usize..40, seed in any::<u64>(),
        ) {
            let mut s = seed | 1;
            let mut next = move || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
            let reals: Vec<f64> = (0..ch)
                .map(|_| 2f64.powf(log2 - spread * (next() % 1000) as f64 / 1000.0))
                .collect();
            let requant = if uniform {
                Requant::uniform(&reals)
            } else {
                reals.iter().map(|&r| Requant::new(r)).collect()
            };
            let hi = lo.saturating_add(width);
            let l = QLinear {
                w: vec![],
                w_scale: vec![1.0; ch],
                bias: (0..ch).map(|_| (next() % 20_001) as i32 - 10_000).collect(),
                requant,
                scale: reals.iter().map(|&r| r as f32).collect(),
                requantizer: if fp32 { Requantizer::Fp32 } else { Requantizer::Fixed },
                x: QParams { scale: 1.0, zero: 0 },
                y: QParams { scale: 1.0, zero: zy },
                lo,
                hi,
                fused: None,
            };
            // Sums from small to near the int32 limits (less the bias).
            let n = (ch * 3).saturating_sub(c0 % ch).max(1);
            let acc: Vec<i32> = (0..n)
                .map(|_| {
                    let mag = 1i64 << (next() % 31);
                    ((next() as i64).rem_euclid(2 * mag) - mag) as i32
                })
                .collect();
            let c0 = c0 % ch;
            let want: Vec<u8> = acc
                .iter()
                .enumerate()
                .map(|(j, &a)| l.finish(a + l.bias[(c0 + j) % ch], (c0 + j) % ch))
                .collect();
            for wide in [false, wide_int8()] {
                let epi = Epi::new(&l, None, wide);
                let mut got = vec![0u8; n];
                epi.finish(&acc, c0, &mut got);
                prop_assert_eq!(&got, &want, "wide {} requant {:?}", wide, l.requant.first());
            }
            // The depthwise rows' quad-permuted epilogue, on AVX-512: register k of the block
            // at f holds values f + 16 L + 4 k + i (lane L, element i); its results, put back
            // in order, are `finish`'s. From channel 0, blocks over two spans.
            #[cfg(target_arch = "x86_64")]
            if wide_int8() {
                let epi = Epi::new(&l, None, true);
                let span = ch / gcd(ch, 64) * 64;
                let qe = epi.quad_permuted(span);
                let acc: Vec<i32> = (0..2 * span).map(|j| acc[j % n]).collect();
                let mut want = vec![0u8; acc.len()];
                epi.finish_run(&acc, &mut want);
                let mut got = vec![0u8; acc.len()];
                // SAFETY: AVX-512 F/BW/VL are present (`wide_int8`); vec16 reads the permuted
                // arrays at (f % span) + 16 k + 16 <= span + 64, their length.
                unsafe {
                    use std::arch::x86_64::*;
                    let regs = qe.regs();
                    for f in (0..acc.len()).step_by(64) {
                        // As `dw_vnni_rows`: four registers unclamped, packed and clamped
                        // by `pack4`, the 64 bytes in order; and each register clamped.
                        let mut r = [_mm512_setzero_si512(); 4];
                        for k in 0..4 {
                            let lanes: Vec<i32> =
                                (0..16).map(|e| acc[f + 16 * (e / 4) + 4 * k + e % 4]).collect();
                            let v = _mm512_loadu_si512(lanes.as_ptr() as *const __m512i);
                            r[k] = qe.vec16::<false>(&regs, v, f % span + 16 * k);
                            let mut one = [0i32; 16];
                            let out = qe.vec16::<true>(&regs, v, f % span + 16 * k);
                            _mm512_storeu_si512(one.as_mut_ptr() as *mut __m512i, out);
                            for (e, &o) in one.iter().enumerate() {
                                let j = f + 16 * (e / 4) + 4 * k + e % 4;
                                prop_assert_eq!(o as u8, want[j], "clamped, value {}", j);
                            }
                        }
                        let bytes = qe.pack4(&regs, r);
                        _mm512_storeu_si512(got.as_mut_ptr().add(f) as *mut __m512i, bytes);
                    }
                }
                prop_assert_eq!(&got, &want, "quad-permuted, {} channels", ch);
            }
        }
    }
}
