//! The direct depthwise convolution: plans, work units and the strip kernels.

use super::*;
use greenbench_core::graph::ConvGeom;
use std::arch::x86_64::*;

/// Output rows per depthwise compute unit.
const DW_ROWS: usize = 2;

/// A depthwise convolution (groups == Cin == Cout) planned for the direct kernel: weights
/// `[kh * kw, C]`, fused bias and ReLU, NHWC. A padded input is read in place when its
/// producer stored it with this convolution's padding as [`Border`] (`in_padded`), else
/// first copied into the plan's pad buffer (borders zero), so every window is whole. The
/// output is stored with `out_border` when the next convolution wants it so. A compute unit
/// is a couple of output rows. 3x3 kernels of stride 1 or 2 (`dw3x3`, every depthwise
/// layer of the zoo) take both rows at once (they share input rows) a vector of 16 channels
/// at a time, the nine weights in registers, strips of up to 8 pixels; other shapes go row by
/// row, up to 64 channels (4 vectors) by a strip of up to 6 or 8 pixels. Either way every
/// tap accumulates in registers and each output is stored once (the portable kernel re-reads
/// and re-writes the output row for each tap, and was 36 % of mobilenet's time).
pub struct DwPlan {
    g: ConvGeom,
    batch: usize,
    /// On cache lines: the kernels load 16 channels of a tap at a time.
    w: crate::kernels::AVec<f32>,
    bias: Option<Vec<f32>>,
    relu: Relu,
    in_padded: bool,
    out_border: Border,
    hp: usize,
    wp: usize,
}

