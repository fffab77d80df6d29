//! Data movement kernels: axis permutations, concatenation parts and channel shuffles
//! (copies, no arithmetic).

use super::min_len;
use greenbench_core::strided::Strided;
use rayon::prelude::*;

/// `y = x` with its axes permuted, over the map `p` (`Strided::transpose`): contiguous runs
/// are copies, the others strided gathers.
pub fn transpose(x: &[f32], p: &Strided, y: &mut [f32]) {
    let (n, s) = (p.run(), p.inner(0));
    p.runs(|o, offs| {
        let out = &mut y[o..o + n];
        if s == 1 {
            out.copy_from_slice(&x[offs[0]..offs[0] + n]);
        } else {
            for (j, v) in out.iter_mut().enumerate() {
                *v = x[offs[0] + j * s];
            }
        }
    });
}

/// Concatenation: for each of `outer` blocks, `parts[j]` values of source `j` in turn.
pub fn concat_part(
    src: &[f32],
    part: usize,
    offset: usize,
    row: usize,
    outer: usize,
    y: &mut [f32],
) {
    for o in 0..outer {
        y[o * row + offset..o * row + offset + part]
            .copy_from_slice(&src[o * part..(o + 1) * part]);
    }
}

/// ShuffleNet's channel shuffle of rows of `c = groups x k`: `y[j * groups + g] = x[g * k + j]`.
pub fn channel_shuffle(x: &[f32], c: usize, groups: usize, y: &mut [f32]) {
    y[..x.len()]
        .par_chunks_mut(c)
        .zip(x.par_chunks(c))
        .with_min_len(min_len())
        .for_each(|(o, i)| shuffle_pixels(i, c, groups, o));
}

/// [`channel_shuffle`] on the calling thread: every pixel of `x` (`c` values each) into `y`.
pub fn shuffle_pixels(x: &[f32], c: usize, groups: usize, y: &mut [f32]) {
    let k = c / groups;
    for (o, i) in y[..x.len()].chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        match groups {
            2 => shuffle_pixel::<2>(i, k, o),
            3 => shuffle_pixel::<3>(i, k, o),
            4 => shuffle_pixel::<4>(i, k, o),
            8 => shuffle_pixel::<8>(i, k, o),
            _ => {
                for (j, out) in o.chunks_exact_mut(groups).enumerate() {
                    for (g, v) in out.iter_mut().enumerate() {
                        *v = i[g * k + j];
                    }
                }
            }
        }
    }
}

/// One pixel's channel shuffle with `G` groups of `k` channels: output block `j` of `G`
/// values gathers value `j` of every group. The groups are read as `G` sequential streams
/// (no bounds checks in the loop), so the compiler interleaves them with vector shuffles
/// (a per-value indexed loop ran ShuffleNet's shuffles at 13 % of its time on one thread).
#[inline(always)]
fn shuffle_pixel<const G: usize>(i: &[f32], k: usize, o: &mut [f32]) {
    let streams: [&[f32]; G] = std::array::from_fn(|g| &i[g * k..(g + 1) * k]);
    for (j, out) in o[..G * k].chunks_exact_mut(G).enumerate() {
        let out: &mut [f32; G] = out.try_into().expect("G values");
        for g in 0..G {
            // SAFETY: `j < k` (the output has `k` blocks of `G`), and each stream holds `k`.
            out[g] = unsafe { *streams[g].get_unchecked(j) };
        }
    }
}
