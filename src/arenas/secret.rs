//! Owned secrets in witness memory: [`SecretBox`] and [`SecretVec`].
//!
//! Both live in a [`WitnessArena`], so their bytes are locked, excluded from
//! core dumps and wiped on free. On top of that they close the two leaks
//! that ordinary containers have:
//!
//! * **No copies on growth.** `SecretVec` grows by allocating a new witness
//!   block, copying, and *wiping* the old one (`Vec` growth leaves the old
//!   buffer's bytes behind in freed memory).
//! * **No copies on the stack.** `SecretBox::new_with` hands the closure a
//!   reference to zeroed witness memory to fill in place, so the secret never
//!   passes through a stack temporary.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr;

use crate::arenas::witness::WitnessArena;

/// Types for which all-zero bytes are a valid value and that own no
/// resources, so they can live in wiped memory.
///
/// # Safety
/// An all-zero bit pattern must be a valid value of the type, and the type
/// must not need `Drop` (it is `Copy`).
pub unsafe trait Zeroable: Copy {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(
        // SAFETY: integers are valid for every bit pattern, zero included.
        unsafe impl Zeroable for $t {}
    )* };
}
zeroable!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);
// SAFETY: an array of zeroable values is zeroable.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// One `T` in witness memory, wiped when dropped.
pub struct SecretBox<'a, T: Zeroable> {
    ptr: *mut T,
    arena: &'a WitnessArena,
    _owns: PhantomData<T>,
}

impl<'a, T: Zeroable> SecretBox<'a, T> {
    /// Allocates a zeroed `T` in `arena` and lets `init` fill it in place.
    /// Returns `None` when witness memory cannot be had.
    pub fn new_with(arena: &'a WitnessArena, init: impl FnOnce(&mut T)) -> Option<Self> {
        let p = arena
            .alloc(core::mem::size_of::<T>().max(1), core::mem::align_of::<T>())
            .cast::<T>();
        if p.is_null() {
            return None;
        }
        // SAFETY: witness memory is zeroed on hand-out and zero is a valid `T`
        // (Zeroable); the block is ours and aligned for `T`.
        init(unsafe { &mut *p });
        Some(Self {
            ptr: p,
            arena,
            _owns: PhantomData,
        })
    }
}

impl<T: Zeroable> Deref for SecretBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` is a live, initialised `T` we own.
        unsafe { &*self.ptr }
    }
}

impl<T: Zeroable> DerefMut for SecretBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` is exclusive.
        unsafe { &mut *self.ptr }
    }
}

impl<T: Zeroable> Drop for SecretBox<'_, T> {
    fn drop(&mut self) {
        // SAFETY: allocated from this arena with this size and alignment;
        // dealloc wipes it.
        unsafe {
            self.arena.dealloc(
                self.ptr.cast(),
                core::mem::size_of::<T>().max(1),
                core::mem::align_of::<T>(),
            )
        }
    }
}

impl<T: Zeroable> core::fmt::Debug for SecretBox<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

/// A growable vector of `T` in witness memory. Growing wipes the old
/// buffer; dropping wipes everything.
pub struct SecretVec<'a, T: Zeroable> {
    ptr: *mut T,
    len: usize,
    cap: usize,
    arena: &'a WitnessArena,
}

impl<'a, T: Zeroable> SecretVec<'a, T> {
    /// An empty vector (nothing is allocated yet).
    pub fn new(arena: &'a WitnessArena) -> Self {
        Self {
            ptr: ptr::null_mut(),
            len: 0,
            cap: 0,
            arena,
        }
    }

    /// An empty vector with room for `cap` elements; `None` when witness
    /// memory cannot be had.
    pub fn with_capacity(arena: &'a WitnessArena, cap: usize) -> Option<Self> {
        let mut v = Self::new(arena);
        v.reserve(cap).then_some(v)
    }

    fn bytes(cap: usize) -> Option<usize> {
        cap.checked_mul(core::mem::size_of::<T>()).map(|b| b.max(1))
    }

