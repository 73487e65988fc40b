//! Linux: `mmap`, `madvise`, `mremap`, `mlock`, `prctl` through `rustix`.

use super::{cgroup, posix, HugeAdvice, OsError, SecretFlags};
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use rustix::io::Errno;
use rustix::mm::{self, Advice, MapFlags, MremapFlags};

/// The kernel's page size (libc's `sysconf`: no allocation).
pub(super) fn page_size() -> usize {
    keeping_errno(rustix::param::page_size)
}

/// Monotonic microseconds (a vDSO call, no system call).
pub(super) fn now_us() -> u64 {
    keeping_errno(posix::now_us)
}

extern "C" {
    fn __errno_location() -> *mut i32;
}

/// Runs `f` and puts `errno` back as it was. On first use rustix asks
/// libc's `getauxval` for the vDSO behind the clock, which sets `errno` when
/// the entry is missing (qemu's user mode has none), and a `malloc` that
/// succeeds must leave `errno` alone.
fn keeping_errno<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: `__errno_location` (glibc and musl) returns this thread's
    // errno, valid for the thread's life.
    let at = unsafe { __errno_location() };
    // SAFETY: as above.
    let saved = unsafe { at.read() };
    let r = f();
    // SAFETY: as above.
    unsafe { at.write(saved) };
    r
}

/// Whether a plain anonymous mapping of a whole number of PMD-sized pages
/// comes back PMD aligned. Linux 6.7 and later place such mappings on a
/// huge-page boundary (for transparent huge pages), so one `mmap` does what
/// map-and-trim does in three calls; a fresh span of 2 MiB or more is such
/// a mapping. Cleared the first time it does not hold (older kernels, THP
/// compiled out), after which every such map trims.
static PLAIN_MAP_ALIGNS: AtomicBool = AtomicBool::new(true);

pub(super) fn map(len: usize, align: usize) -> *mut u8 {
    match map_plain(len, align) {
        Some(p) => p,
        None => posix::map_rw(len, align, page_size(), MapFlags::empty()),
    }
}

/// One plain `mmap` for a mapping of whole PMD-sized pages at PMD alignment
/// (see [`PLAIN_MAP_ALIGNS`]); `None` where that does not apply, or where the
/// kernel placed it elsewhere (then unmapped, and the flag cleared).
fn map_plain(len: usize, align: usize) -> Option<*mut u8> {
    let pmd = page_size() * (page_size() / 8);
    if !(align == pmd && len % pmd == 0 && PLAIN_MAP_ALIGNS.load(Relaxed)) {
        return None;
    }
    let p = posix::map_rw(len, page_size(), page_size(), MapFlags::empty());
    if p.is_null() || p.addr() % align == 0 {
        return Some(p);
    }
    PLAIN_MAP_ALIGNS.store(false, Relaxed);
    // SAFETY: the mapping just made, whole, that nobody knows about.
    unsafe { posix::unmap(p, len) };
    None
}

pub(super) fn map_explicit_huge(len: usize) -> *mut u8 {
    // The kernel aligns MAP_HUGETLB mappings to the huge page size itself;
    // with no size flag it uses its default huge page (the PMD size).
    posix::map_rw(len, page_size(), page_size(), MapFlags::HUGETLB)
}

pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
    posix::reserve(len, align, page_size())
}

pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract: the range is ours and holds no live data.
    unsafe {
        let _ = mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxDontNeed);
        posix::protect_none(ptr, len);
    }
}

pub(super) unsafe fn purge(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: caller contract. MADV_DONTNEED on private anonymous memory
    // drops the pages; the next touch maps the shared zero page or a new
    // zeroed page, so the range reads as zero afterwards.
    unsafe { mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxDontNeed) }.is_ok()
}

extern "C" {
    fn mincore(addr: *mut c_void, length: usize, vec: *mut u8) -> i32;
}

