//! Which activation buffers share memory: a buffer's memory goes back to a pool after the
//! last step that reads it, and a later buffer takes the smallest free block that holds it
//! (or the largest free one, grown). Every buffer once had memory of its own: each layer's
//! output then went to memory untouched since the previous run (ResNet-50 at batch 1: 47 MB
//! of buffers, beyond this VM's 32 MB L3; shared: 13.6 MB, docs/ONNX.md), where a few blocks
//! reused stay in cache.
//!
//! Buffers stored with a zero border (zeroed once, in `prepare`; steps write inside it only)
//! share blocks only with buffers of the same layout, which keep the same places zero, and
//! blocks of fixed size. The input and the output buffers keep memory of their own.

use crate::step::Step;

/// Where each buffer lives: a block shared with others, or memory of its own.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Reuse {
    /// Sizes (values) of the shared blocks.
    pub(crate) blocks: Vec<usize>,
    /// Per buffer id: its block, or `None` for memory of its own.
    pub(crate) block_of: Vec<Option<usize>>,
}

impl Reuse {
    /// Plan the sharing of buffers of `sizes` written and read by `steps` in order; `own[b]`:
    /// buffer `b` keeps memory of its own; `layout[b]`: buffer `b` is stored with a border of
    /// this layout (it shares only with the same layout).
    pub(crate) fn plan(
        sizes: &[usize],
        own: &[bool],
        layout: &[Option<Vec<usize>>],
        steps: &[Step],
    ) -> Reuse {
        let n = sizes.len();
        // First step that writes, first that reads, last that reads or writes, each buffer.
        let mut first = vec![usize::MAX; n];
        let mut first_read = vec![usize::MAX; n];
        let mut last = vec![0usize; n];
        for (i, st) in steps.iter().enumerate() {
            for b in st.reads() {
                first_read[b] = first_read[b].min(i);
                last[b] = last[b].max(i);
            }
            let d = st.dst();
            first[d] = first[d].min(i);
            last[d] = last[d].max(i);
        }
        let mut r = Reuse {
            blocks: vec![],
            block_of: vec![None; n],
        };
        // Buffers by the step that first writes them; a buffer read before any step writes
        // it (none should be, but the input is) keeps its own memory.
        let mut starts: Vec<Vec<usize>> = vec![vec![]; steps.len()];
        for b in 0..n {
            if !own[b] && first[b] != usize::MAX && first_read[b] >= first[b] {
                starts[first[b]].push(b);
            }
        }
        // Free blocks, and the layout each was made for (`None`: plain values, any size).
        let mut free: Vec<usize> = vec![];
        let mut block_layout: Vec<Option<Vec<usize>>> = vec![];
        // Blocks in use: (block, the last step that needs it).
        let mut busy: Vec<(usize, usize)> = vec![];
        for (i, bufs) in starts.iter().enumerate() {
            // Blocks whose buffer's last step came before this one are free again.
            busy.retain(|&(blk, end)| {
                if end < i {
                    free.push(blk);
                    false
                } else {
                    true
                }
            });
            for &b in bufs {
                let need = sizes[b];
                let lay = layout.get(b).cloned().flatten();
                let same = |k: &usize| block_layout[free[*k]] == lay;
                let fits = (0..free.len())
                    .filter(|k| same(k) && r.blocks[free[*k]] >= need)
                    .min_by_key(|&k| r.blocks[free[k]]);
                // A plain buffer may grow the largest plain block; a bordered one never grows.
                let largest = || {
                    (0..free.len())
                        .filter(|k| lay.is_none() && same(k))
                        .max_by_key(|&k| r.blocks[free[k]])
                };
                let blk = match fits.or_else(largest) {
                    Some(k) => {
                        let blk = free.swap_remove(k);
                        r.blocks[blk] = r.blocks[blk].max(need);
                        blk
                    }
                    None => {
                        r.blocks.push(need);
                        block_layout.push(lay);
                        r.blocks.len() - 1
                    }
                };
                r.block_of[b] = Some(blk);
                busy.push((blk, last[b]));
            }
        }
        r
    }

