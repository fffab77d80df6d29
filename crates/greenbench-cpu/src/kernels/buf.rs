//! Activation memory: a line-aligned buffer of its own, or a view of a shared block.

/// A zeroed `f32` buffer whose data starts on a 64-byte cache line, so a 16-lane vector at
/// a multiple of 16 values never straddles two lines (a `Vec<f32>` of this size starts 16
/// bytes into a page, so every such load and store of an activation did). Measured on the
/// dev VM (quick profile, 2 threads, us per example, Vec -> Buf for activations and pad
/// buffers): mobilenet b32 94.0-94.7 -> 89.2-91.4, ds-cnn b32 22.8-23.6 -> 21.6-23.1,
/// resnet8 b1 119 -> 115, mlp b32 2.15 -> 1.97.
///
/// A buffer may instead be a view of another's memory (`Buf::view`: activations sharing a
/// block, `reuse.rs`).
pub struct Buf {
    v: Vec<f32>,
    off: usize,
    len: usize,
    /// Start of the memory viewed, or null when the buffer owns `v`.
    view: *mut f32,
}

impl Default for Buf {
    fn default() -> Self {
        Buf {
            v: Vec::new(),
            off: 0,
            len: 0,
            view: std::ptr::null_mut(),
        }
    }
}

// SAFETY: a view points into a block that the plan's `Buffers` owns for as long as the view
// exists, and the plan never gives two buffers in use at the same step the same memory
// (`reuse.rs`); otherwise a `Buf` is a `Vec`.
unsafe impl Send for Buf {}
// SAFETY: as above.
unsafe impl Sync for Buf {}

impl Buf {
    /// `len` zeros, line-aligned.
    pub fn zeros(len: usize) -> Self {
        let v = vec![0.0f32; len + 15];
        let off = v.as_ptr().align_offset(64).min(15);
        Buf {
            v,
            off,
            len,
            view: std::ptr::null_mut(),
        }
    }

    /// The first `len` values of `block`'s memory, as a buffer of its own.
    ///
    /// # Safety
    /// `block` outlives the view and is never reallocated; no two views of it are used at
    /// the same time in overlapping ways.
    pub(crate) unsafe fn view(block: &mut Buf, len: usize) -> Self {
        assert!(len <= block.len, "a view past its block");
        Buf {
            v: Vec::new(),
            off: 0,
            len,
            view: block.as_mut_ptr(),
        }
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        if self.view.is_null() {
            &self.v[self.off..self.off + self.len]
        } else {
            // SAFETY: `view`'s contract: the block holds `len` values and outlives this.
            unsafe { std::slice::from_raw_parts(self.view, self.len) }
        }
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl std::ops::DerefMut for Buf {
    fn deref_mut(&mut self) -> &mut [f32] {
        if self.view.is_null() {
            &mut self.v[self.off..self.off + self.len]
        } else {
            // SAFETY: as in `as_slice`; `&mut self` is the only use of this view now.
            unsafe { std::slice::from_raw_parts_mut(self.view, self.len) }
        }
    }
}
