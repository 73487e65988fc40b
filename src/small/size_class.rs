//! Size classes of small objects.
//!
//! Small requests (at most [`SMALL_MAX`] bytes) are rounded up to one of
//! [`NUM_CLASSES`] classes: multiples of 16 up to 128 B, then four classes
//! per doubling (12.5–25 % apart), up to 64 KiB:
//!
//! ```text
//! 16 32 48 64 80 96 112 128 | 160 192 224 256 | 320 384 448 512 | ... | 40K 48K 56K 64K
//! ```
//!
//! The class index is computed, not looked up: for `size > 128` with
//! `b = floor(log2(size - 1))`, `index = 8 + 4 (b - 7) + ((size - 1) >> (b - 2) & 3)`.
//!
//! Alignment falls out of the layout: blocks are carved from pages whose
//! block area starts on a 64 KiB boundary, so a block of a power-of-two class
//! is aligned to its size, and every class of 4 KiB or more is a multiple of
//! 1 KiB (so ≥ 64-byte aligned, as AVX-512 wants). Requests that need more
//! than 16-byte alignment use [`class_for`]'s power-of-two rounding.

/// Largest size served by size classes; larger requests become spans.
pub(crate) use crate::policy::SMALL_MAX;
/// Largest alignment served by size classes.
pub(crate) const SMALL_ALIGN_MAX: usize = 64 * 1024;
/// Alignment every small block has without asking.
pub(crate) const MIN_ALIGN: usize = 16;
/// Number of size classes.
pub(crate) const NUM_CLASSES: usize = 44;

/// Block size of each class.
pub(crate) static CLASS_SIZE: [u32; NUM_CLASSES] = class_sizes();

const fn class_sizes() -> [u32; NUM_CLASSES] {
    let mut t = [0u32; NUM_CLASSES];
    let mut i = 0;
    while i < 8 {
        t[i] = 16 * (i as u32 + 1);
        i += 1;
    }
    let mut b = 7;
    while i < NUM_CLASSES {
        let p = 1u32 << b;
        let mut sub = 0;
        while sub < 4 {
            t[i] = p + (sub + 1) * (p / 4);
            i += 1;
            sub += 1;
        }
        b += 1;
    }
    t
}

/// Class of a request of `size` bytes (`size <= SMALL_MAX`) with the
/// default 16-byte alignment. Size 0 gets the smallest class, as size 1
/// does (`malloc(0)`).
#[inline(always)]
pub(crate) fn class_of(size: usize) -> usize {
    if size <= 128 {
        // Saturating, so that 0 does not wrap to the 128-byte class; it
        // compiles to `cmp` + `adc` where the wrapping form had one `lea`,
        // and callers that clamped 0 first no longer need to.
        (size.saturating_sub(1) >> 4) & 7
    } else {
        let s = size - 1;
        let b = (usize::BITS - 1 - s.leading_zeros()) as usize;
        8 + 4 * (b - 7) + ((s >> (b - 2)) & 3)
    }
}

/// Class for a request with an explicit alignment (`align` a power of two,
/// `size <= SMALL_MAX`, `align <= SMALL_ALIGN_MAX`): a power-of-two class,
/// which is aligned to its size.
#[inline]
pub(crate) fn class_for(size: usize, align: usize) -> usize {
    if align <= MIN_ALIGN {
        class_of(size)
    } else {
        class_of(size.max(align).next_power_of_two())
    }
}

/// True if a layout is served by size classes rather than by a span.
#[inline(always)]
pub(crate) fn is_small(size: usize, align: usize) -> bool {
    size <= SMALL_MAX && align <= SMALL_ALIGN_MAX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_gets_the_smallest_fitting_class() {
        for size in 0..=SMALL_MAX {
            let c = class_of(size);
            assert!(c < NUM_CLASSES, "size {size}");
            assert!(CLASS_SIZE[c] as usize >= size, "size {size} class {c}");
            if c > 0 {
                assert!((CLASS_SIZE[c - 1] as usize) < size, "size {size} not smallest");
            }
        }
        assert_eq!(CLASS_SIZE[NUM_CLASSES - 1] as usize, SMALL_MAX);
    }

    #[test]
    fn a_zero_size_request_gets_the_smallest_class() {
        assert_eq!(class_of(0), 0);
        assert_eq!(class_of(std::hint::black_box(0)), 0);
        assert_eq!(class_for(0, 1), 0);
        assert_eq!(class_for(0, MIN_ALIGN), 0);
        assert_eq!(CLASS_SIZE[class_for(0, 8)], 16);
    }

    #[test]
    fn classes_grow_by_at_most_25_percent_after_128() {
        for c in 8..NUM_CLASSES {
            let (a, b) = (CLASS_SIZE[c - 1] as f64, CLASS_SIZE[c] as f64);
            assert!(b / a <= 1.25 + 1e-9, "class {c}: {a} -> {b}");
        }
    }

    #[test]
    fn aligned_classes_are_multiples_of_the_alignment() {
        let mut align = 32;
        while align <= SMALL_ALIGN_MAX {
            for size in [1, align / 2, align, align + 1, 3 * align, SMALL_MAX] {
                if size > SMALL_MAX {
                    continue;
                }
                let c = class_for(size, align);
                assert_eq!(CLASS_SIZE[c] as usize % align, 0, "size {size} align {align}");
                assert!(CLASS_SIZE[c] as usize >= size);
            }
            align *= 2;
        }
    }

    #[test]
    fn classes_of_4k_and_more_are_64_byte_multiples() {
        for &s in CLASS_SIZE.iter().filter(|&&s| s >= 4096) {
            assert_eq!(s % 64, 0);
        }
    }
}
