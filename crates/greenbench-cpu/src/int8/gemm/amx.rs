//! The int8 GEMM on Intel AMX (`tdpbusd`): eight tile registers of 16 rows x 64 bytes, one
//! instruction multiplying a 16 x 64 uint8 tile of `A` by a 64 x 16 int8 tile of `B` (in the
//! VNNI layout the weights are already packed in: `[K/4][16 x 4]`) into 16 x 16 int32 sums,
//! 16 384 multiply-adds per instruction against `vpdpbusd`'s 64.
//!
//! Used where `K` splits into equal chunks of 12..64 bytes (a tile's width at most), each read
//! from one contiguous run of a row: a contiguous `A` (dense layers, pointwise convolutions) in
//! blocks of 16 rows and one shorter block for the rest; an in-place convolution in blocks of
//! 16 pixels (or one output row, when rows are narrower) whose inputs are evenly spaced. The
//! rest runs on the VNNI tile (same packing, identical int32 sums: integer arithmetic has one
//! answer).
//!
//! Detection, permission and the tile instructions are `crate::amx`'s.
//! `GREENBENCH_NO_AMX` (any value) turns the path off.

use super::Fin;
use super::QGemm;
use crate::amx::{Config, tile_dp, tile_load, tile_store, tile_zero};
use crate::int8::epilogue::{ANY_MODE, EpiRegs, HIGH_MODE, ORDER4};
use std::arch::x86_64::*;

/// Whether this process runs AMX-INT8 (`crate::amx`).
pub(in crate::int8) fn enabled() -> bool {
    crate::amx::int8()
}

/// The narrowest K chunk worth a tile product, in bytes. Measured (int8 b32, 2 threads,
/// Xeon with AMX, 2026-12-04, alternating rounds): 12 put resnet8's first layer (3 channels:
/// 12-byte kernel rows) on tiles, 32.9 -> 30.1-31.1 us; 8 also lenet5's (8-byte rows), which
/// went 4.9-5.2 -> 5.3-6.3 us.
const MIN_CHUNK: usize = 12;

/// The least work (multiply-adds) of one call worth the tiles (when this was measured a call
/// loaded its tile configuration and released the tiles — now neither where the thread's
/// tiles hold it already, `crate::amx` — and a small one's product chains are a few tiles
/// deep: the likely costs, not profiled). Measured
/// (Xeon with AMX, 2026-12-04, `greenbench run --models lenet5 --batch 1 --precision int8`,
/// three alternating rounds): lenet5 at batch 1, whose second convolution (100 pixels x 160 x
/// 16, in halves on the 2-thread team) was its one layer on tiles, took 14.9-15.1 us with
/// them and 12.0-13.2 without (9.7 -> 10.3 on one thread). Unit tests run every size.
#[cfg(not(test))]
const MIN_MACS: usize = 1 << 18;
#[cfg(test)]
const MIN_MACS: usize = 0;

thread_local! {
    /// How many calls of one shape this thread makes back to back ([`in_burst`]).
    static BURST: std::cell::Cell<usize> = const { std::cell::Cell::new(1) };
}

/// Runs `f` with its GEMM calls counted as `n` back-to-back calls of one shape (a worker's
/// images through one convolution, one call each): [`worth`] weighs their work together, as
/// the tiles stay warm from one call to the next. Measured (Xeon with AMX, 2026-12-05,
/// `greenbench run --models lenet5 --batch 1,32 --precision int8 --threads 2`, alternating
/// builds, best): with this, lenet5's second convolution (256 000 multiply-adds an image)
/// runs on tiles at batch 32, 2.57 -> 2.07 us (four rounds), batch 1 unchanged (4.56 /
/// 4.41); `MIN_MACS` halved for every call instead put batch 1 at 5.04, 8.68 and 8.90 us in
/// three rounds (4.82-4.94 without).
pub(in crate::int8) fn in_burst<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let before = BURST.with(|b| b.replace(n.max(1)));
    let r = f();
    BURST.with(|b| b.set(before));
    r
}

/// Whether a call of `rows` rows (one of a burst: [`in_burst`]) is worth the tiles
/// ([`MIN_MACS`]).
#[allow(clippy::absurd_extreme_comparisons)] // (always true in unit tests, on purpose)
pub(super) fn worth(g: &QGemm, rows: usize) -> bool {
    rows * g.k * g.n * BURST.with(|b| b.get()) >= MIN_MACS
}

/// The tile width in bytes a `k` runs in: the largest multiple of 4 up to 64 dividing it,
/// when at least [`MIN_CHUNK`]. `None`: not on AMX.
pub(super) fn chunk(k: usize) -> Option<usize> {
    (MIN_CHUNK..=64)
        .rev()
        .step_by(4)
        .find(|c| k.is_multiple_of(*c))
}