    /// Values allocated: the shared blocks and the buffers of their own.
    #[cfg(test)]
    pub(crate) fn total(&self, sizes: &[usize]) -> usize {
        let own: usize = sizes
            .iter()
            .zip(&self.block_of)
            .filter(|(_, b)| b.is_none())
            .map(|(s, _)| s)
            .sum();
        own + self.blocks.iter().sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn relu(src: usize, dst: usize) -> Step {
        Step::Relu { src, dst }
    }

    /// Every buffer in a block fits it, and no two buffers of one block are in use at a
    /// common step (from the first step that writes one to the last that reads or writes it).
    fn check(r: &Reuse, sizes: &[usize], steps: &[Step]) {
        let live = |b: usize| {
            let touches = |st: &Step| st.dst() == b || st.reads().contains(&b);
            let first = steps.iter().position(|st| st.dst() == b);
            let last = steps.iter().rposition(touches);
            first.zip(last)
        };
        for (b, blk) in r.block_of.iter().enumerate() {
            let Some(blk) = blk else { continue };
            assert!(
                r.blocks[*blk] >= sizes[b],
                "buffer {b} does not fit its block"
            );
            let (s0, e0) = live(b).expect("a shared buffer is written");
            for (c, other) in r.block_of.iter().enumerate().skip(b + 1) {
                if *other == Some(*blk) {
                    let (s1, e1) = live(c).expect("a shared buffer is written");
                    assert!(
                        e0 < s1 || e1 < s0,
                        "buffers {b} and {c} share a block in use"
                    );
                }
            }
        }
    }

    /// A chain 0 -> 1 -> 2 -> 3 -> 4 (buffer 0 the input, kept): two blocks, alternating.
    #[test]
    fn a_chain_alternates_between_two_blocks() {
        let sizes = [8, 8, 8, 8, 8];
        let own = [true, false, false, false, false];
        let steps = [relu(0, 1), relu(1, 2), relu(2, 3), relu(3, 4)];
        let r = Reuse::plan(&sizes, &own, &[], &steps);
        assert_eq!(r.block_of[0], None);
        assert_eq!(r.block_of[1], r.block_of[3]);
        assert_eq!(r.block_of[2], r.block_of[4]);
        assert_ne!(r.block_of[1], r.block_of[2]);
        assert_eq!(r.total(&sizes), 8 + 16);
        check(&r, &sizes, &steps);
    }

    /// A residual read by the last step keeps its block until then, and the block freed
    /// before it goes to the next buffer.
    #[test]
    fn a_residual_keeps_its_block() {
        let sizes = [8, 8, 8, 30, 8];
        let own = [true, false, false, false, false];
        let steps = [
            relu(0, 1),
            relu(1, 2),
            relu(2, 3),
            Step::Add { a: 3, b: 1, dst: 4 },
        ];
        let r = Reuse::plan(&sizes, &own, &[], &steps);
        assert_ne!(r.block_of[3], r.block_of[1]);
        assert_ne!(r.block_of[4], r.block_of[1]);
        // 3 is written by the step that reads 2 last, so it takes a third block; 4 then
        // takes 2's, free after step 2.
        assert_eq!(r.block_of[4], r.block_of[2]);
        assert_eq!(r.blocks.len(), 3);
        check(&r, &sizes, &steps);
    }

    /// No free block fits: the largest free one grows to the buffer's size.
    #[test]
    fn a_free_block_grows_for_a_larger_buffer() {
        let sizes = [8, 8, 8, 30];
        let own = [true, false, false, false];
        let steps = [relu(0, 1), relu(1, 2), relu(2, 3)];
        let r = Reuse::plan(&sizes, &own, &[], &steps);
        assert_eq!(r.block_of[3], r.block_of[1]);
        assert_eq!(r.blocks[r.block_of[3].unwrap()], 30);
        assert_eq!(r.blocks.len(), 2);
        check(&r, &sizes, &steps);
    }

    proptest! {
        /// Random step sequences (each step writes a new buffer from one or two earlier
        /// ones; some buffers kept, some steps writing a buffer again, some buffers of two
        /// bordered layouts): the plan never shares a block between buffers in use at a
        /// common step, nor between buffers of different layouts.
        #[test]
        fn no_block_is_shared_by_buffers_in_use_together(
            n in 1usize..30,
            picks in proptest::collection::vec((0usize..1000, 0usize..1000, 0usize..4), 30),
            sizes in proptest::collection::vec(1usize..100, 31),
            kept in proptest::collection::vec(any::<bool>(), 31),
            layouts in proptest::collection::vec(0usize..3, 31),
        ) {
            let mut steps = vec![];
            for (i, &(a, b, kind)) in picks.iter().take(n).enumerate() {
                // Step i writes buffer i + 1 (or, kind 3, again a buffer written before).
                let (a, b) = (a % (i + 1), b % (i + 1));
                steps.push(match kind {
                    0 => relu(a, i + 1),
                    3 if a > 0 => Step::Add { a: b, b, dst: a },
                    _ => Step::Add { a, b, dst: i + 1 },
                });
            }
            let mut own: Vec<bool> = kept[..=n].to_vec();
            own[0] = true;
            // Layout 0: plain values; 1, 2: two bordered layouts (a size of their own each).
            let layout: Vec<Option<Vec<usize>>> =
                layouts[..=n].iter().map(|&l| (l > 0).then(|| vec![l])).collect();
            let sizes: Vec<usize> = sizes[..=n]
                .iter()
                .zip(&layouts)
                .map(|(&s, &l)| if l > 0 { 40 * l } else { s })
                .collect();
            let r = Reuse::plan(&sizes, &own, &layout, &steps);
            check(&r, &sizes, &steps);
            for (b, blk) in r.block_of.iter().enumerate() {
                for (c, other) in r.block_of.iter().enumerate() {
                    if blk.is_some() && blk == other {
                        prop_assert_eq!(&layout[b], &layout[c], "buffers {} and {}", b, c);
                    }
                }
            }
            for (b, &k) in own.iter().enumerate() {
                if k {
                    prop_assert!(r.block_of[b].is_none());
                }
            }
        }
    }
}
