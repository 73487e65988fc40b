//! `soak`: a long run of a realistic mix, to catch slow leaks, fragmentation
//! growth and rare corruption that short benchmarks miss.
//!
//! `2 x threads` (at least 4) workers loop until the deadline, each doing:
//!
//! * small-object churn: a slot array of 1024 tagged blocks (16-1024 B),
//!   random slots replaced (the old block's tags checked, then freed);
//! * cross-thread frees: batches of 64 fully patterned blocks (16-4096 B)
//!   sent to the next worker through a bounded channel, verified and freed
//!   there;
//! * large vectors: `Vec<u64>` of 0.5-16 MiB filled, verified, freed, and
//!   vectors grown by `push` (realloc);
//! * under nalloc, secrets: `NAlloc::witness_scope(|| vec![..])` blocks,
//!   verified, freed locally or sent to the next worker and freed there.
//!
//! Every second the main thread prints ops/s and RSS (from
//! `/proc/self/statm`, polled every 20 ms; the second's peak is shown) on
//! stderr, prefixed with [`PREFIX`] (the runner forwards those lines
//! live). The run fails on any content check, or if memory does not
//! plateau. Each second is judged by the median of its polls, and the run
//! by the median of those seconds: the last third may exceed the middle
//! third by at most 10 % (or `GROWTH_FLOOR`, for tiny heaps). Medians,
//! not peaks: a single poll jumps by whichever large vectors and pooled
//! spans happen to be there at that instant (CI runs failed on that with
//! nothing leaking: docs/experiments/soak-judging.md), whereas a leak or
//! fragmentation growth raises every poll of the last third. Under
//! nalloc each poll is RSS minus the warm pool's bytes and minus the live
//! spans: freed spans that the pool keeps on purpose, bounded by its own
//! cap and retention budget (tested elsewhere), which it fills at its own
//! pace after the live peak, and the large vectors the workers hold at the
//! instant of a poll. What is left is small-object and metadata memory,
//! where a leak or fragmentation growth would show.
//!
//! Duration: `--seconds N` on the runner (or `NALLOC_SOAK_SECONDS` for a
//! worker started by hand); default 20 s (`--full`: 120 s).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::{join, ms, Ctx};
use crate::block::Block;
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

/// Prefix of the progress lines on stderr.
pub const PREFIX: &str = "[soak]";
/// Environment variable with the duration in seconds (set by `--seconds`).
pub const SECONDS_ENV: &str = "NALLOC_SOAK_SECONDS";

/// A handle for `witness_scope` (the routing flag is per thread; the
/// worker's `#[global_allocator]` does the routing).
static NALLOC: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

const SLOTS: usize = 1024;
const BATCH: usize = 64;
/// Allowed RSS growth of the last third over the middle third.
const GROWTH: f64 = 0.10;
/// Growth below this is never a failure: a tiny heap's few pages. Well
/// above the judged figure's run-to-run noise, and below what a planted
/// slow leak adds (docs/experiments/soak-judging.md).
const GROWTH_FLOOR: usize = 2 << 20;

enum Msg {
    Blocks(Vec<Block>),
    Secret(Vec<u8>, u8),
}

fn secret_byte(v: &[u8]) -> Option<u8> {
    let b = *v.first()?;
    v.iter().all(|&x| x == b).then_some(b)
}

fn check_msg(m: Msg) -> Result<u64, String> {
    match m {
        Msg::Blocks(blocks) => {
            let n = blocks.len() as u64;
            for b in blocks {
                b.check_filled()?;
            }
            Ok(n)
        }
        Msg::Secret(v, byte) => match secret_byte(&v) {
            Some(b) if b == byte => Ok(1),
            _ => Err(format!("soak: secret of {} bytes corrupted in transit", v.len())),
        },
    }
}

struct Shared {
    stop: AtomicBool,
    failed: AtomicBool,
    ops: AtomicU64,
}

/// Sets the workers' stop flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