impl DwPlan {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        g: &ConvGeom,
        batch: usize,
        w: Vec<f32>,
        bias: Option<Vec<f32>>,
        relu: Relu,
        in_padded: bool,
        out_border: Option<Border>,
    ) -> Self {
        assert!(g.is_depthwise(), "not a depthwise convolution");
        assert!(
            w.len() >= g.kh * g.kw * g.cin,
            "depthwise: weights too short"
        );
        assert!(
            bias.as_ref().is_none_or(|b| b.len() >= g.cin),
            "depthwise: bias too short"
        );
        let (hp, wp) = (
            g.h + g.pad_top + g.pad_bottom,
            g.w + g.pad_left + g.pad_right,
        );
        assert!((g.ho - 1) * g.sh + g.kh <= hp && (g.wo - 1) * g.sw + g.kw <= wp);
        DwPlan {
            g: *g,
            batch,
            w: w.into(),
            bias,
            relu,
            in_padded,
            out_border: out_border.unwrap_or([0; 4]),
            hp,
            wp,
        }
    }

    fn pad_copy(&self) -> Option<PadCopy> {
        let g = &self.g;
        (!self.in_padded && g.pad_top + g.pad_bottom + g.pad_left + g.pad_right > 0).then_some(
            PadCopy {
                batch: self.batch,
                h: g.h,
                w: g.w,
                c: g.cin,
                top: g.pad_top,
                left: g.pad_left,
                hp: self.hp,
                wp: self.wp,
                cp: g.cin,
                bf16: false,
            },
        )
    }

    /// The zeroed buffer the padded input is copied into (empty when none is needed).
    pub fn pad_buffer(&self) -> PadBuffer {
        match self.pad_copy() {
            Some(c) => PadBuffer::zeros(c.batch * c.hp * c.wp * c.c),
            None => PadBuffer::default(),
        }
    }

    /// Units of the padded-input copy (0 when there is none).
    pub fn copy_units(&self) -> usize {
        self.pad_copy().map_or(0, |c| c.units())
    }

    /// # Safety
    /// As [`DirectPlan::copy_unit`].
    pub unsafe fn copy_unit(&self, x: &[f32], padbuf: *mut f32, u: usize) {
        let c = self.pad_copy().expect("copy units exist only with padding");
        unsafe { c.unit(x, padbuf, u) }
    }

    /// Whether the compute reads the pad buffer (after the copy) rather than the input.
    pub fn reads_pad_buffer(&self) -> bool {
        self.pad_copy().is_some()
    }

    pub fn compute_units(&self) -> usize {
        (self.batch * self.g.ho).div_ceil(DW_ROWS)
    }

    /// Length of the output buffer (with its border, if stored with one).
    pub fn output_len(&self) -> usize {
        let [bt, bb, bl, br] = self.out_border;
        self.batch * (self.g.ho + bt + bb) * (self.g.wo + bl + br) * self.g.cout
    }

    /// # Safety
    /// As [`DirectPlan::compute_unit`]: `y` points to [`Self::output_len`] values.
    pub unsafe fn compute_unit(&self, x: &[f32], y: *mut f32, u: usize) {
        assert!(available(), "direct kernels need AVX-512F");
        let g = &self.g;
        let c = g.cin;
        let (hp, wp) = if self.in_padded || self.reads_pad_buffer() {
            (self.hp, self.wp)
        } else {
            (g.h, g.w)
        };
        assert!(
            x.len() >= self.batch * hp * wp * c,
            "depthwise: input too short"
        );
        let [bt, bb, bl, br] = self.out_border;
        let (hb, wb) = (g.ho + bt + bb, g.wo + bl + br);
        let row_len = g.wo * c;
        let end = ((u + 1) * DW_ROWS).min(self.batch * g.ho);
        let mut r = u * DW_ROWS;
        while r < end {
            let (n, oy) = (r / g.ho, r % g.ho);
            // Two rows of one image at once where the 3x3 kernel takes them (they share
            // input rows); else one.
            let pair = r + 1 < end && oy + 1 < g.ho && is_3x3(g) && g.sh == g.sw;
            let off = ((n * hb + oy + bt) * wb + bl) * c;
            // SAFETY: row r's interior run [off, off + row_len) is inside `y` and disjoint
            // from every other row's; so is row r + 1's, `wb c` further.
            let out = unsafe { std::slice::from_raw_parts_mut(y.add(off), row_len) };
            let next = pair
                .then(|| unsafe { std::slice::from_raw_parts_mut(y.add(off + wb * c), row_len) });
            // SAFETY: AVX-512F checked; windows are inside the (padded) image (asserted in
            // `new`), channels are masked to `c`, writes stay in `out` and `next` (output
            // rows r and r + 1).
            unsafe {
                dw_row(
                    x,
                    g,
                    hp,
                    wp,
                    &self.w,
                    self.bias.as_deref(),
                    self.relu,
                    r,
                    out,
                    next,
                )
            }
            r += if pair { 2 } else { 1 };
        }
    }

    /// Run on `x` into `y`, splitting across the current rayon pool when `par`.
    pub fn run(&self, x: &[f32], y: &mut [f32], padbuf: &mut PadBuffer, par: bool) {
        assert!(y.len() >= self.output_len(), "depthwise: output too short");
        let x: &[f32] = match self.pad_copy() {
            Some(c) => {
                c.run(x, padbuf, par);
                padbuf
            }
            None => x,
        };
        let yp = SendPtr(y.as_mut_ptr());
        // SAFETY: `y` is long enough (asserted); units are distinct.
        let body = |u: usize| unsafe { self.compute_unit(x, yp.get(), u) };
        if par {
            (0..self.compute_units()).into_par_iter().for_each(body);
        } else {
            (0..self.compute_units()).for_each(body);
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn dw_row(
    x: &[f32],
    g: &ConvGeom,
    hp: usize,
    wp: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    relu: Relu,
    r: usize,
    out: &mut [f32],
    next: Option<&mut [f32]>,
) {
    let c = g.cin;
    let (n, oy) = (r / g.ho, r % g.ho);
    let img = &x[n * hp * wp * c..(n + 1) * hp * wp * c];
    if is_3x3(g) && g.sw == 1 && (c == 4 || c == 8) {
        let b = bias.map(|b| b.as_ptr());
        let act = ActRegs::new(relu);
        let rows = [Some(out), next];
        for (t, o) in rows.into_iter().enumerate() {
            if let Some(o) = o {
                // SAFETY: output row oy + t's windows are inside the padded image (see
                // `depthwise`); `o` holds the row's `wo c` values.
                unsafe {
                    let x0 = img.as_ptr().add((oy + t) * g.sh * wp * c);
                    dw3x3_packed(x0, wp * c, c, w.as_ptr(), b, act, o.as_mut_ptr(), g.wo);
                }
            }
        }
        return;
    }
    let mut ch = 0;
    while ch < c {
        // Whole vectors (up to 4) per chunk, so that only a last chunk of fewer than 16
        // channels needs masks (`dw3x3` loads whole vectors plainly).
        let nch = match c - ch {
            left @ 0..16 => left,
            left => left.min(64) / 16 * 16,
        };
        let masks = std::array::from_fn(|v| lane_mask(nch, v));
        let a = DwStrip {
            x: unsafe { img.as_ptr().add(oy * g.sh * wp * c + ch) },
            w: unsafe { w.as_ptr().add(ch) },
            b: bias.map(|b| unsafe { b.as_ptr().add(ch) }),
            out: unsafe { out.as_mut_ptr().add(ch) },
            next: next.as_ref().map_or(std::ptr::null_mut(), |o| unsafe {
                o.as_ptr().add(ch) as *mut f32
            }),
            row_stride: wp * c,
            g,
            masks,
            act: ActRegs::new(relu),
        };
        let nv = nch.div_ceil(16);
        // 3x3, stride 1 or 2 (every depthwise layer of the zoo): vector by vector, the
        // weights in registers, one or two output rows.
        if is_3x3(g) {
            let mut ox = 0;
            while ox < g.wo {
                let s = (g.wo - ox).min(8);
                macro_rules! by_size {
                    ($m:literal, $sw:literal, $r:literal) => {
                        // SAFETY: see `depthwise`.
                        match s {
                            1 => unsafe { dw3x3::<1, $m, $sw, $r>(&a, ox, nv) },
                            2 => unsafe { dw3x3::<2, $m, $sw, $r>(&a, ox, nv) },
                            3 => unsafe { dw3x3::<3, $m, $sw, $r>(&a, ox, nv) },
                            4 => unsafe { dw3x3::<4, $m, $sw, $r>(&a, ox, nv) },
                            5 => unsafe { dw3x3::<5, $m, $sw, $r>(&a, ox, nv) },
                            6 => unsafe { dw3x3::<6, $m, $sw, $r>(&a, ox, nv) },
                            7 => unsafe { dw3x3::<7, $m, $sw, $r>(&a, ox, nv) },
                            _ => unsafe { dw3x3::<8, $m, $sw, $r>(&a, ox, nv) },
                        }
                    };
                }
                match (nch < 16, g.sw, next.is_some()) {
                    (true, 1, false) => by_size!(true, 1, 1),
                    (false, 1, false) => by_size!(false, 1, 1),
                    (true, _, false) => by_size!(true, 2, 1),
                    (false, _, false) => by_size!(false, 2, 1),
                    (true, 1, true) => by_size!(true, 1, 2),
                    (false, 1, true) => by_size!(false, 1, 2),
                    (true, _, true) => by_size!(true, 2, 2),
                    (false, _, true) => by_size!(false, 2, 2),
                }
                ox += s;
            }
            ch += nch;
            continue;
        }
        assert!(next.is_none(), "depthwise: row pairs are the 3x3 kernel's");
        // Stride 1, 3 taps wide: the sliding-window kernel (S + 2 input loads per kernel row
        // and vector serve 3 S multiply-adds, against 3 S loads in `dw_pixels`).
        let slide = g.sw == 1 && g.kw == 3;
        let mut ox = 0;
        while ox < g.wo {
            let left = g.wo - ox;
            macro_rules! strip {
                ($g:literal, $($s:literal)*) => {{
                    let s = left.min(*[$($s),*].iter().max().expect("sizes"));
                    // SAFETY: see `depthwise`.
                    match s {
                        $($s => unsafe {
                            if slide {
                                dw_slide3::<$s, $g>(&a, ox)
                            } else {
                                dw_pixels::<$s, $g>(&a, ox)
                            }
                        },)*
                        _ => unreachable!(),
                    }
                    s
                }};
            }
            // Masked loads throughout: plain ones for whole vectors measured slower here (the
            // 3x3 stride-1 form ran 19 -> 22 us an image over eight ds-cnn-shaped layers, one
            // thread; its profile showed accumulators spilled and loads folded into FMAs).
            ox += match nv {
                1 => strip!(1, 8 7 6 5 4 3 2 1),
                2 => strip!(2, 8 7 6 5 4 3 2 1),
                3 => strip!(3, 6 5 4 3 2 1),
                _ => strip!(4, 6 5 4 3 2 1),
            };
        }
        ch += nch;
    }
}

/// As [`dw_pixels`] for stride 1 and 3-wide kernels: per kernel row and vector, the
/// `S + 2` input vectors the strip's windows cover are loaded once and each serves up to
/// three taps.
#[inline]
#[allow(clippy::needless_range_loop)] // indices into two register arrays at once
#[target_feature(enable = "avx512f")]
unsafe fn dw_slide3<const S: usize, const G: usize>(a: &DwStrip<'_>, ox: usize) {
    let g = a.g;
    let c = g.cin;
    let mut acc = unsafe { a.init::<S, G>() };
    let x0 = unsafe { a.x.add(ox * c) };
    for ky in 0..g.kh {
        let xr = unsafe { x0.add(ky * a.row_stride) };
        let wt = unsafe { a.w.add(ky * 3 * c) };
        for v in 0..G {
            let m = a.masks[v];
            let w0 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(16 * v)) };
            let w1 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(c + 16 * v)) };
            let w2 = unsafe { _mm512_maskz_loadu_ps(m, wt.add(2 * c + 16 * v)) };
            // Input column j is tap kx of pixel j - kx.
            for j in 0..S + 2 {
                let xj = unsafe { _mm512_maskz_loadu_ps(m, xr.add(j * c + 16 * v)) };
                if j < S {
                    acc[j][v] = _mm512_fmadd_ps(xj, w0, acc[j][v]);
                }
                if j >= 1 && j - 1 < S {
                    acc[j - 1][v] = _mm512_fmadd_ps(xj, w1, acc[j - 1][v]);
                }
                if j >= 2 {
                    acc[j - 2][v] = _mm512_fmadd_ps(xj, w2, acc[j - 2][v]);
                }
            }
        }
    }
    unsafe { a.store(ox, &acc) };
}

