//! Winograd F(4x4, 3x3)'s transforms (Lavin and Gray, 2016): a 4x4 output tile from a 6x6
//! input window, 36 multiplies per 16 outputs and input channel where the direct convolution
//! does 144 (F(2x2, 3x3): 16 per 4, against 36). The interpolation points 0, ±1, ±2 and
//! infinity give coefficients up to 8 (output) and 5 (input) and 1/24 (weights, done in
//! f64), so the sums round more than F(2x2, 3x3)'s: `tests/kernels.rs` holds it to
//! `greenbench verify`'s 1e-4 (it reached 3.3e-5 there, above the 2e-5 the other fp32
//! kernels meet; on VGG-19 and ResNet-50 `verify` measured 2.5e-6 and 1.3e-6, as F(2x2)).
//! Used where a layer has tiles enough to amortise its 36 transformed weight matrices
//! (`super::Wino::new`).
//!
//! `B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//! 0 4 0 -5 0 1]`, `G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6;
//! 1/24 -1/12 1/6; 0 0 1]`, `A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
//! 0 1 -1 8 -8 1]`.

use super::{Dest, RowGemm, Wino};
use crate::direct::lane_mask;
use std::arch::x86_64::*;

/// `G g G^T` of one 3x3 kernel (row-major taps) in f64: 36 values, `xi = 6 i + j`.
pub(super) fn weight_transform(g: [f64; 9]) -> [f64; 36] {
    let gm = [
        [0.25, 0.0, 0.0],
        [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
        [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
        [0.0, 0.0, 1.0],
    ];
    let mut t = [[0.0f64; 3]; 6];
    for i in 0..6 {
        for j in 0..3 {
            t[i][j] = (0..3).map(|k| gm[i][k] * g[k * 3 + j]).sum();
        }
    }
    let mut u = [0.0f64; 36];
    for i in 0..6 {
        for j in 0..6 {
            u[i * 6 + j] = (0..3).map(|k| t[i][k] * gm[j][k]).sum();
        }
    }
    u
}

/// `B^T d` of six vectors (one column, or one row, of a window).
#[target_feature(enable = "avx512f")]
#[inline]
fn bt(d: [__m512; 6]) -> [__m512; 6] {
    let (four, five, two) = (
        _mm512_set1_ps(4.0),
        _mm512_set1_ps(5.0),
        _mm512_set1_ps(2.0),
    );
    let d12 = _mm512_add_ps(d[1], d[2]);
    let d34 = _mm512_add_ps(d[3], d[4]);
    let m12 = _mm512_sub_ps(d[1], d[2]);
    let m43 = _mm512_sub_ps(d[4], d[3]);
    let m42 = _mm512_sub_ps(d[4], d[2]);
    let m31 = _mm512_sub_ps(d[3], d[1]);
    [
        _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4])),
        _mm512_fnmadd_ps(four, d12, d34),
        _mm512_fmadd_ps(four, m12, m43),
        _mm512_fmadd_ps(two, m31, m42),
        _mm512_fnmadd_ps(two, m31, m42),
        _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5])),
    ]
}

/// `A^T m` of six vectors.
#[target_feature(enable = "avx512f")]
#[inline]
fn at(m: [__m512; 6]) -> [__m512; 4] {
    let p12 = _mm512_add_ps(m[1], m[2]);
    let m12 = _mm512_sub_ps(m[1], m[2]);
    let p34 = _mm512_add_ps(m[3], m[4]);
    let m34 = _mm512_sub_ps(m[3], m[4]);
    [
        _mm512_add_ps(_mm512_add_ps(m[0], p12), p34),
        _mm512_fmadd_ps(_mm512_set1_ps(2.0), m34, m12),
        _mm512_fmadd_ps(_mm512_set1_ps(4.0), p34, p12),
        _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0), m34, m12), m[5]),
    ]
}

