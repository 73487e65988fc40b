//! Raw heap blocks with cheap integrity checks, used by the stress workloads.
//!
//! A [`Block`] goes straight through `std::alloc::{alloc, dealloc}`, so it
//! exercises whatever `#[global_allocator]` the worker installed. It stamps a
//! tag in its first 8 bytes and last byte and verifies both on free, so
//! allocator bugs (overlapping blocks, use-after-free recycling) make the
//! worker fail instead of silently producing a number.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

/// Smallest block size: room for the 8-byte head tag plus a tail byte.
pub const MIN_BLOCK: usize = 16;

/// An owned, tagged heap block.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    size: usize,
    tag: u64,
    /// Whether every byte was initialized by [`Block::filled`].
    filled: bool,
}

// SAFETY: a Block exclusively owns its allocation (like Box<[u8]>); the global
// allocator is thread-safe, so the block can be freed from another thread.
unsafe impl Send for Block {}

impl Block {
    /// Allocates `size` bytes (at least [`MIN_BLOCK`]) and stamps `tag` into it.
    pub fn new(size: usize, tag: u64) -> Self {
        let size = size.max(MIN_BLOCK);
        let layout = Layout::from_size_align(size, 8).expect("valid layout");
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        // SAFETY: ptr is valid for `size >= 16` bytes and 8-aligned, so the
        // head word and the tail byte are in bounds and properly aligned.
        unsafe {
            ptr.as_ptr().cast::<u64>().write(tag);
            ptr.as_ptr().add(size - 1).write(tag as u8);
        }
        Self {
            ptr,
            size,
            tag,
            filled: false,
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The tag stamped into the block.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    /// Allocates a block and fills *every* byte from `tag` (for full content checks).
    pub fn filled(size: usize, tag: u64) -> Self {
        let mut b = Self::new(size, tag);
        // SAFETY: ptr is valid for writes of `size` bytes and exclusively owned.
        let bytes = unsafe { std::slice::from_raw_parts_mut(b.ptr.as_ptr(), b.size) };
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = fill_byte(tag, i);
        }
        b.filled = true;
        b
    }

    /// Verifies every byte of a block made with [`Block::filled`].
    pub fn check_filled(&self) -> Result<(), String> {
        if !self.filled {
            return Err("check_filled on a block not made by Block::filled".into());
        }
        // SAFETY: `filled` guarantees all `size` bytes were initialized, and
        // the pointer is valid for reads of `size` bytes while we own it.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.size) };
        for (i, &byte) in bytes.iter().enumerate() {
            if byte != fill_byte(self.tag, i) {
                return Err(format!(
                    "content mismatch in filled block tag={:#x} size={} at byte {i}",
                    self.tag, self.size
                ));
            }
        }
        Ok(())
    }

    /// Verifies the head tag and tail byte.
    pub fn check(&self) -> Result<(), String> {
        // SAFETY: head word and tail byte were initialized in `new`, are in
        // bounds, and the head is 8-aligned.
        let (head, tail) = unsafe {
            (
                self.ptr.as_ptr().cast::<u64>().read(),
                self.ptr.as_ptr().add(self.size - 1).read(),
            )
        };
        if head != self.tag || tail != self.tag as u8 {
            return Err(format!(
                "block corrupted: tag={:#x} size={} head={head:#x} tail={tail:#x}",
                self.tag, self.size
            ));
        }
        Ok(())
    }

    /// Re-stamps the head word and tail byte with `value` using volatile
    /// writes (used by write-heavy loops; keeps [`Block::check`] valid).
    ///
    /// Not for blocks made by [`Block::filled`] (it would break their pattern).
    #[inline]
    pub fn restamp(&mut self, value: u64) {
        // SAFETY: head word and tail byte are in bounds, the head is 8-aligned,
        // and the block is exclusively owned.
        unsafe {
            std::ptr::write_volatile(self.ptr.as_ptr().cast::<u64>(), value);
            std::ptr::write_volatile(self.ptr.as_ptr().add(self.size - 1), value as u8);
        }
        self.tag = value;
        self.filled = false;
    }

    /// Checks, then frees the block.
    pub fn free_checked(self) -> Result<(), String> {
        self.check()?;
        drop(self);
        Ok(())
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.size, 8).expect("valid layout");
        // SAFETY: ptr was returned by `alloc` with exactly this layout and is
        // freed only once (Block is not Clone).
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

/// The byte value [`Block::filled`] writes at offset `i`.
#[inline]
pub fn fill_byte(tag: u64, i: usize) -> u8 {
    (tag as u8).wrapping_add((i as u8).wrapping_mul(31))
}