/// A stride-1 3x3 depthwise output row of `c` = 4 or 8 channels (mobilenet-v1-0.25's first
/// depthwise layer has 8) with `16 / c` pixels in each vector: output values `f .. f + 16` of
/// the flattened row (every channel of `16 / c` pixels) read input values `f + kx c ..` of
/// each kernel row, so all 16 lanes of each FMA count, where the strips of [`dw3x3`] fill `c`
/// of them. The weights and bias are repeated to 16 lanes; up to 8 vectors at a time
/// (independent sums in flight); the row's last vector masked.
///
/// # Safety
/// AVX-512F; `x` at column 0 of the output row's first input row (`row_stride` apart, three
/// rows), the row's windows inside the padded image; `w` the `9 c` weights (`[tap][c]`), `b`
/// `c` biases; `out` the row's `wo c` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
unsafe fn dw3x3_packed(
    x: *const f32,
    row_stride: usize,
    c: usize,
    w: *const f32,
    b: Option<*const f32>,
    act: ActRegs,
    out: *mut f32,
    wo: usize,
) {
    debug_assert!(c == 4 || c == 8);
    let len = wo * c;
    // Lane l reads channel l mod c.
    let idx = _mm512_and_si512(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(c as i32 - 1),
    );
    // SAFETY: `c` values at `p` (the caller's bounds).
    let rep = |p: *const f32| unsafe {
        _mm512_permutexvar_ps(idx, _mm512_maskz_loadu_ps(lane_mask(c, 0), p))
    };
    let wr: [__m512; 9] = std::array::from_fn(|t| rep(unsafe { w.add(t * c) }));
    let bv = b.map_or(_mm512_setzero_ps(), rep);
    let mut f = 0;
    while f < len {
        let nv = (len - f).div_ceil(16);
        // SAFETY: the caller's; values f .. len of the row.
        unsafe {
            match nv {
                1 => packed_block::<1>(x, row_stride, c, &wr, bv, act, out, f, len),
                2 => packed_block::<2>(x, row_stride, c, &wr, bv, act, out, f, len),
                3 => packed_block::<3>(x, row_stride, c, &wr, bv, act, out, f, len),
                4 => packed_block::<4>(x, row_stride, c, &wr, bv, act, out, f, len),
                5 => packed_block::<5>(x, row_stride, c, &wr, bv, act, out, f, len),
                6 => packed_block::<6>(x, row_stride, c, &wr, bv, act, out, f, len),
                7 => packed_block::<7>(x, row_stride, c, &wr, bv, act, out, f, len),
                _ => packed_block::<8>(x, row_stride, c, &wr, bv, act, out, f, len),
            }
        }
        f += 16 * nv.min(8);
    }
}