    /// Makes room for `additional` more elements. Returns false (leaving the
    /// vector unchanged) when memory cannot be had.
    pub fn reserve(&mut self, additional: usize) -> bool {
        let Some(need) = self.len.checked_add(additional) else {
            return false;
        };
        if need <= self.cap {
            return true;
        }
        let new_cap = need.max(self.cap.saturating_mul(2)).max(4);
        let Some(bytes) = Self::bytes(new_cap) else {
            return false;
        };
        let q = self.arena.alloc(bytes, core::mem::align_of::<T>()).cast::<T>();
        if q.is_null() {
            return false;
        }
        if !self.ptr.is_null() {
            // SAFETY: both buffers are live witness blocks; the old one holds
            // `len` initialised elements and is wiped by dealloc.
            unsafe {
                ptr::copy_nonoverlapping(self.ptr, q, self.len);
                self.arena.dealloc(
                    self.ptr.cast(),
                    Self::bytes(self.cap).unwrap_or(1),
                    core::mem::align_of::<T>(),
                );
            }
        }
        self.ptr = q;
        self.cap = new_cap;
        true
    }

    /// Appends an element. Returns false when memory cannot be had.
    pub fn push(&mut self, v: T) -> bool {
        if !self.reserve(1) {
            return false;
        }
        // SAFETY: `len < cap` after reserve.
        unsafe { self.ptr.add(self.len).write(v) };
        self.len += 1;
        true
    }

    /// Appends a slice. Returns false when memory cannot be had.
    pub fn extend_from_slice(&mut self, s: &[T]) -> bool {
        if !self.reserve(s.len()) {
            return false;
        }
        // SAFETY: room for `s.len()` more elements after reserve.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.ptr.add(self.len), s.len()) };
        self.len += s.len();
        true
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the vector can hold without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The address of the current buffer (for inspection in tests and
    /// audits; null before the first allocation).
    pub fn as_ptr(&self) -> *const T {
        self.ptr
    }
}

impl<T: Zeroable> Deref for SecretVec<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.ptr.is_null() {
            return &[];
        }
        // SAFETY: `len` initialised elements at `ptr`.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Zeroable> DerefMut for SecretVec<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        if self.ptr.is_null() {
            return &mut [];
        }
        // SAFETY: as above, exclusive through `&mut self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl<T: Zeroable> Drop for SecretVec<'_, T> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: our live block, allocated with these parameters; dealloc
            // wipes it.
            unsafe {
                self.arena.dealloc(
                    self.ptr.cast(),
                    Self::bytes(self.cap).unwrap_or(1),
                    core::mem::align_of::<T>(),
                )
            };
        }
    }
}

impl<T: Zeroable> core::fmt::Debug for SecretVec<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretVec(<{} redacted>)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The containers' bookkeeping, which the wipe tests (tests/witness.rs)
    /// take for granted: lengths, capacity, emptiness, slices appended in
    /// order, and a `Debug` that shows no secret.
    #[test]
    fn secret_vec_counts_what_it_holds() {
        let w = WitnessArena::new();
        let mut v = SecretVec::<u32>::new(&w);
        assert!(v.is_empty());
        assert_eq!((v.len(), v.capacity()), (0, 0));
        assert!(v.push(1));
        assert!(v.extend_from_slice(&[2, 3, 4]));
        assert!(v.extend_from_slice(&[5, 6]));
        assert!(!v.is_empty());
        assert_eq!(v.len(), 6);
        assert_eq!(&v[..], &[1, 2, 3, 4, 5, 6]);
        v[0] = 10;
        v.iter_mut().skip(1).for_each(|x| *x += 1);
        assert_eq!(&v[..], &[10, 3, 4, 5, 6, 7]);
        assert!(v.capacity() >= 6);
        let v = SecretVec::<u64>::with_capacity(&w, 100).unwrap();
        assert!(v.is_empty());
        assert!(v.capacity() >= 100);

        let b = SecretBox::new_with(&w, |k: &mut [u8; 4]| *k = [9; 4]).unwrap();
        assert_eq!(*b, [9; 4]);
        assert_eq!(format!("{b:?}"), "SecretBox(<redacted>)");
    }
}