pub(super) unsafe fn resident_sample(ptr: *mut u8, len: usize) -> Option<(usize, usize)> {
    // A few windows, each centred in its share of the range: no allocation,
    // and few system calls, which cost more than the page-table walk (see
    // docs/design/spans-and-warm-pool.md). Centred, so that a user who wrote
    // only the start of a huge-page span (one 2 MiB page resident) does not
    // fill a whole window. The kernel's own pages: mincore writes one byte
    // per real page.
    use crate::policy::{ZERO_SAMPLE_PAGES as PAGES, ZERO_SAMPLE_WINDOWS as WINDOWS};
    let pages = len / page_size();
    if pages == 0 {
        return None;
    }
    let (mut resident, mut sampled) = (0, 0);
    let mut vec = [0u8; PAGES];
    let windows = WINDOWS.min(pages.div_ceil(PAGES));
    let stride = pages / windows;
    for w in 0..windows {
        let first = (w * stride + stride / 2).saturating_sub(PAGES / 2);
        let n = PAGES.min(pages - first);
        // mincore only reads page tables; on a mapped range it cannot fail,
        // so it leaves errno alone.
        // SAFETY: the window is page aligned inside our mapping (caller
        // contract) and `vec` has room for its `n` entries.
        if unsafe { mincore(ptr.add(first * page_size()).cast(), n * page_size(), vec.as_mut_ptr()) } != 0 {
            return None;
        }
        resident += vec[..n].iter().filter(|&&b| b & 1 != 0).count();
        sampled += n;
    }
    Some((resident, sampled))
}

pub(super) unsafe fn advise_huge(ptr: *mut u8, len: usize, advice: HugeAdvice) {
    let a = match advice {
        HugeAdvice::Huge => Advice::LinuxHugepage,
        HugeAdvice::NoHuge => Advice::LinuxNoHugepage,
    };
    // SAFETY: caller contract; THP advice is only a hint (EINVAL on kernels
    // without THP is harmless).
    let _ = unsafe { mm::madvise(ptr.cast::<c_void>(), len, a) };
}

pub(super) unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize, align: usize) -> *mut u8 {
    if new_len <= old_len {
        // Shrinking never moves.
        // SAFETY: caller contract: `ptr`/`old_len` is a whole mapping of ours.
        return match unsafe { mm::mremap(ptr.cast::<c_void>(), old_len, new_len, MremapFlags::empty()) } {
            Ok(p) => p.cast::<u8>(),
            Err(_) => core::ptr::null_mut(),
        };
    }
    // Try to grow in place first (no page-table moves at all), but only where
    // the current placement already has the alignment the result needs.
    if (ptr as usize) % align == 0 {
        // SAFETY: as above; without MAYMOVE the kernel only extends in place.
        if let Ok(p) = unsafe { mm::mremap(ptr.cast::<c_void>(), old_len, new_len, MremapFlags::empty()) } {
            return p.cast::<u8>();
        }
    }
    if align <= page_size() {
        // SAFETY: as above; MAYMOVE moves the page tables, not the bytes.
        return match unsafe { mm::mremap(ptr.cast::<c_void>(), old_len, new_len, MremapFlags::MAYMOVE) } {
            Ok(p) => p.cast::<u8>(),
            Err(_) => core::ptr::null_mut(),
        };
    }
    // Keep the alignment (2 MiB for huge-page spans): reserve an aligned
    // hole and move the pages into it.
    let hole = posix::reserve(new_len, align, page_size());
    if hole.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `hole` is a reservation of exactly `new_len` bytes that we own;
    // MREMAP_FIXED replaces it atomically with the moved pages.
    match unsafe {
        mm::mremap_fixed(
            ptr.cast::<c_void>(),
            old_len,
            new_len,
            MremapFlags::MAYMOVE,
            hole.cast::<c_void>(),
        )
    } {
        Ok(p) => p.cast::<u8>(),
        Err(_) => {
            // SAFETY: the hole is ours and unused.
            unsafe { posix::unmap(hole, new_len) };
            core::ptr::null_mut()
        }
    }
}

