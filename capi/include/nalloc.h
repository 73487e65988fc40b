/*
 * nalloc.h — C interface of zk-nalloc (libnalloc.so / libnalloc.a).
 *
 * The library exports the standard allocation functions (malloc, free,
 * calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
 * valloc, pvalloc, malloc_usable_size, malloc_trim, cfree, and C23's
 * free_sized and free_aligned_sized, which ignore their size hints) with glibc's
 * behaviour, so
 * loading it with LD_PRELOAD or linking it with -lnalloc makes nalloc the
 * process's allocator; they are declared by <stdlib.h> and <malloc.h> as
 * usual. This header declares nalloc's own extras.
 *
 * Misuse stops the process with one line on stderr, as glibc does: free(),
 * realloc() or malloc_usable_size() of a pointer nalloc did not hand out
 * ("nalloc: free(): invalid pointer at 0x..."), a large block freed twice
 * ("free(): double free"), a small block freed twice in a row ("double
 * free"), nalloc_witness_free() of a non-witness or freed block (see the
 * witness section for what a stale pointer of a reused block escapes).
 *
 * Environment (read once, without allocating, when the library loads):
 *   NALLOC_HUGE_PAGES   = auto (default) | on | off | explicit (MAP_HUGETLB
 *                         pages from vm.nr_hugepages, else as `on`)
 *   NALLOC_POOL_CAP     = bytes of freed large blocks kept warm (K/M/G suffix)
 *   NALLOC_PURGE_DELAY  = milliseconds a free small-object page stays resident
 *                         before it goes back to the OS (default 5) | never
 *   NALLOC_STATS        = 1 prints a summary to stderr at exit
 *   NALLOC_FIRST_TOUCH  = reuse (default): a large block no freed block fits
 *                         is built from the pages of smaller freed ones,
 *                         fresh pages fault in small (huge-page advice once
 *                         a block is reused), calloc clears recycled memory
 *                         with memset | fresh: kernel-fresh pages (huge-page
 *                         advice from first use, large recycled calloc
 *                         blocks handed back to the kernel, nothing moved)
 *   NALLOC_BUDGET       = most bytes nalloc may commit (12G, 12GiB, 800M,
 *                         plain bytes), auto (a fraction of the container's
 *                         memory limit) or off (default); past it malloc
 *                         returns NULL with ENOMEM and one line on stderr
 *   NALLOC_WITNESS_LOCK = best-effort (default): witness memory the OS
 *                         refuses to mlock is handed out anyway, with one
 *                         notice on stderr | require: such an allocation
 *                         returns NULL instead
 *   NALLOC_FOREIGN_FREE = forward: pointers nalloc did not hand out go to the
 *                         C library's free/realloc/malloc_usable_size instead
 *                         of stopping the process (programs that mix
 *                         allocators, e.g. a library opened RTLD_DEEPBIND)
 */
#ifndef NALLOC_H
#define NALLOC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Witness (secret) memory.
 *
 * nalloc_witness_alloc returns `size` zeroed bytes, 16-byte aligned, from
 * the witness arena: locked in RAM (mlock, within RLIMIT_MEMLOCK; see
 * nalloc_stats.witness_locked), excluded from core dumps, read as zero in
 * forked children, and wiped when freed. NULL with errno = ENOMEM on failure.
 * The page directly before and after every run of witness blocks is a guard
 * page (a stray access faults); each block carries a canary after its `size`
 * bytes, checked by free and realloc: an overflow stops the process with
 * "nalloc: witness block overflowed (canary overwritten) at 0x... (N bytes)".
 *
 * Free it with nalloc_witness_free (or free(), which wipes it too).
 * realloc() keeps it witness memory: the block grows or moves inside the
 * witness arena and every place it leaves is wiped; malloc_usable_size()
 * knows its size. nalloc_witness_free(NULL) does nothing; a pointer outside
 * witness memory, or a block freed already, stops the process. A block
 * over 64 KiB - 24 bytes freed twice is caught even after its size was
 * allocated again: blocks that size get fresh addresses for about the next
 * 1 GiB of witness allocations. A smaller block freed twice is caught only
 * until its address is handed out again (to the next block of its size
 * class, at once): a stale pointer then frees the new owner's block.
 * Writing the 16 bytes before a block (its header) makes its free report
 * "free(): invalid pointer".
 *
 * nalloc_witness_wipe_all zeroes every witness byte ever handed out, live or
 * freed, and forgets all blocks: every pointer from nalloc_witness_alloc is
 * invalid afterwards and must not be freed. Meant for the end of a proof.
 *
 * All three are thread-safe and fork-safe, and preserve errno on success.
 */
void *nalloc_witness_alloc(size_t size);
void nalloc_witness_free(void *p);
void nalloc_witness_wipe_all(void);