/// Fewest rows worth a block of tiles (fewer stay on VNNI).
const MIN_ROWS: usize = 4;

/// `C = A W` for a contiguous `A`: whole 16-row blocks, then the rest as one block when it
/// holds [`MIN_ROWS`] or more (else the caller's), into `c` (int32, rows `ldc` apart) or, with
/// `fin`, through its epilogue into uint8. Returns the rows done.
///
/// # Safety
/// [`enabled`]; AVX-512 F/BW/VL; `g` packed for VNNI with `chunk(g.k)` some; `a` holds `rows`
/// rows of `g.k` bytes `lda` apart; `c` (without `fin`) `rows` rows of `g.n` at `ldc`; with
/// `fin`, its destination `rows` rows of `g.n` and its epilogue's arrays `c0 + n + 16`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run(
    g: &QGemm,
    a: *const u8,
    lda: usize,
    rows: usize,
    c: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) -> usize {
    let kc = chunk(g.k).expect("a K that splits into tile chunks");
    let full = rows / 16 * 16;
    let at = |r0: usize| Some((a.wrapping_add(r0 * lda), lda));
    // SAFETY: the caller's bounds: every block's rows are whole rows of `A`.
    unsafe { blocks(g, full, 16, kc, at, |q| q * kc, c, ldc, fin, |_| {}) };
    let rest = rows - full;
    if rest < MIN_ROWS {
        return full;
    }
    let at = |r0: usize| Some((a.wrapping_add((full + r0) * lda), lda));
    let (c, fin) = (c.wrapping_add(full * ldc), fin.map(|f| f.row(full)));
    // SAFETY: as above, rows full..rows.
    unsafe { blocks(g, rest, rest, kc, at, |q| q * kc, c, ldc, fin, |_| {}) };
    rows
}

/// The chunk width an in-place run's `K` takes on AMX: one that divides it and whose every
/// chunk reads one contiguous run of the row (`qoff` consecutive inside it).
pub(super) fn in_place_chunk(k: usize, qoff: &[u32]) -> Option<usize> {
    (MIN_CHUNK..=64).rev().step_by(4).find(|&kc| {
        k.is_multiple_of(kc)
            && qoff.chunks(kc / 4).all(|ch| {
                ch.iter()
                    .enumerate()
                    .all(|(i, &o)| o == ch[0] + 4 * i as u32)
            })
    })
}

/// [`QGemm::run_in_place`]'s rows on AMX: every block of 16 rows (or of one output row where
/// rows are narrower: the first rows' even run) whose rows are evenly spaced in `src` (the
/// tile loads rows at one stride). Returns the rows it left to the caller as `(first, count)`
/// ranges: uneven blocks and the rows past the last whole block.
///
/// # Safety
/// [`enabled`]; AVX-512 F/BW/VL; `g` VNNI-packed, `kc = in_place_chunk(g.k, qoff)`; reads
/// inside `src` as [`QGemm::run_in_place`] asserts; `c` / `fin` as [`run`]'s for
/// `bases.len()` rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn run_in_place(
    g: &QGemm,
    src: *const u8,
    bases: &[usize],
    qoff: &[u32],
    kc: usize,
    c: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
) -> Vec<(usize, usize)> {
    let rows = bases.len();
    // Block rows: 16, or the first output row's pixels when fewer (8 in resnet8's last stage).
    let br = match bases {
        [b0, b1, ..] if b1 > b0 => {
            let d = b1 - b0;
            1 + bases[..rows.min(16)]
                .windows(2)
                .take_while(|w| w[1].wrapping_sub(w[0]) == d)
                .count()
        }
        _ => 0,
    };
    if br < MIN_ROWS {
        return vec![(0, rows)];
    }
    let full = rows / br * br;
    let at = |r0: usize| {
        let b = &bases[r0..r0 + br];
        crate::amx::even_step(b).map(|d| (src.wrapping_add(b[0]), d))
    };
    let mut left = Vec::new();
    let koff = |q: usize| qoff[q * kc / 4] as usize;
    // SAFETY: the caller's bounds: a block's tile rows read the bytes its quads would.
    unsafe {
        blocks(g, full, br, kc, at, koff, c, ldc, fin, |r0| {
            left.push((r0, br))
        })
    };
    if full < rows {
        left.push((full, rows - full));
    }
    left
}

