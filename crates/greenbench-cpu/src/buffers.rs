//! The activation memory of a plan: every buffer allocated in `prepare`, none in `run`.
//! Buffers start on a 64-byte line (`kernels::Buf`); the input may be stored inside the zero
//! border its convolutions read (then loading it is the only copy); team runs reach the
//! buffers through raw pointers refreshed at the start of each run.

use crate::kernels::Buf;
use crate::reuse::Reuse;

/// A buffer's data pointer and length, for team runs (see `team`).
#[derive(Clone, Copy)]
pub(crate) struct RawBuf {
    pub(crate) ptr: *mut f32,
    pub(crate) len: usize,
}

impl Default for RawBuf {
    fn default() -> Self {
        RawBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
        }
    }
}

impl RawBuf {
    fn of(b: &mut Buf) -> Self {
        RawBuf {
            ptr: b.as_mut_ptr(),
            len: b.len(),
        }
    }

    /// The buffer as a slice.
    ///
    /// # Safety
    /// The buffer outlives the slice, and no thread writes the part read meanwhile (the
    /// team's phase ordering guarantees it).
    pub(crate) unsafe fn slice<'a>(self) -> &'a [f32] {
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

// SAFETY: shared between the threads of one team run, which write disjoint parts (units) or
// run whole steps alone; see `team::team_walk`.
unsafe impl Send for RawBuf {}
// SAFETY: as above.
unsafe impl Sync for RawBuf {}

/// Activations, scratch and padded-input copies of one plan.
#[derive(Default)]
pub(crate) struct Buffers {
    /// Activations; a buffer id is an index here. Some are views of `blocks`.
    pub(crate) bufs: Vec<Buf>,
    /// Memory that buffers in use at different steps share (`reuse.rs`): owned here, read
    /// and written only through the views in `bufs`.
    #[allow(dead_code)]
    pub(crate) blocks: Vec<Buf>,
    /// im2col patches and attention scores.
    pub(crate) scratch: Buf,
    /// Zero-bordered input copies of padded direct convolutions.
    pub(crate) pads: Vec<Buf>,
    /// Data pointers of `bufs` and `pads`, refreshed at the start of each team run.
    pub(crate) buf_ptrs: Vec<RawBuf>,
    pub(crate) pad_ptrs: Vec<RawBuf>,
    /// Data pointer of `scratch` (attention's scores, split across a team by task).
    pub(crate) scratch_ptr: RawBuf,
    /// The buffer the input is loaded into, and the one the output is read from.
    pub(crate) input: usize,
    pub(crate) output: usize,
    /// Set when the input is stored with a zero border (its convolutions' padding): the
    /// border and the per-example (h, w, c).
    pub(crate) input_border: Option<([usize; 4], [usize; 3])>,
}

/// Values a line of an input without a border (`Buffers::input_lines`).
pub(crate) const INPUT_LINE: usize = 4096;

impl Buffers {
    /// Zeroed buffers of the given lengths, those `reuse` shares as views of its blocks;
    /// scratch and pads.
    pub(crate) fn new(sizes: &[usize], reuse: &Reuse, scratch_len: usize, pads: Vec<Buf>) -> Self {
        let mut blocks: Vec<Buf> = reuse.blocks.iter().map(|&n| Buf::zeros(n)).collect();
        let bufs = sizes
            .iter()
            .zip(&reuse.block_of)
            .map(|(&n, blk)| match blk {
                // SAFETY: the blocks live in `self.blocks` as long as the views, never
                // reallocated; the plan gives no two buffers in use at once one block.
                Some(k) => unsafe { Buf::view(&mut blocks[*k], n) },
                None => Buf::zeros(n),
            })
            .collect();
        Buffers {
            bufs,
            blocks,
            scratch: Buf::zeros(scratch_len),
            buf_ptrs: vec![RawBuf::default(); sizes.len()],
            pad_ptrs: vec![RawBuf::default(); pads.len()],
            pads,
            ..Buffers::default()
        }
    }

    /// No buffer for the input (it is read where the caller holds it) and one output buffer
    /// of `output_len` values: buffers 0 and 1.
    pub(crate) fn output_only(output_len: usize) -> Self {
        Buffers {
            bufs: vec![Buf::default(), Buf::zeros(output_len)],
            output: 1,
            ..Buffers::default()
        }
    }

    /// Refresh the raw pointers team threads use.
    pub(crate) fn refresh_ptrs(&mut self) {
        for (p, b) in self.buf_ptrs.iter_mut().zip(self.bufs.iter_mut()) {
            *p = RawBuf::of(b);
        }
        for (p, b) in self.pad_ptrs.iter_mut().zip(self.pads.iter_mut()) {
            *p = RawBuf::of(b);
        }
        self.scratch_ptr = RawBuf {
            ptr: self.scratch.as_mut_ptr(),
            len: self.scratch.len(),
        };
    }

    /// Lines of an input of `len` values (already checked) as `load_input_lines` splits it:
    /// image rows where the input has a border, else blocks of [`INPUT_LINE`] values.
    pub(crate) fn input_lines(&self, len: usize) -> usize {
        match self.input_border {
            None => len.div_ceil(INPUT_LINE),
            Some((_, [_, w, c])) => len / (w * c),
        }
    }

    /// Copy lines `lines` (of [`Self::input_lines`]) of `x` (already checked) into the input
    /// buffer through `buf_ptrs`, inside its border if it has one: a team unit's part.
    ///
    /// # Safety
    /// `buf_ptrs` are fresh; units copy disjoint lines while nothing reads the input buffer.
    pub(crate) unsafe fn load_input_lines(&self, x: &[f32], lines: std::ops::Range<usize>) {
        // SAFETY: the caller's contract.
        unsafe { self.copy_lines(self.buf_ptrs[self.input], x, lines) }
    }

    /// Copy `x` (already checked) into the input buffer, inside its border if it has one.
    pub(crate) fn load_input(&mut self, x: &[f32]) {
        let y = RawBuf::of(&mut self.bufs[self.input]);
        // SAFETY: `y` is the input buffer, borrowed mutably through `self` for the call.
        unsafe { self.copy_lines(y, x, 0..self.input_lines(x.len())) }
    }

    /// Lines `lines` of `x` into `y` (the input buffer), inside its border if it has one.
    ///
    /// # Safety
    /// `y` is the input buffer's memory, which no one else reads or writes in these lines.
    unsafe fn copy_lines(&self, y: RawBuf, x: &[f32], lines: std::ops::Range<usize>) {
        let Some(([t, b, l, r], [h, w, c])) = self.input_border else {
            let r = lines.start * INPUT_LINE..(lines.end * INPUT_LINE).min(x.len());
            assert!(r.end <= y.len, "input lines past their buffer");
            // SAFETY: inside the buffer (checked); callers copy disjoint lines.
            unsafe {
                std::ptr::copy_nonoverlapping(x.as_ptr().add(r.start), y.ptr.add(r.start), r.len())
            };
            return;
        };
        let (hp, wp) = (h + t + b, w + l + r);
        for line in lines {
            let (n, iy) = (line / h, line % h);
            let o = ((n * hp + iy + t) * wp + l) * c;
            let row = &x[line * w * c..(line + 1) * w * c];
            assert!(o + row.len() <= y.len, "input line past its buffer");
            // SAFETY: inside the buffer (checked); callers copy disjoint lines.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), y.ptr.add(o), row.len()) };
        }
    }
}