/* A snapshot of the allocator's figures (bytes unless noted). */
struct nalloc_stats {
    uint64_t small_allocs;     /* small-object (<= 64 KiB) allocations so far */
    uint64_t small_frees;      /* ... and frees */
    uint64_t large_allocs;     /* large-block (span) allocations so far */
    uint64_t large_frees;      /* ... and frees */
    uint64_t pool_hits;        /* large allocations served from the warm pool */
    size_t heaps;              /* thread heaps made (peak number of live threads) */
    size_t mapped;             /* mapped from the OS now (witness memory excluded) */
    size_t peak_mapped;        /* highest `mapped` seen */
    size_t pool_retained;      /* freed large blocks kept warm for reuse */
    size_t returned_to_os;     /* given back to the OS so far */
    size_t large_used;         /* in live large blocks */
    size_t large_peak;         /* highest `large_used` seen */
    size_t large_capacity;     /* live large blocks plus the warm pool */
    size_t witness_used;       /* in live witness blocks */
    size_t witness_peak;       /* highest `witness_used` seen */
    size_t witness_capacity;   /* committed for witness memory */
    int witness_locked;        /* 1 if every witness chunk is mlock'ed */
    int witness_dump_excluded; /* 1 if witness chunks are excluded from core dumps */
    int witness_fork_wiped;    /* 1 if witness chunks read as zero in fork children */
    int reserved;              /* 0 */
};

/* Fills *out; returns 0, or EINVAL if out is NULL (errno untouched). */
int nalloc_stats(struct nalloc_stats *out);

/*
 * Slow-path event counts since start, for judging how the allocator scales
 * with threads (divide by the operations in nalloc_stats). Always on: they
 * are kept off the small-object fast paths.
 */
struct nalloc_counters {
    uint64_t lock_acquisitions; /* spin-lock acquisitions on slow paths (all locks) */
    uint64_t lock_contended;    /* ... whose first try found the lock held */
    uint64_t remote_batches;    /* batches of cross-thread frees handed to the owner */
    uint64_t remote_blocks;     /* blocks in those batches */
    uint64_t remote_atomics;    /* atomic read-modify-writes they took */
    uint64_t remote_kept;       /* batches kept for the freeing thread's own reuse */
    uint64_t remote_collects;   /* owners' collections that found cross-thread frees */
    uint64_t remote_collected;  /* blocks those collections took back */
    uint64_t os_map;            /* mmap calls */
    uint64_t os_unmap;          /* munmap calls */
    uint64_t os_remap;          /* mremap calls */
    uint64_t os_advise;         /* madvise/prctl hints and flags */
    uint64_t os_purge;          /* ranges purged or decommitted */
    uint64_t os_protect;        /* mprotect (commit) and mlock/munlock calls */
    uint64_t os_query;          /* mincore samples */
};

/* Fills *out; returns 0, or EINVAL if out is NULL (errno untouched). */
int nalloc_counters(struct nalloc_counters *out);

/*
 * Returns retained memory to the OS, process-wide: the warm pool of freed
 * large blocks, cached empty segments, the calling thread's empty pages and
 * those of exited threads' heaps now, and every other live thread's at its
 * next allocation that misses its thread cache (or next large block).
 * Returns the bytes released now. malloc_trim() does the same (returning 1
 * if anything was released).
 */
size_t nalloc_trim(void);

/*
 * Proof phases. nalloc_phase_begin("commit") opens a phase (process-wide,
 * nestable; the name is copied, cut to 31 bytes) and nalloc_phase_end()
 * closes the innermost open one. Per phase name nalloc keeps calls, bytes
 * allocated, peak live bytes, bytes returned to the OS, minor page faults
 * and wall time; NALLOC_STATS=1 prints them as a table at exit. Neither
 * call allocates or changes errno.
 */
void nalloc_phase_begin(const char *name);
void nalloc_phase_end(void);

/* Restarts peak_mapped and large_peak (and the phases' peak) at the
 * current values: measure each job's peak in a long-running process. */
void nalloc_reset_peaks(void);

/*
 * Sets the memory budget in bytes (0: none), overriding NALLOC_BUDGET (e.g.
 * NALLOC_BUDGET=12G, 800M, auto, off). A request that would take nalloc's
 * committed memory past it returns NULL with errno = ENOMEM, after nalloc
 * gave back what it keeps for reuse, and one line goes to stderr:
 *   nalloc: memory budget exceeded: request=R budget=B committed=C live=L phase=P
 * Blocks already handed out are untouched; later requests that fit succeed.
 */
void nalloc_set_budget(size_t bytes);

#ifdef __cplusplus
}
#endif

#endif /* NALLOC_H */