/// `N` vectors of [`dw3x3_packed`] from output value `f` (the last one masked to `len`).
///
/// # Safety
/// As [`dw3x3_packed`]; `f + 16 (N - 1) < len`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn packed_block<const N: usize>(
    x: *const f32,
    row_stride: usize,
    c: usize,
    wr: &[__m512; 9],
    bv: __m512,
    act: ActRegs,
    out: *mut f32,
    f: usize,
    len: usize,
) {
    let masks: [u16; N] = std::array::from_fn(|i| lane_mask(len - f, i));
    let mut acc = [bv; N];
    for ky in 0..3 {
        for kx in 0..3 {
            // SAFETY: lanes below `len - f` read inside kernel row ky's window run (the
            // caller's); the others are masked.
            let p = unsafe { x.add(ky * row_stride + f + kx * c) };
            for i in 0..N {
                let xv = unsafe { _mm512_maskz_loadu_ps(masks[i], p.add(16 * i)) };
                acc[i] = _mm512_fmadd_ps(xv, wr[3 * ky + kx], acc[i]);
            }
        }
    }
    for i in 0..N {
        // SAFETY: output values f + 16 i .. (masked to len) of the row.
        unsafe { _mm512_mask_storeu_ps(out.add(f + 16 * i), masks[i], act.apply(acc[i])) };
    }
}