pub(super) unsafe fn move_pages(src: *mut u8, len: usize, dst: *mut u8) -> bool {
    // SAFETY: caller contract: `src` is ours and unused, `dst` a range of
    // ours that may be replaced; MREMAP_FIXED unmaps `dst` and moves the page
    // tables of `src` there in one call (EFAULT, nothing moved, if `src`
    // crosses a mapping boundary).
    unsafe {
        mm::mremap_fixed(
            src.cast::<c_void>(),
            len,
            len,
            MremapFlags::MAYMOVE,
            dst.cast::<c_void>(),
        )
    }
    .is_ok()
}

fn tolerated(e: Errno) -> bool {
    // EINVAL: the kernel predates the advice (DONTDUMP 3.4, WIPEONFORK 4.14).
    e == Errno::INVAL
}

pub(super) unsafe fn protect_secret(ptr: *mut u8, len: usize) -> Result<SecretFlags, OsError> {
    let mut flags = SecretFlags::default();
    // SAFETY: caller contract: page-aligned committed memory of ours.
    match unsafe { mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxDontDump) } {
        Ok(()) => flags.dont_dump = true,
        Err(e) if tolerated(e) => {}
        Err(e) => return Err(OsError(e.raw_os_error())),
    }
    // SAFETY: as above.
    match unsafe { mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxWipeOnFork) } {
        Ok(()) => flags.wipe_on_fork = true,
        Err(e) if tolerated(e) => {}
        Err(e) => return Err(OsError(e.raw_os_error())),
    }
    Ok(flags)
}

pub(super) unsafe fn unprotect_secret(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract: page-aligned committed memory of ours.
    unsafe {
        let _ = mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxDoDump);
        let _ = mm::madvise(ptr.cast::<c_void>(), len, Advice::LinuxKeepOnFork);
    }
}

pub(super) unsafe fn name(ptr: *mut u8, len: usize, name: &'static core::ffi::CStr) {
    // SAFETY: caller contract: the range is ours. Kernels without
    // CONFIG_ANON_VMA_NAME answer EINVAL: naming is cosmetic, so ignore it.
    let region = unsafe { core::slice::from_raw_parts(ptr, len) };
    let _ = rustix::process::set_virtual_memory_region_name(region, Some(name));
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
extern "C" {
    fn explicit_bzero(s: *mut c_void, n: usize);
}

pub(super) unsafe fn secure_zero(ptr: *mut u8, len: usize) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        // An inlined memset, then an empty `asm!` block that receives the
        // pointer and is not `nomem`: the compiler must assume it reads the
        // zeroed bytes, so it can neither drop nor shorten the fill. This is
        // what glibc's explicit_bzero does (memset, then a memory clobber),
        // without the call through the PLT on every witness free.
        // SAFETY: caller contract: `ptr` is valid for `len` bytes of writes;
        // the asm block is empty (touches no register, stack or memory).
        unsafe {
            core::ptr::write_bytes(ptr, 0, len);
            core::arch::asm!("/* {0} */", in(reg) ptr, options(nostack, preserves_flags));
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: caller contract; glibc (>= 2.25) and musl document that
    // explicit_bzero is never removed by the optimiser.
    unsafe {
        explicit_bzero(ptr.cast::<c_void>(), len)
    }
}

pub(super) fn physical_memory() -> usize {
    let info = rustix::system::sysinfo();
    (info.totalram as usize).saturating_mul(info.mem_unit.max(1) as usize)
}

/// Parses `/proc/self/smaps` in a fixed stack buffer (no allocation) and sums
/// `AnonHugePages` over the mappings that overlap `[ptr, ptr+len)`.
pub(super) fn huge_backed_bytes(ptr: usize, len: usize) -> Option<usize> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let fd = openat(
        CWD,
        c"/proc/self/smaps",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 8192];
    let mut line = [0u8; 256];
    let mut line_len = 0usize;
    let mut overlap = 0usize;
    let mut total = 0usize;
    let end = ptr.saturating_add(len);
    loop {
        let n = rustix::io::read(&fd, &mut buf).ok()?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b != b'\n' {
                if line_len < line.len() {
                    line[line_len] = b;
                    line_len += 1;
                }
                continue;
            }
            let l = &line[..line_len];
            if let Some((lo, hi)) = parse_range(l) {
                // A mapping may be larger than the range (neighbouring spans
                // merge into one VMA): count at most the overlap.
                overlap = hi.min(end).saturating_sub(lo.max(ptr));
            } else if overlap > 0 && l.starts_with(b"AnonHugePages:") {
                total += (parse_kib(&l[14..]) * 1024).min(overlap);
            }
            line_len = 0;
        }
    }
    Some(total)
}