impl<G: RowGemm> Wino<G> {
    /// `B^T d B` of each tile's 6x6 window (rows and columns past the input read as zero)
    /// into `v[xi][t - t0][ci]`, `xi = 6 i + j`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_transform4(&self, x: &[f32], t0: usize, nt: usize, v: *mut f32) {
        let c = self.cin;
        let zero = _mm512_setzero_ps();
        for lt in 0..nt {
            let (n, ty, tx) = self.tile_pos(t0 + lt);
            let (r0, c0) = (4 * ty, 4 * tx);
            let img = n * self.hp * self.wp * c;
            let mut cv = 0;
            while cv < c {
                let mask = lane_mask(c - cv, 0);
                // Columns first: t[i][j] = (B^T d)[i][j], one window column at a time.
                let mut t = [[zero; 6]; 6];
                for j in 0..6 {
                    let mut col = [zero; 6];
                    if c0 + j < self.wp {
                        for (i, d) in col.iter_mut().enumerate() {
                            if r0 + i < self.hp {
                                let o = img + ((r0 + i) * self.wp + c0 + j) * c + cv;
                                // SAFETY: pixel (r0 + i, c0 + j) of image n lies in `x`
                                // (the caller's length check), lanes masked to its channels.
                                *d = unsafe { _mm512_maskz_loadu_ps(mask, x.as_ptr().add(o)) };
                            }
                        }
                    }
                    for (i, r) in bt(col).into_iter().enumerate() {
                        t[i][j] = r;
                    }
                }
                // Rows: (B^T d) B, stored by xi.
                for (i, row) in t.iter().enumerate() {
                    for (j, r) in bt(*row).into_iter().enumerate() {
                        let o = (6 * i + j) * self.vstride() + lt * c + cv;
                        // SAFETY: xi < 36, lt < chunk, lanes masked to cin: inside `v`.
                        unsafe { _mm512_mask_storeu_ps(v.add(o), mask, r) };
                    }
                }
                cv += 16;
            }
        }
    }

    /// `A^T m A` of each tile's 36 products, plus bias, residual and activation, stored for
    /// the tile's output pixels inside the image.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_transform4(
        &self,
        t0: usize,
        nt: usize,
        m: *const f32,
        d: &Dest<'_>,
    ) {
        let c = self.cout;
        for lt in 0..nt {
            let (n, ty, tx) = self.tile_pos(t0 + lt);
            let mut cv = 0;
            while cv < c {
                let mask = lane_mask(c - cv, 0);
                // Columns: s[k][j] = (A^T m)[k][j].
                let mut s = [[_mm512_setzero_ps(); 6]; 4];
                for j in 0..6 {
                    let col: [__m512; 6] = std::array::from_fn(|i| {
                        let o = (6 * i + j) * self.mstride() + lt * c + cv;
                        // SAFETY: inside `M` (xi < 36, lt < chunk), lanes masked.
                        unsafe { _mm512_maskz_loadu_ps(mask, m.add(o)) }
                    });
                    for (k, r) in at(col).into_iter().enumerate() {
                        s[k][j] = r;
                    }
                }
                // SAFETY: the bias is padded to whole vectors.
                let bias = unsafe { _mm512_loadu_ps(d.bias.as_ptr().add(cv)) };
                for (k, sk) in s.iter().enumerate() {
                    let oy = 4 * ty + k;
                    if oy >= self.ho {
                        continue;
                    }
                    for (l, yv) in at(*sk).into_iter().enumerate() {
                        let ox = 4 * tx + l;
                        if ox >= self.wo {
                            continue;
                        }
                        let q = (n * self.ho + oy) * self.wo + ox;
                        // SAFETY: the plan's layout (see `Dest`).
                        unsafe { self.store(d, q, cv, mask, _mm512_add_ps(yv, bias)) };
                    }
                }
                cv += 16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::weight_transform;

    /// F(4, 3) in one dimension, from the transforms: `A^T [(G g) . (B^T d)]` equals the
    /// direct correlation of `d` (6 values) with `g` (3) at all four outputs.
    #[test]
    fn transforms_compute_a_correlation() {
        let g = [0.3, -1.2, 2.5];
        let d = [1.5, -0.25, 4.0, 0.75, -2.0, 3.25];
        // For a kernel whose only non-zero row is the first (g), `G g2 G^T` is the outer
        // product of G's first column and `G g`: its row 0 is `G[0][0] G g = (G g) / 4`.
        let g2: [f64; 9] = std::array::from_fn(|t| if t / 3 == 0 { g[t % 3] } else { 0.0 });
        let u = weight_transform(g2);
        let gg: Vec<f64> = (0..6).map(|j| u[j] / 0.25).collect();
        let bd = [
            4.0 * d[0] - 5.0 * d[2] + d[4],
            -4.0 * d[1] - 4.0 * d[2] + d[3] + d[4],
            4.0 * d[1] - 4.0 * d[2] - d[3] + d[4],
            -2.0 * d[1] - d[2] + 2.0 * d[3] + d[4],
            2.0 * d[1] - d[2] - 2.0 * d[3] + d[4],
            4.0 * d[1] - 5.0 * d[3] + d[5],
        ];
        let m: Vec<f64> = (0..6).map(|i| gg[i] * bd[i]).collect();
        let y = [
            m[0] + m[1] + m[2] + m[3] + m[4],
            m[1] - m[2] + 2.0 * (m[3] - m[4]),
            m[1] + m[2] + 4.0 * (m[3] + m[4]),
            m[1] - m[2] + 8.0 * (m[3] - m[4]) + m[5],
        ];
        for k in 0..4 {
            let want: f64 = (0..3).map(|t| d[k + t] * g[t]).sum();
            assert!(
                (y[k] - want).abs() < 1e-12,
                "output {k}: {} vs {want}",
                y[k]
            );
        }
    }
}