/// Whether [`dw3x3`] runs this convolution: 3x3, stride 1 or 2 across.
fn is_3x3(g: &ConvGeom) -> bool {
    g.kh == 3 && g.kw == 3 && (g.sw == 1 || g.sw == 2)
}

/// A 3x3 depthwise strip of stride `SW` (1 or 2) across, `S` output pixels from `ox` of `R`
/// output rows (1, or 2 where the stride down is `SW` too: `a.out` and `a.next`, which share
/// input rows), one vector of 16 channels at a time: its nine weights stay in registers, each
/// input column of the rows' windows is loaded once and serves every tap of either row that
/// reads it, and `R S` accumulators are live. The all-vectors-at-once form of [`dw_slide3`]
/// kept `4 S` and spilled them (one thread, batch 32, best of four runs of each build: eight
/// ds-cnn-shaped layers 18.65 -> 13.37 µs an image with one row, 13.11 with two; four 48x48x8
/// layers 46.2 with one row, 43.4 with two).
#[inline]
#[allow(clippy::needless_range_loop)] // indices into two register arrays at once
#[target_feature(enable = "avx512f")]
unsafe fn dw3x3<const S: usize, const M: bool, const SW: usize, const R: usize>(
    a: &DwStrip<'_>,
    ox: usize,
    nv: usize,
) {
    let c = a.g.cin;
    // Pairs are planned where the stride down is the stride across.
    debug_assert!(R == 1 || a.g.sh == SW);
    let x0 = unsafe { a.x.add(ox * SW * c) };
    for v in 0..nv {
        let m = a.masks[v];
        let w: [__m512; 9] =
            std::array::from_fn(|t| unsafe { load::<M>(m, a.w.add(t * c + 16 * v)) });
        let b = match a.b {
            Some(b) => unsafe { _mm512_maskz_loadu_ps(m, b.add(16 * v)) },
            None => _mm512_setzero_ps(),
        };
        let mut acc = [[b; S]; R];
        let wr = |ky: usize| [w[3 * ky], w[3 * ky + 1], w[3 * ky + 2]];
        let row = |i: usize| unsafe { x0.add(i * a.row_stride + 16 * v) };
        // Input row i is kernel row i - t SW of output row t: written out (the compiler
        // keeps the accumulators in registers only where every loop unrolls).
        // SAFETY: the rows' windows are inside the padded image (see `depthwise`).
        unsafe {
            let (a0, rest) = acc.split_first_mut().expect("one row or two");
            if R == 1 {
                for ky in 0..3 {
                    taps::<S, M, SW>(m, row(ky), c, a0, wr(ky), None);
                }
            } else {
                let a1 = &mut rest[0];
                if SW == 1 {
                    taps::<S, M, SW>(m, row(0), c, a0, wr(0), None);
                    taps::<S, M, SW>(m, row(1), c, a0, wr(1), Some((a1, wr(0))));
                    taps::<S, M, SW>(m, row(2), c, a0, wr(2), Some((a1, wr(1))));
                    taps::<S, M, SW>(m, row(3), c, a1, wr(2), None);
                } else {
                    taps::<S, M, SW>(m, row(0), c, a0, wr(0), None);
                    taps::<S, M, SW>(m, row(1), c, a0, wr(1), None);
                    taps::<S, M, SW>(m, row(2), c, a0, wr(2), Some((a1, wr(0))));
                    taps::<S, M, SW>(m, row(3), c, a1, wr(1), None);
                    taps::<S, M, SW>(m, row(4), c, a1, wr(2), None);
                }
            }
        }
        for t in 0..R {
            let out = if t == 0 { a.out } else { a.next };
            for (p, &val) in acc[t].iter().enumerate() {
                let r = a.act.apply(val);
                let o = unsafe { out.add((ox + p) * c + 16 * v) };
                if M {
                    unsafe { _mm512_mask_storeu_ps(o, m, r) };
                } else {
                    unsafe { _mm512_storeu_ps(o, r) };
                }
            }
        }
    }
}