/// `7f12...-7f34... rw-p ...` → (start, end); None for other lines.
fn parse_range(l: &[u8]) -> Option<(usize, usize)> {
    let head = l.split(|&c| c == b' ').next()?;
    let dash = head.iter().position(|&c| c == b'-')?;
    Some((parse_hex(&head[..dash])?, parse_hex(&head[dash + 1..])?))
}

fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0usize;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = v.checked_mul(16)?.checked_add(d as usize)?;
    }
    Some(v)
}

fn parse_kib(s: &[u8]) -> usize {
    let mut v = 0usize;
    for &c in s {
        if c.is_ascii_digit() {
            v = v * 10 + (c - b'0') as usize;
        } else if v > 0 {
            break;
        }
    }
    v
}

/// Reads the file at `path` (NUL-terminated) into `buf`; the bytes read, or
/// `None` when it cannot be opened or read. One `openat`, a few `read`s,
/// no allocation.
fn read_file(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let path = core::ffi::CStr::from_bytes_with_nul(path).ok()?;
    let fd = openat(CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut n = 0;
    while n < buf.len() {
        match rustix::io::read(&fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
    Some(n)
}

/// Reads the limit file `dir` + `tail` (a path built in `path`, NUL-added)
/// and parses it.
fn read_limit(dir: &[&[u8]], tail: &[u8]) -> cgroup::Limit {
    let mut path = [0u8; 512];
    let mut n = 0;
    for part in dir.iter().copied().chain([tail, &b"\0"[..]]) {
        let Some(dst) = path.get_mut(n..n + part.len()) else {
            return cgroup::Limit::Invalid;
        };
        dst.copy_from_slice(part);
        n += part.len();
    }
    let mut buf = [0u8; 64];
    match read_file(&path[..n], &mut buf) {
        Some(k) => cgroup::parse_limit(&buf[..k]),
        None => cgroup::Limit::Invalid,
    }
}

pub(super) fn memory_limit() -> Option<usize> {
    let mut buf = [0u8; 4096];
    let n = read_file(b"/proc/self/cgroup\0", &mut buf).unwrap_or(0);
    let own = buf.get(..n).unwrap_or(&[]);
    // v2: the process's cgroup and every ancestor may limit it; the lowest
    // limit counts. Inside a cgroup namespace the path is `/` and the
    // container's own cgroup is mounted at /sys/fs/cgroup, so the mount's
    // top is always read too (it has no memory.max on a host's real root).
    let mut limit = None;
    let path = cgroup::own_path(own, cgroup::Version::V2).unwrap_or(b"/");
    let mut end = path.len();
    for _ in 0..32 {
        let dir = path.get(..end).unwrap_or(b"");
        let dir = dir.strip_suffix(b"/").unwrap_or(dir);
        limit = cgroup::lower(limit, read_limit(&[b"/sys/fs/cgroup", dir], b"/memory.max"));
        match dir.iter().rposition(|&c| c == b'/') {
            Some(i) => end = i,
            None => break,
        }
        if dir.is_empty() {
            break;
        }
    }
    if limit.is_some() {
        return limit;
    }
    // v1: the memory controller's own hierarchy.
    let root: &[u8] = b"/sys/fs/cgroup/memory";
    if let Some(p) = cgroup::own_path(own, cgroup::Version::V1) {
        let p = p.strip_suffix(b"/").unwrap_or(p);
        limit = cgroup::lower(limit, read_limit(&[root, p], b"/memory.limit_in_bytes"));
    }
    cgroup::lower(limit, read_limit(&[root], b"/memory.limit_in_bytes"))
}

pub(super) fn minor_faults() -> u64 {
    posix::minor_faults()
}

// What Linux shares with every POSIX system, used as is.
pub(super) use super::posix::{
    at_exit, commit, env_var, init_thread_exit, lock, random, register_fork_handlers, unlock, unmap, watch_thread_exit,
    write_stderr,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The clock moves with time, and reading it (or the page size) leaves
    /// errno as it was.
    #[test]
    fn the_clock_moves_and_leaves_errno_alone() {
        // SAFETY: this thread's errno.
        unsafe { __errno_location().write(4242) };
        let a = now_us();
        assert!(page_size() >= 4096);
        // SAFETY: as above.
        assert_eq!(unsafe { __errno_location().read() }, 4242);
        std::thread::sleep(std::time::Duration::from_millis(3));
        let b = now_us();
        assert!(b >= a + 2_000, "{a} -> {b}");
    }

    /// A span-sized map is aligned whichever way it is made: one plain
    /// mapping where the kernel places PMD multiples on a PMD boundary (as
    /// Linux 6.7 and later do: checked here with bare `mmap`s first), or
    /// map-and-trim once a plain one was not (the flag cleared, as on an
    /// older kernel). One test, as both halves set the process-wide flag.
    #[test]
    #[cfg(not(miri))]
    fn pmd_multiples_are_pmd_aligned_either_way() {
        let pmd = page_size() * (page_size() / 8);
        let kernel_aligns = (1..4).all(|n| {
            let p = posix::map_rw(n * pmd, page_size(), page_size(), MapFlags::empty());
            assert!(!p.is_null());
            // SAFETY: our fresh mapping of `n * pmd` bytes.
            unsafe { posix::unmap(p, n * pmd) };
            p.addr() % pmd == 0
        });
        for plain_first in [true, false] {
            PLAIN_MAP_ALIGNS.store(plain_first, Relaxed);
            for n in 1..4 {
                let plain = map_plain(n * pmd, pmd);
                assert_eq!(plain.is_some(), plain_first && kernel_aligns, "{n} x PMD");
                let p = plain.unwrap_or_else(|| map(n * pmd, pmd));
                assert!(!p.is_null());
                assert_eq!(p.addr() % pmd, 0, "{n} x PMD, plain first: {plain_first}");
                // SAFETY: our fresh mapping of `n * pmd` bytes.
                unsafe {
                    p.add(n * pmd - 1).write(1);
                    posix::unmap(p, n * pmd);
                }
            }
        }
        // Not for other alignments or lengths.
        PLAIN_MAP_ALIGNS.store(true, Relaxed);
        assert!(map_plain(pmd, page_size()).is_none());
        assert!(map_plain(pmd + page_size(), pmd).is_none());
        assert!(map_plain(2 * pmd, 2 * pmd).is_none());
    }

    /// The `/proc` parsers read what the kernel writes: lowercase hex ranges,
    /// the first number of a `kB` line; anything else is no range.
    #[test]
    fn proc_lines_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_hex(b"0"), Some(0));
        assert_eq!(parse_hex(b"9"), Some(9));
        assert_eq!(parse_hex(b"a"), Some(10));
        assert_eq!(parse_hex(b"7f12ab"), Some(0x7f12ab));
        assert_eq!(parse_hex(b"ffffffffffffffff"), Some(usize::MAX));
        for bad in [&b""[..], b"g", b"7F", b"12 ", b"10000000000000000"] {
            assert_eq!(parse_hex(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        let line = b"7f12a000-7f34b000 rw-p 00000000 00:00 0   [heap]";
        assert_eq!(parse_range(line), Some((0x7f12a000, 0x7f34b000)));
        assert_eq!(parse_range(b"5-6 r--p"), Some((5, 6)));
        for other in [
            &b"AnonHugePages:      2048 kB"[..],
            b"Name: a-b",
            b"7f12a000-",
            b"-7f00 x",
            b"zz-7f00 r",
        ] {
            assert_eq!(parse_range(other), None, "{:?}", core::str::from_utf8(other));
        }
        assert_eq!(parse_kib(b"      2048 kB"), 2048);
        assert_eq!(parse_kib(b" 0 kB"), 0);
        assert_eq!(parse_kib(b" 12 kB 34"), 12);
        assert_eq!(parse_kib(b""), 0);
    }

    /// `read_file` reads a whole file, or as much as the buffer holds, and
    /// says `None` for a file that is not there or a path without its NUL.
    #[test]
    #[cfg(not(miri))]
    fn read_file_reads_whole_files_into_the_buffer() {
        let dir = std::env::temp_dir().join(format!("nalloc-read-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("data");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let mut path = file.as_os_str().as_encoded_bytes().to_vec();
        path.push(0);
        let mut big = vec![0xeeu8; 20_000];
        assert_eq!(read_file(&path, &mut big), Some(data.len()));
        assert_eq!(&big[..data.len()], &data[..]);
        let mut exact = vec![0u8; data.len()];
        assert_eq!(read_file(&path, &mut exact), Some(data.len()));
        assert_eq!(exact, data);
        let mut small = [0u8; 64];
        assert_eq!(read_file(&path, &mut small), Some(64));
        assert_eq!(&small[..], &data[..64]);
        assert_eq!(read_file(&path[..path.len() - 1], &mut small), None, "no NUL");
        path.truncate(path.len() - 1);
        path.extend_from_slice(b"-missing\0");
        assert_eq!(read_file(&path, &mut small), None, "missing file");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Only EINVAL (a kernel older than the advice) is tolerated when a
    /// secret's pages are protected; any other error is reported.
    #[test]
    fn only_a_missing_advice_is_tolerated() {
        assert!(tolerated(Errno::INVAL));
        for e in [Errno::NOMEM, Errno::PERM, Errno::AGAIN, Errno::FAULT] {
            assert!(!tolerated(e), "{e:?}");
        }
    }

    /// `physical_memory` is the kernel's MemTotal.
    #[test]
    #[cfg(not(miri))]
    fn physical_memory_is_mem_total() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: usize = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap();
        assert_eq!(physical_memory(), kib * 1024);
    }

    /// `huge_backed_bytes` agrees with an independent reading of
    /// `/proc/self/smaps` (std's parser): the `AnonHugePages` of every mapping
    /// that overlaps the range, each capped at its overlap. A file mapped at
    /// a path longer than the line buffer comes first, so the truncated line
    /// must not derail the parse of the mappings after it.
    #[test]
    #[cfg(not(miri))]
    fn huge_backed_bytes_reads_smaps() {
        fn oracle(ptr: usize, len: usize) -> usize {
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            let (mut overlap, mut total) = (0usize, 0usize);
            for l in smaps.lines() {
                let head = l.split(' ').next().unwrap_or("");
                if let Some((lo, hi)) = head.split_once('-').filter(|_| !head.contains(':')) {
                    let (lo, hi) = (
                        usize::from_str_radix(lo, 16).unwrap(),
                        usize::from_str_radix(hi, 16).unwrap(),
                    );
                    overlap = hi.min(ptr + len).saturating_sub(lo.max(ptr));
                } else if let Some(v) = l.strip_prefix("AnonHugePages:") {
                    let kib: usize = v.trim().strip_suffix("kB").unwrap().trim().parse().unwrap();
                    total += (kib * 1024).min(overlap);
                }
            }
            total
        }
        // A long path: its smaps line outgrows the 256-byte line buffer.
        let dir = std::env::temp_dir()
            .join(format!("nalloc-smaps-{}", std::process::id()))
            .join("d".repeat(200))
            .join("e".repeat(100));
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("f"))
            .unwrap();
        file.set_len(4096).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private read-only mapping of our own file, whose
        // descriptor stays open for the call.
        let fmap = unsafe {
            let fd = rustix::fd::BorrowedFd::borrow_raw(file.as_raw_fd());
            mm::mmap(
                core::ptr::null_mut(),
                4096,
                mm::ProtFlags::READ,
                MapFlags::PRIVATE,
                fd,
                0,
            )
            .unwrap()
        };

        let pmd = page_size() * (page_size() / 8);
        let len = 4 * pmd;
        let p = posix::map_rw(len, pmd, page_size(), MapFlags::empty());
        assert!(!p.is_null());
        // SAFETY: our fresh mapping of `len` bytes.
        unsafe {
            advise_huge(p, len, HugeAdvice::Huge);
            core::ptr::write_bytes(p, 1, len);
        }
        let base = p.addr();
        for (start, n) in [
            (base, len),
            (base, pmd + pmd / 2),
            (base + pmd / 2, pmd),
            (base + len, pmd),
        ] {
            // Another test's thread may map next to ours between the two
            // reads (or the kernel collapse a huge page): a few tries.
            let agree = (0..3).any(|_| {
                let ours = huge_backed_bytes(start, n).unwrap();
                assert!(ours <= n);
                ours == oracle(start, n)
            });
            assert!(
                agree,
                "range {start:#x} + {n:#x}: {:?} vs {}",
                huge_backed_bytes(start, n),
                oracle(start, n)
            );
        }
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if !thp.contains("[never]") {
            // Not certain (the kernel may find no free huge page), so printed.
            eprintln!("huge-backed: {} of {len} bytes", huge_backed_bytes(base, len).unwrap());
        }
        // SAFETY: our mappings, whole, and no longer used.
        unsafe {
            posix::unmap(p, len);
            mm::munmap(fmap, 4096).unwrap();
        }
        std::fs::remove_dir_all(std::env::temp_dir().join(format!("nalloc-smaps-{}", std::process::id()))).unwrap();
    }

    /// An explicit huge-page mapping succeeds exactly where the kernel has a
    /// reserved huge page free (`vm.nr_hugepages`), and is refused (null)
    /// where it has none.
    #[test]
    #[cfg(not(miri))]
    fn explicit_huge_pages_map_where_reserved() {
        let free: usize = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let len = 2 << 20;
        let p = map_explicit_huge(len);
        if free == 0 {
            assert!(p.is_null(), "no huge page is free, yet the mapping was made");
            return;
        }
        assert!(!p.is_null(), "{free} free huge pages, but the mapping failed");
        assert_eq!(p.addr() % len, 0);
        // SAFETY: our fresh mapping of `len` bytes.
        unsafe {
            p.write(1);
            p.add(len - 1).write(2);
            posix::unmap(p, len);
        }
    }

    /// Touching fresh pages counts minor faults.
    #[test]
    #[cfg(not(miri))]
    fn touching_fresh_pages_counts_minor_faults() {
        let (pages, pg) = (64, page_size());
        let p = posix::map_rw(pages * pg, pg, pg, MapFlags::empty());
        assert!(!p.is_null());
        let before = minor_faults();
        for i in 0..pages {
            // SAFETY: inside our fresh mapping.
            unsafe { p.add(i * pg).write_volatile(1) };
        }
        let after = minor_faults();
        // SAFETY: our mapping, whole.
        unsafe { posix::unmap(p, pages * pg) };
        assert!(
            after >= before + pages as u64 / 2,
            "{before} -> {after} for {pages} pages"
        );
    }
}