fn worker(id: usize, nalloc: bool, sh: &Shared, tx: SyncSender<Msg>, rx: Receiver<Msg>) -> Result<(), String> {
    let r = worker_loop(id, nalloc, sh, &tx, &rx);
    if r.is_err() {
        sh.failed.store(true, Relaxed);
    }
    // Stop sending, then take in what the previous worker still sends until
    // it hangs up (every worker drops its sender before draining).
    drop(tx);
    let mut drained = Ok(());
    for m in rx {
        if let Err(e) = check_msg(m) {
            drained = Err(e);
        }
    }
    r.and(drained)
}

fn worker_loop(id: usize, nalloc: bool, sh: &Shared, tx: &SyncSender<Msg>, rx: &Receiver<Msg>) -> Result<(), String> {
    let mut rng = XorShift::new(0x50a6 + id as u64);
    let mut slots: Vec<Block> = (0..SLOTS)
        .map(|i| Block::new(rng.range(16, 1024), ((id as u64) << 48) | i as u64))
        .collect();
    let mut tag = 0u64;
    let mut iter = 0u64;
    while !sh.stop.load(Relaxed) {
        let mut ops = 0u64;
        // Small-object churn.
        for _ in 0..256 {
            tag += 1;
            let i = rng.below(SLOTS);
            let fresh = Block::new(rng.range(16, 1024), ((id as u64) << 48) | tag);
            std::mem::replace(&mut slots[i], fresh).free_checked()?;
        }
        ops += 256;
        // Cross-thread frees: a batch for the next worker (freed here when
        // its queue is full).
        let batch: Vec<Block> = (0..BATCH)
            .map(|k| Block::filled(rng.range(16, 4096), ((id as u64) << 48) | (tag << 8) | k as u64))
            .collect();
        ops += BATCH as u64;
        if let Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) = tx.try_send(Msg::Blocks(batch)) {
            ops += check_msg(m)?;
        }
        while let Ok(m) = rx.try_recv() {
            ops += check_msg(m)?;
        }
        // Large vectors, and growth by push (realloc).
        if iter % 8 == id as u64 % 8 {
            let n = rng.range(64 << 10, 2 << 20);
            let v: Vec<u64> = (0..n as u64).map(|x| x ^ tag).collect();
            for _ in 0..64 {
                let k = rng.below(n);
                if v[k] != k as u64 ^ tag {
                    return Err(format!("soak: large vector of {n} u64 corrupted at {k}"));
                }
            }
            let mut g: Vec<u32> = Vec::new();
            let target = rng.range(1000, 300_000);
            for x in 0..target as u32 {
                g.push(x);
            }
            if g.iter().enumerate().any(|(i, &x)| x != i as u32) {
                return Err(format!("soak: vector grown to {target} by push corrupted"));
            }
            ops += 2;
        }
        // Secrets (nalloc only): witness memory, freed here or elsewhere.
        if nalloc && iter.is_multiple_of(4) {
            for k in 0..8u8 {
                let byte = k | 1;
                let len = rng.range(32, 4096);
                let s = NALLOC.witness_scope(|| vec![byte; len]);
                if secret_byte(&s) != Some(byte) {
                    return Err(format!("soak: fresh secret of {len} bytes corrupted"));
                }
                if k.is_multiple_of(2) {
                    if let Err(TrySendError::Full(m) | TrySendError::Disconnected(m)) =
                        tx.try_send(Msg::Secret(s, byte))
                    {
                        ops += check_msg(m)?;
                    }
                }
                ops += 1;
            }
        }
        // Ordinary short-lived objects.
        let s = format!("worker {id} iteration {iter}");
        let b: Box<[u64]> = (0..rng.range(1, 64) as u64).collect();
        std::hint::black_box((s, b));
        ops += 2;
        sh.ops.fetch_add(ops, Relaxed);
        iter += 1;
    }
    for b in slots {
        b.free_checked()?;
    }
    Ok(())
}

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss() -> Result<usize, String> {
    let s = std::fs::read_to_string("/proc/self/statm").map_err(|e| format!("soak: /proc/self/statm: {e}"))?;
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or("soak: cannot parse /proc/self/statm")?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    Ok(pages * page)
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// Checks that RSS plateaued: `Err` with the figures if the median of the
/// last third of the samples (one per second) is more than [`GROWTH`] (and
/// [`GROWTH_FLOOR`]) above the median of the middle third. The verdict
/// states that threshold as a leak rate in bytes per second: the tolerated
/// growth over the n/3 seconds between the two thirds. Fewer than 6 samples
/// cannot be judged, and fail: a soak that judges nothing must not pass.
pub fn plateau(samples: &[usize]) -> Result<String, String> {
    let n = samples.len();
    if n < 6 {
        return Err(format!(
            "soak: {n} RSS samples are too few to judge a plateau (run at least 6 s)"
        ));
    }
    let mid = median(&samples[n / 3..2 * n / 3]);
    let last = median(&samples[2 * n / 3..]);
    let growth = last as f64 / mid.max(1) as f64 - 1.0;
    let window_secs = (n / 3).max(1);
    let tolerated = ((mid as f64 * GROWTH) as usize).max(GROWTH_FLOOR);
    let msg = format!(
        "RSS (less the warm pool and live spans under nalloc), median of the per-second medians: middle third {:.1} MiB, last third {:.1} MiB ({:+.1} %); leak threshold {} bytes/s ({:.1} MiB over {window_secs} s)",
        mib(mid),
        mib(last),
        growth * 100.0,
        tolerated / window_secs,
        mib(tolerated)
    );
    if growth > GROWTH && last - mid > GROWTH_FLOOR {
        Err(format!("soak: RSS did not plateau: {msg}"))
    } else {
        Ok(msg)
    }
}

/// The median of a non-empty slice (the upper one of the two middle values
/// for an even count); 0 for an empty one.
fn median(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.get(s.len() / 2).copied().unwrap_or(0)
}

/// Entry point: phase `per-1M-ops` (ms per million operations).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let seconds = match std::env::var(SECONDS_ENV) {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&s| s >= 1)
            .ok_or_else(|| format!("{SECONDS_ENV} must be a positive number of seconds, got `{v}`"))?,
        Err(_) => ctx.pick(20, 120),
    };
    let nalloc = ctx.is_nalloc();
    let workers = (ctx.threads * 2).max(4);
    let sh = Shared {
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        ops: AtomicU64::new(0),
    };
    eprintln!(
        "{PREFIX} {} | {workers} workers | {seconds} s{}",
        ctx.allocator,
        if nalloc { " | with witness_scope secrets" } else { "" }
    );
    let start = Instant::now();
    let mut samples = Vec::new();
    let results = std::thread::scope(|s| -> Result<Vec<Result<(), String>>, String> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..workers).map(|_| sync_channel::<Msg>(8)).unzip();
        let mut rxs: Vec<Option<Receiver<Msg>>> = rxs.into_iter().map(Some).collect();
        let handles: Vec<_> = txs
            .into_iter()
            .enumerate()
            .map(|(i, tx)| {
                // Worker i sends to worker i + 1 and receives from i - 1.
                let rx = rxs[i].take().expect("one receiver per worker");
                let sh = &sh;
                s.spawn(move || worker(i, nalloc, sh, tx, rx))
            })
            .collect();
        // Stops the workers however the monitor ends, a panic included (an
        // `eprintln!` to a closed pipe): the scope waits for them.
        let stop = StopOnDrop(&sh.stop);
        let mut last_ops = 0;
        let mut tick = start;
        let monitor = (|| -> Result<(), String> {
            for second in 1..=seconds {
                tick += Duration::from_secs(1);
                // RSS is polled every 20 ms: each second shows its peak
                // and is judged by its median poll (below).
                let mut peak = 0;
                let mut polls = Vec::with_capacity(64);
                let held = || {
                    if nalloc {
                        let st = NALLOC.stats();
                        st.pool_retained + st.polynomial_used
                    } else {
                        0
                    }
                };
                let mut poll = || -> Result<usize, String> {
                    // Held bytes read on both sides of the RSS read, the
                    // larger kept: a span that moves between live, a
                    // thread's cache and the pool while RSS is read (or
                    // while `stats()` reads its counters one by one) is
                    // counted in neither for an instant, and would count
                    // as up to 16 MiB of "leak" in that poll.
                    let before = held();
                    let r = rss()?;
                    let after = held();
                    peak = peak.max(r);
                    polls.push(r.saturating_sub(before.max(after)));
                    Ok(r)
                };
                while Instant::now() < tick {
                    if sh.failed.load(Relaxed) {
                        return Ok(());
                    }
                    poll()?;
                    std::thread::sleep(Duration::from_millis(20).min(tick.saturating_duration_since(Instant::now())));
                }
                let r = poll()?;
                // The median poll of the second, not its highest: a poll
                // still catches a span mid-move now and then, whereas a
                // leak raises every poll.
                let judged = median(&polls);
                let ops = sh.ops.load(Relaxed);
                samples.push(judged);
                // Under nalloc, where the memory is: spans (live, their
                // peak, the warm pool) and everything mapped.
                let detail = if nalloc {
                    let st = NALLOC.stats();
                    format!(
                        "  judged {:.1} | spans {:.1} (peak {:.1}) pool {:.1} mapped {:.1} MiB",
                        mib(judged),
                        mib(st.polynomial_used),
                        mib(st.polynomial_peak),
                        mib(st.pool_retained),
                        mib(st.mapped)
                    )
                } else {
                    String::new()
                };
                eprintln!(
                    "{PREFIX} {:>6} s  {:>8.3} Mops/s  rss {:>8.1} MiB  (peak in this second {:>8.1} MiB){detail}",
                    second,
                    (ops - last_ops) as f64 / 1e6,
                    mib(r),
                    mib(peak)
                );
                last_ops = ops;
            }
            Ok(())
        })();
        drop(stop);
        let results = handles.into_iter().map(join).collect();
        monitor.map(|()| results)
    })?;
    let elapsed = start.elapsed();
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    let ops = sh.ops.load(Relaxed);
    let verdict = plateau(&samples);
    eprintln!(
        "{PREFIX} done: {ops} ops in {:.1} s ({:.3} Mops/s); {}",
        elapsed.as_secs_f64(),
        ops as f64 / elapsed.as_secs_f64() / 1e6,
        match &verdict {
            Ok(m) | Err(m) => m,
        }
    );
    verdict?;
    let mut out = WorkloadOutput::default();
    out.phase("per-1M-ops", ms(elapsed) / (ops.max(1) as f64 / 1e6));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::plateau;

    #[test]
    fn plateau_rule() {
        const M: usize = 1 << 20;
        assert!(plateau(&[100 * M; 9]).is_ok());
        // Warm-up growth in the first third is fine.
        let warm_up = [10, 50, 90, 100, 101, 100, 105, 104, 103].map(|m| m * M);
        assert!(plateau(&warm_up).is_ok());
        // Steady growth is not.
        let grow: Vec<usize> = (1..=9).map(|i| i * 40 * M).collect();
        assert!(plateau(&grow).is_err());
        // Small absolute changes of a tiny heap are noise.
        let tiny = |end: usize| [10 * M, 10 * M, 10 * M, 10 * M, 10 * M, 10 * M, end, end, end];
        assert!(plateau(&tiny(11 * M + M / 2)).is_ok(), "+15 % but 1.5 MiB is noise");
        assert!(
            plateau(&tiny(13 * M)).is_err(),
            "+3 MiB in a third of the run is a leak"
        );
        assert!(plateau(&[M; 3]).is_err(), "too short a run must not pass unjudged");
        // One high second in the last third (large vectors live at the
        // instant of a poll) is not growth...
        let spike = [60, 62, 61, 62, 60, 61, 62, 73, 61].map(|m| m * M);
        assert!(plateau(&spike).is_ok());
        // ...but a last third that is high throughout is.
        let step = [60, 62, 61, 62, 60, 61, 72, 73, 74].map(|m| m * M);
        assert!(plateau(&step).is_err());
    }
}