/// One input row's taps for a [`dw3x3`] strip: its columns times kernel row `wa` into the
/// sums `aa`, and where a second output row reads the same input row, times `wb` into `ab`
/// (each column loaded once for both).
#[inline]
#[allow(clippy::needless_range_loop)] // indices into register arrays
#[target_feature(enable = "avx512f")]
unsafe fn taps<const S: usize, const M: bool, const SW: usize>(
    m: u16,
    xr: *const f32,
    c: usize,
    aa: &mut [__m512; S],
    wa: [__m512; 3],
    mut b: Option<(&mut [__m512; S], [__m512; 3])>,
) {
    if SW == 1 {
        // Input column j is tap kx of pixel j - kx.
        for j in 0..S + 2 {
            let xj = unsafe { load::<M>(m, xr.add(j * c)) };
            for kx in 0..3 {
                if j >= kx && j - kx < S {
                    let p = j - kx;
                    aa[p] = _mm512_fmadd_ps(xj, wa[kx], aa[p]);
                    if let Some((ab, wb)) = b.as_mut() {
                        ab[p] = _mm512_fmadd_ps(xj, wb[kx], ab[p]);
                    }
                }
            }
        }
    } else {
        // Column 2q is tap 0 of pixel q and tap 2 of pixel q - 1; column 2q + 1 is tap 1 of
        // pixel q.
        for q in 0..=S {
            let xe = unsafe { load::<M>(m, xr.add(2 * q * c)) };
            if q < S {
                aa[q] = _mm512_fmadd_ps(xe, wa[0], aa[q]);
                if let Some((ab, wb)) = b.as_mut() {
                    ab[q] = _mm512_fmadd_ps(xe, wb[0], ab[q]);
                }
            }
            if q >= 1 {
                aa[q - 1] = _mm512_fmadd_ps(xe, wa[2], aa[q - 1]);
                if let Some((ab, wb)) = b.as_mut() {
                    ab[q - 1] = _mm512_fmadd_ps(xe, wb[2], ab[q - 1]);
                }
            }
            if q < S {
                let xo = unsafe { load::<M>(m, xr.add((2 * q + 1) * c)) };
                aa[q] = _mm512_fmadd_ps(xo, wa[1], aa[q]);
                if let Some((ab, wb)) = b.as_mut() {
                    ab[q] = _mm512_fmadd_ps(xo, wb[1], ab[q]);
                }
            }
        }
    }
}

