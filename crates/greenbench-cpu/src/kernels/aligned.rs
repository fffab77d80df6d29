//! Packed weights and kernel scratch on 64-byte cache lines.
//!
//! A `Vec` of this size starts 16 bytes into a line (glibc's `malloc`), so every 64-byte
//! vector load of packed weights at a multiple of 64 bytes straddled two lines. Activations
//! already had [`super::Buf`]; weights and scratch take [`AVec`]. Measured on the dev VM
//! (Intel Xeon with AMX, 2026-12-05; `greenbench run --models <ResNet-50> --batch 1
//! --threads 1`, layers run alone): the direct fp32 kernels' 1x1 convolution at 14x14 (256 ->
//! 1024 channels) 668-682 -> 607-629 us, the 3x3 at 7x7 (512 channels) 1540-1613 -> 1377-1458.
//! The int8 weights too (`greenbench run --models ... --batch 32 --precision int8 --threads 2`,
//! three alternating rounds, us): mlp 0.42-0.54 -> 0.35-0.38, resnet8 28.5-28.7 -> 26.9-27.7,
//! lenet5 4.98-5.30 -> 4.72-5.37; fp32 depthwise weights: no change measured (ds-cnn, mobilenet).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// Element types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for types whose all-zero bit pattern is a value (plain numbers).
pub unsafe trait Zeroable: Copy {}
// SAFETY: plain numbers.
unsafe impl Zeroable for f32 {}
// SAFETY: plain numbers.
unsafe impl Zeroable for i32 {}
// SAFETY: plain numbers.
unsafe impl Zeroable for u16 {}
// SAFETY: plain numbers.
unsafe impl Zeroable for i16 {}
// SAFETY: plain numbers.
unsafe impl Zeroable for i8 {}
// SAFETY: plain numbers.
unsafe impl Zeroable for u8 {}

/// Cache line, and the alignment of every [`AVec`].
pub const LINE: usize = 64;

/// A fixed-length, zero-initialised array whose first element starts a cache line.
pub struct AVec<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: an `AVec` owns its memory as a `Vec` does.
unsafe impl<T: Zeroable + Send> Send for AVec<T> {}
// SAFETY: as above; shared access only reads.
unsafe impl<T: Zeroable + Sync> Sync for AVec<T> {}

impl<T: Zeroable> AVec<T> {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len.max(1) * size_of::<T>(), LINE).expect("aligned array too large")
    }

    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        if len == 0 || size_of::<T>() == 0 {
            return Self::default();
        }
        // SAFETY: the layout's size is non-zero; zero bytes are a `T` (`Zeroable`).
        let raw = unsafe { alloc_zeroed(Self::layout(len)) } as *mut T;
        let ptr =
            NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(Self::layout(len)));
        AVec { ptr, len }
    }

    /// A line-aligned copy of `v`.
    pub fn from_slice(v: &[T]) -> Self {
        let mut a = Self::zeroed(v.len());
        a.copy_from_slice(v);
        a
    }
}

impl<T: Zeroable> AVec<T> {
    pub fn as_slice(&self) -> &[T] {
        self
    }
}

impl<'a, T: Zeroable> IntoIterator for &'a AVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T: Zeroable> IntoIterator for &'a mut AVec<T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T: Zeroable> Default for AVec<T> {
    fn default() -> Self {
        AVec {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }
}

impl<T: Zeroable> Drop for AVec<T> {
    fn drop(&mut self) {
        if self.len > 0 && size_of::<T>() > 0 {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { dealloc(self.ptr.as_ptr() as *mut u8, Self::layout(self.len)) };
        }
    }
}

impl<T: Zeroable> Clone for AVec<T> {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

impl<T: Zeroable> From<Vec<T>> for AVec<T> {
    fn from(v: Vec<T>) -> Self {
        Self::from_slice(&v)
    }
}

impl<T: Zeroable> std::ops::Deref for AVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised values (or a dangling pointer and length 0).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> std::ops::DerefMut for AVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, and `&mut self` is unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable + std::fmt::Debug> std::fmt::Debug for AVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_a_line_and_keeps_its_values() {
        for len in [0usize, 1, 15, 16, 17, 1000, 65_537] {
            let v: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let a = AVec::from_slice(&v);
            assert_eq!(&a[..], &v[..]);
            if len > 0 {
                assert_eq!(a.as_ptr() as usize % LINE, 0, "len {len}");
            }
            let b = a.clone();
            assert_eq!(&b[..], &v[..]);
            let z = AVec::<u16>::zeroed(len);
            assert!(z.iter().all(|&x| x == 0));
            if len > 0 {
                assert_eq!(z.as_ptr() as usize % LINE, 0);
            }
        }
    }
}
