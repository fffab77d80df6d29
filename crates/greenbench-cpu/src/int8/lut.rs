//! A unary elementwise fp32 node between two uint8 values (a transformer's GELU between its
//! feed-forward layers, a sigmoid or h-swish between convolutions) as one table of its 256
//! results: the reference's own arithmetic (dequantize, the node in f64, quantize) done once
//! per possible input byte at plan time, then a byte lookup per value instead of the three
//! border steps. On AVX-512 VBMI 64 lookups are two `vpermt2b`s (each half of the table) and
//! a blend on the index's top bit.

use greenbench_core::graph::Op;
use greenbench_core::quant::QModel;

/// The 256 results of node `i` (`table[q]`: the node's output quantized, for its input's
/// byte `q` dequantized) when it is a unary elementwise node whose input and output are both
/// held as uint8; `None` otherwise. Each entry is what the quantized reference
/// (`greenbench_core::quant::run_reference_q`) computes for that byte, so the lookup matches it
/// bit for bit.
pub(super) fn table(qm: &QModel, i: usize) -> Option<Box<[u8; 256]>> {
    let g = &qm.graph;
    let ins = g.node_inputs(i);
    let unary = matches!(
        g.nodes[i].op,
        Op::Relu | Op::Gelu | greenbench_core::unary_ops!()
    );
    if ins.len() != 1 || !unary {
        return None;
    }
    let (pin, pout) = (qm.values[ins[0]]?, qm.values[i + 1]?);
    let mut vals = vec![vec![]; g.nodes.len() + 1];
    vals[ins[0]] = (0..=255u8).map(|q| pin.dequantize(q)).collect();
    let y = greenbench_core::reference::eval_node(g, &qm.weights, i, &vals);
    assert_eq!(y.len(), 256, "an elementwise node maps each value");
    let mut t = Box::new([0u8; 256]);
    for (o, &v) in t.iter_mut().zip(&y) {
        *o = pout.quantize(v);
    }
    Some(t)
}

/// `y[j] = table[x[j]]` for every value of `x` (`y` at least as long).
pub(super) fn lookup(x: &[u8], table: &[u8; 256], y: &mut [u8]) {
    let y = &mut y[..x.len()];
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512vbmi")
        && std::arch::is_x86_feature_detected!("avx512bw")
    {
        // SAFETY: AVX-512 F/BW/VBMI are present.
        unsafe { lookup_vbmi(x, table, y) };
        return;
    }
    for (o, &q) in y.iter_mut().zip(x) {
        *o = table[q as usize];
    }
}

/// [`lookup`] 64 values at a time, the last block masked.
///
/// # Safety
/// AVX-512 F/BW/VBMI; `y` as long as `x`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
unsafe fn lookup_vbmi(x: &[u8], table: &[u8; 256], y: &mut [u8]) {
    use std::arch::x86_64::*;
    assert_eq!(x.len(), y.len());
    // SAFETY: the table's four 64-byte quarters.
    let t = |k: usize| unsafe { _mm512_loadu_si512(table.as_ptr().add(64 * k) as *const __m512i) };
    let (t0, t1, t2, t3) = (t(0), t(1), t(2), t(3));
    let mut j = 0;
    while j < x.len() {
        let n = (x.len() - j).min(64);
        let m: u64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
        // SAFETY: the mask keeps the loads and the store inside `x` and `y` (values j..j + n).
        unsafe {
            let q = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(j) as *const i8);
            // Index bits 0-6 pick a byte of the two quarters; bit 7 the table's half.
            let lo = _mm512_permutex2var_epi8(t0, q, t1);
            let hi = _mm512_permutex2var_epi8(t2, q, t3);
            let r = _mm512_mask_blend_epi8(_mm512_movepi8_mask(q), lo, hi);
            _mm512_mask_storeu_epi8(y.as_mut_ptr().add(j) as *mut i8, m, r);
        }
        j += 64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// The lookup (VBMI where present) against indexing the table, every length up to
        /// a few blocks (the masked last block), bytes of every value.
        #[test]
        fn lookup_matches_indexing(
            table in proptest::collection::vec(any::<u8>(), 256),
            x in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let t: [u8; 256] = table.try_into().unwrap();
            let mut y = vec![7u8; x.len() + 5];
            lookup(&x, &t, &mut y);
            let want: Vec<u8> = x.iter().map(|&q| t[q as usize]).collect();
            prop_assert_eq!(&y[..x.len()], &want[..]);
            prop_assert!(y[x.len()..].iter().all(|&v| v == 7), "wrote past the input");
        }
    }
}