/// A vector of 16 channels at `p`: masked to `m` only in the kernels' masked form (`M`, a
/// chunk of fewer than 16 channels); whole vectors are plain loads.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn load<const M: bool>(m: u16, p: *const f32) -> __m512 {
    if M {
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    } else {
        unsafe { _mm512_loadu_ps(p) }
    }
}

impl DwStrip<'_> {
    /// Accumulators of a strip, each set to the bias (or zero).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn init<const S: usize, const G: usize>(&self) -> [[__m512; G]; S] {
        let mut acc = [[_mm512_setzero_ps(); G]; S];
        if let Some(b) = self.b {
            for v in 0..G {
                let bv = unsafe { _mm512_maskz_loadu_ps(self.masks[v], b.add(16 * v)) };
                for row in acc.iter_mut() {
                    row[v] = bv;
                }
            }
        }
        acc
    }

    /// Store a strip from output pixel `ox` (ReLU first if fused).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store<const S: usize, const G: usize>(&self, ox: usize, acc: &[[__m512; G]; S]) {
        for (p, row) in acc.iter().enumerate() {
            for (v, &val) in row.iter().enumerate() {
                let r = self.act.apply(val);
                let o = unsafe { self.out.add((ox + p) * self.g.cin + 16 * v) };
                unsafe { _mm512_mask_storeu_ps(o, self.masks[v], r) };
            }
        }
    }
}

/// One output row's state for [`dw_pixels`]; pointers at the row's first channel `ch`.
struct DwStrip<'a> {
    /// Input at kernel row 0, column 0 of output pixel 0.
    x: *const f32,
    w: *const f32,
    b: Option<*const f32>,
    out: *mut f32,
    /// The next output row's first channel, for [`dw3x3`]'s pairs (null without one).
    next: *mut f32,
    row_stride: usize,
    g: &'a ConvGeom,
    masks: [u16; 4],
    act: ActRegs,
}

/// `S` output pixels from `ox` by `16 G` channels, every tap accumulated in registers and
/// stored once.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dw_pixels<const S: usize, const G: usize>(a: &DwStrip<'_>, ox: usize) {
    let g = a.g;
    let c = g.cin;
    let mut acc = unsafe { a.init::<S, G>() };
    let x0 = unsafe { a.x.add(ox * g.sw * c) };
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            let xt = unsafe { x0.add(ky * a.row_stride + kx * c) };
            let wt = unsafe { a.w.add((ky * g.kw + kx) * c) };
            for v in 0..G {
                let wv = unsafe { _mm512_maskz_loadu_ps(a.masks[v], wt.add(16 * v)) };
                for (p, row) in acc.iter_mut().enumerate() {
                    let xv =
                        unsafe { _mm512_maskz_loadu_ps(a.masks[v], xt.add(p * g.sw * c + 16 * v)) };
                    row[v] = _mm512_fmadd_ps(xv, wv, row[v]);
                }
            }
        }
    }
    unsafe { a.store(ox, &acc) };
}