/// The tiles over rows `0..full` (a multiple of `br <= 16`): block `r0`'s `br` rows of `A` from
/// `at(r0)` (its first row and the stride between rows; `None` leaves the block to the
/// caller, through `skip`), its `K` chunk `q` at byte `koff(q)` of each row.
///
/// # Safety
/// As [`run`]: every byte the tiles read is inside the caller's `A`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks(
    g: &QGemm,
    full: usize,
    br: usize,
    kc: usize,
    at: impl Fn(usize) -> Option<(*const u8, usize)>,
    koff: impl Fn(usize) -> usize,
    c: *mut i32,
    ldc: usize,
    fin: Option<Fin>,
    mut skip: impl FnMut(usize),
) {
    if full == 0 {
        return;
    }
    debug_assert!((1..=16).contains(&br) && full.is_multiple_of(br));
    let (chunks, k4) = (g.k / kc, g.k / 4);
    let nb = g.n.div_ceil(16);
    // tmm0..3 sums (br x 16 int32), tmm4..5 rows of A (br x kc bytes), tmm6..7 weights.
    let (cs, as_, ws) = ((br, 64), (br, kc), (kc / 4, 64));
    let cfg = Config::new([cs, cs, cs, cs, as_, as_, ws, ws]);
    let mut scratch = Scratch([0; 256]);
    // The epilogue with its registers, made once per call.
    // SAFETY: AVX-512 F (this function's features).
    let fin = fin.map(|f| (f, unsafe { f.epi.regs() }));
    let sp = scratch.0.as_mut_ptr();
    let bp = g.packed.as_ptr();
    // SAFETY (whole body): the tile loads read `A` rows as the caller bounds them and packed
    // weight blocks inside `packed` (`nb * k4 * 64` bytes); stores go to the scratch or, for
    // whole 16-column blocks without `fin`, to `c` rows inside `full`.
    unsafe {
        cfg.load();
        let mut r0 = 0;
        while r0 < full {
            let Some((a0, s0)) = at(r0) else {
                skip(r0);
                r0 += br;
                continue;
            };
            let second = if r0 + 2 * br <= full {
                at(r0 + br)
            } else {
                None
            };
            let two_rows = second.is_some();
            let (a1, s1) = second.unwrap_or((a0, s0));
            let mut b = 0;
            while b < nb {
                let two_cols = b + 1 < nb;
                tile_zero!("0", "1", "2", "3");
                for q in 0..chunks {
                    let off = koff(q);
                    let wp = bp.add((b * k4 + q * kc / 4) * 64);
                    tile_load!("4", a0.add(off), s0);
                    tile_load!("6", wp, 64usize);
                    tile_dp!("tdpbusd", "0", "4", "6");
                    if two_cols {
                        tile_load!("7", wp.add(k4 * 64), 64usize);
                        tile_dp!("tdpbusd", "1", "4", "7");
                    }
                    if two_rows {
                        tile_load!("5", a1.add(off), s1);
                        tile_dp!("tdpbusd", "2", "5", "6");
                        if two_cols {
                            tile_dp!("tdpbusd", "3", "5", "7");
                        }
                    }
                }
                let out = |t: usize, r: usize, cb: usize| Block { r, cb, t };
                let mut blocks = [out(0, r0, b); 4];
                let mut nblk = 1;
                for (want, blk) in [
                    (two_cols, out(1, r0, b + 1)),
                    (two_rows, out(2, r0 + br, b)),
                    (two_rows && two_cols, out(3, r0 + br, b + 1)),
                ] {
                    if want {
                        blocks[nblk] = blk;
                        nblk += 1;
                    }
                }
                for blk in &blocks[..nblk] {
                    let col = blk.cb * 16;
                    let whole = col + 16 <= g.n;
                    if fin.is_none() && whole {
                        let dst = c.add(blk.r * ldc + col);
                        match blk.t {
                            0 => tile_store!("0", dst, ldc * 4),
                            1 => tile_store!("1", dst, ldc * 4),
                            2 => tile_store!("2", dst, ldc * 4),
                            _ => tile_store!("3", dst, ldc * 4),
                        }
                        continue;
                    }
                    match blk.t {
                        0 => tile_store!("0", sp, 64usize),
                        1 => tile_store!("1", sp, 64usize),
                        2 => tile_store!("2", sp, 64usize),
                        _ => tile_store!("3", sp, 64usize),
                    }
                    match fin {
                        // The epilogue's form fixed in the loop where it is `High`.
                        Some((f, k)) if k.is_high() => {
                            finish::<HIGH_MODE>(g, &scratch, f, &k, blk.r, br, col)
                        }
                        Some((f, k)) => finish::<ANY_MODE>(g, &scratch, f, &k, blk.r, br, col),
                        None => {
                            let left = g.n - col;
                            for r in 0..br {
                                std::ptr::copy_nonoverlapping(
                                    sp.add(r * 16),
                                    c.add((blk.r + r) * ldc + col),
                                    left,
                                );
                            }
                        }
                    }
                }
                b += if two_cols { 2 } else { 1 };
            }
            r0 += if two_rows { 2 * br } else { br };
        }
    }
}

