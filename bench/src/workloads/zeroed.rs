//! `zeroed`: huge `alloc_zeroed` buffers filled by several threads, plus a
//! mix of random multi-MiB blocks touched page by page.

use std::alloc::{alloc, alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::time::Instant;

use super::{join, ms, standard, Ctx};
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

const PAGE: usize = 4096;
const WORDS_PER_PAGE: usize = PAGE / 8;

/// An owned, page-aligned heap buffer.
struct PageBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl PageBuf {
    /// Allocates `bytes` (a multiple of 4 KiB), zeroed or not.
    fn new(bytes: usize, zeroed: bool) -> Self {
        let layout = Layout::from_size_align(bytes, PAGE).expect("valid layout");
        // SAFETY: layout has non-zero size (callers pass >= 1 page).
        let raw = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        let Some(ptr) = NonNull::new(raw) else {
            handle_alloc_error(layout)
        };
        Self { ptr, layout }
    }

    /// The buffer as words. Only for buffers from `new(_, true)`, whose
    /// memory `alloc_zeroed` guarantees to be initialized (to zero).
    fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: the buffer came from alloc_zeroed (see above) so all bytes
        // are initialized; it is 4096-aligned (so u64-aligned), its size is a
        // multiple of 8, and `&mut self` gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u64>(), self.layout.size() / 8) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with exactly this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

#[inline]
fn pattern(index: usize, seed: u64) -> u64 {
    (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed
}

/// Fills `chunk` (whose first word has global index `base`) with the pattern,
/// verifying that the memory was zero. The last word of each page is written
/// first (volatile) so that every page is first touched by a write (one
/// fault, as a real prover would); the other 511 words are checked for zero.
fn fill_checked(chunk: &mut [u64], base: usize, seed: u64) -> Result<(), String> {
    for (p, page) in chunk.chunks_mut(WORDS_PER_PAGE).enumerate() {
        let first = base + p * WORDS_PER_PAGE;
        let last = page.len() - 1;
        // SAFETY: `last` is in bounds of `page`; a volatile write keeps it
        // ordered before the reads below.
        unsafe { std::ptr::write_volatile(&mut page[last], pattern(first + last, seed)) };
        for (i, w) in page[..last].iter_mut().enumerate() {
            if *w != 0 {
                return Err(format!(
                    "alloc_zeroed memory not zero at word {} (value {:#x})",
                    first + i,
                    *w
                ));
            }
            *w = pattern(first + i, seed);
        }
    }
    Ok(())
}

fn verify(chunk: &[u64], base: usize, seed: u64) -> Result<(), String> {
    match chunk
        .iter()
        .enumerate()
        .position(|(i, &w)| w != pattern(base + i, seed))
    {
        Some(i) => Err(format!("zeroed buffer content mismatch at word {}", base + i)),
        None => Ok(()),
    }
}

/// One iteration: alloc_zeroed, parallel fill (with zero check), parallel
/// read-verify, free. Returns elapsed ms.
fn one_pass(bytes: usize, threads: usize, seed: u64) -> Result<f64, String> {
    let t = Instant::now();
    let mut buf = PageBuf::new(bytes, true);
    let words = buf.words_mut();
    // Chunk boundaries on page multiples.
    let pages = words.len() / WORDS_PER_PAGE;
    let chunk_words = pages.div_ceil(threads) * WORDS_PER_PAGE;
    std::thread::scope(|s| {
        let handles: Vec<_> = words
            .chunks_mut(chunk_words)
            .enumerate()
            .map(|(i, chunk)| {
                s.spawn(move || {
                    let base = i * chunk_words;
                    fill_checked(chunk, base, seed)?;
                    Ok(chunk)
                })
            })
            .collect();
        // Read phase on the same threads' chunks, after all fills finished.
        let chunks: Vec<&mut [u64]> = handles.into_iter().map(join).collect::<Result<_, _>>()?;
        let handles: Vec<_> = chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                let chunk: &[u64] = chunk;
                s.spawn(move || verify(chunk, i * chunk_words, seed))
            })
            .collect();
        handles.into_iter().try_for_each(join)
    })?;
    drop(buf);
    Ok(ms(t.elapsed()))
}

/// A randomly-sized block touched once per page.
struct Touched {
    buf: PageBuf,
    tag: u8,
}

impl Touched {
    fn new(bytes: usize, tag: u8) -> Self {
        let buf = PageBuf::new(bytes, false);
        for p in 0..bytes / PAGE {
            // SAFETY: p * PAGE < bytes, so the write is in bounds.
            unsafe { buf.ptr.as_ptr().add(p * PAGE).write(tag.wrapping_add(p as u8)) };
        }
        Self { buf, tag }
    }

    fn check(&self) -> Result<(), String> {
        for p in 0..self.buf.layout.size() / PAGE {
            // SAFETY: in bounds, and this byte was initialized in `new`.
            let v = unsafe { self.buf.ptr.as_ptr().add(p * PAGE).read() };
            if v != self.tag.wrapping_add(p as u8) {
                return Err(format!("mix block corrupted at page {p}"));
            }
        }
        Ok(())
    }
}

/// Entry point: phases `setup` (nothing to prepare but the list of pass
/// times: near 0), `cold`, `warm` (zeroed passes) and `mix`.
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let bytes = ctx.size(4usize << 20, 512 << 20, 1 << 30);
    let passes = ctx.size(2, 3, 5);
    let mix_ops = ctx.size(3, 150, 600);
    let threads = ctx.threads;

    let t = Instant::now();
    let mut times = Vec::with_capacity(passes);
    let setup_ms = ms(t.elapsed());
    for pass in 0..passes {
        times.push(one_pass(bytes, threads, 0xC0FFEE ^ pass as u64)?);
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);

    let mut rng = XorShift::new(0x313);
    let mut slots: Vec<Option<Touched>> = (0..8).map(|_| None).collect();
    let t = Instant::now();
    for op in 0..mix_ops {
        let slot = rng.below(slots.len());
        if let Some(old) = slots[slot].take() {
            old.check()?;
        }
        let size = rng.range(5 << 20, 25 << 20) / PAGE * PAGE;
        slots[slot] = Some(Touched::new(size, op as u8));
    }
    for b in slots.into_iter().flatten() {
        b.check()?;
    }
    out.phase("mix", ms(t.elapsed()));
    Ok(out)
}