/// One 16 x 16 block of sums: its tile register, first row and column block.
#[derive(Clone, Copy)]
struct Block {
    r: usize,
    cb: usize,
    t: usize,
}

/// One tile's sums, as `tilestored` leaves them (16 rows of 16 int32).
#[repr(C, align(64))]
struct Scratch([i32; 256]);

/// A block's sums through the epilogue into rows `r..r + br`, columns `col..` (masked to `n`).
///
/// # Safety
/// AVX-512 F/BW/VL; `f`'s destination and arrays as [`run`]'s; `M` as [`crate::int8::epilogue::Epi::vec16_in`] allows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn finish<const M: u8>(
    g: &QGemm,
    s: &Scratch,
    f: Fin,
    k: &EpiRegs,
    r: usize,
    br: usize,
    col: usize,
) {
    let m = crate::int8::epilogue::lanes_from(col, g.n);
    // SAFETY: the caller's bounds (rows r..r + br, channels col..col + 16 masked to n; the
    // epilogue's arrays cover c0 + col + 16).
    unsafe {
        let c = f.c0 + col;
        let row = |i: usize| f.y.add((r + i) * f.ldy + col) as *mut i8;
        let sums = s.0.as_ptr() as *const __m512i;
        let acc = |i: usize| _mm512_load_si512(sums.add(i));
        // Four rows at a time packed to bytes and clamped together (`Epi::pack4`), `vpermd`
        // puts each row's 16 bytes in a 128-bit lane.
        let order = _mm512_loadu_si512(ORDER4.as_ptr() as *const __m512i);
        let mut i = 0;
        while i + 4 <= br {
            // (Four calls, not a closure: a closure may not inline `vec16`, see
            // `dw_vnni_rows`.)
            let e0 = f.epi.vec16_in::<false, M>(k, acc(i), c);
            let e1 = f.epi.vec16_in::<false, M>(k, acc(i + 1), c);
            let e2 = f.epi.vec16_in::<false, M>(k, acc(i + 2), c);
            let e3 = f.epi.vec16_in::<false, M>(k, acc(i + 3), c);
            let p = _mm512_permutexvar_epi32(order, f.epi.pack4(k, [e0, e1, e2, e3]));
            _mm_mask_storeu_epi8(row(i), m, _mm512_castsi512_si128(p));
            _mm_mask_storeu_epi8(row(i + 1), m, _mm512_extracti32x4_epi32::<1>(p));
            _mm_mask_storeu_epi8(row(i + 2), m, _mm512_extracti32x4_epi32::<2>(p));
            _mm_mask_storeu_epi8(row(i + 3), m, _mm512_extracti32x4_epi32::<3>(p));
            i += 4;
        }
        for i in i..br {
            let q = _mm512_cvtepi32_epi8(f.epi.vec16_in::<true, M>(k, acc(i), c));
            _mm_mask_storeu_epi8(row(i), m, q);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunk;

    #[test]
    fn in_place_chunks_stay_inside_a_run() {
        // Two kernel rows of 48 contiguous bytes each, 1000 bytes apart: 48-byte chunks.
        let qoff: Vec<u32> = (0..24).map(|q| (q / 12) * 1000 + 4 * (q % 12)).collect();
        assert_eq!(super::in_place_chunk(96, &qoff), Some(48));
        // Runs of 36 bytes: 36.
        let qoff: Vec<u32> = (0..18).map(|q| (q / 9) * 1000 + 4 * (q % 9)).collect();
        assert_eq!(super::in_place_chunk(72, &qoff), Some(36));
        // Runs of 12 bytes: 12; of 8: none.
        let qoff: Vec<u32> = (0..9).map(|q| (q / 3) * 1000 + 4 * (q % 3)).collect();
        assert_eq!(super::in_place_chunk(36, &qoff), Some(12));
        let qoff: Vec<u32> = (0..6).map(|q| (q / 2) * 1000 + 4 * (q % 2)).collect();
        assert_eq!(super::in_place_chunk(24, &qoff), None);
    }

    #[test]
    fn chunks_are_whole_tiles_or_none() {
        assert_eq!(chunk(64), Some(64));
        assert_eq!(chunk(256), Some(64));
        assert_eq!(chunk(48), Some(48));
        assert_eq!(chunk(144), Some(48));
        assert_eq!(chunk(40), Some(40));
        assert_eq!(chunk(72), Some(36));
        assert_eq!(chunk(68), None); // 4 x 17: only 4-byte chunks
        assert_eq!(chunk(25), None);
        assert_eq!(chunk(16), Some(16));
        assert_eq!(chunk(8), None);
    }
}
