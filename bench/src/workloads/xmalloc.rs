//! `xmalloc`: producer threads allocate and fill blocks, consumer threads
//! verify every byte and free them (after Lever & Boreham's xmalloc test).
//! Every block is freed by a different thread than the one that allocated it.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use super::{join, ms, standard, Ctx};
use crate::block::Block;
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

const BATCH: usize = 64;

fn produce(id: usize, count: usize, consumers: &[SyncSender<Vec<Block>>]) -> Result<(), String> {
    let mut rng = XorShift::new(0x7e11 + id as u64);
    let mut produced = 0;
    let mut k = id;
    while produced < count {
        let n = BATCH.min(count - produced);
        let batch: Vec<Block> = (0..n)
            .map(|i| Block::filled(rng.range(16, 256), ((id as u64) << 40) | (produced + i) as u64))
            .collect();
        produced += n;
        consumers[k % consumers.len()]
            .send(batch)
            .map_err(|_| "consumer hung up".to_owned())?;
        k += 1;
    }
    Ok(())
}

fn consume(rx: Receiver<Vec<Block>>) -> Result<usize, String> {
    let mut freed = 0;
    for batch in rx {
        for b in batch {
            b.check_filled()?;
            freed += 1;
        }
    }
    Ok(freed)
}

/// One round: fresh producer and consumer threads; every producer makes
/// `per_producer` blocks. Returns the number of blocks freed.
fn round(producers: usize, consumers: usize, per_producer: usize) -> Result<usize, String> {
    std::thread::scope(|s| -> Result<usize, String> {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..consumers).map(|_| sync_channel(16)).unzip();
        let consumer_handles: Vec<_> = rxs.into_iter().map(|rx| s.spawn(move || consume(rx))).collect();
        let producer_handles: Vec<_> = (0..producers)
            .map(|id| {
                let txs = txs.clone();
                s.spawn(move || produce(id, per_producer, &txs))
            })
            .collect();
        drop(txs);
        let produced = producer_handles.into_iter().map(join).collect::<Vec<_>>();
        let freed: Result<Vec<usize>, String> = consumer_handles.into_iter().map(join).collect();
        produced.into_iter().collect::<Result<Vec<()>, String>>()?;
        Ok(freed?.into_iter().sum())
    })
}

/// Entry point: the blocks are made in rounds, each with fresh threads.
/// Phases `setup` (nothing to prepare but the list of round times: near
/// 0), `cold` (the first round), `warm` (median of the rest) and
/// `transfer` (all rounds: every block produced, verified and freed).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let producers = (ctx.threads / 2).max(1);
    let consumers = (ctx.threads / 2).max(1);
    let rounds = ctx.size(2, 5, 10);
    // Per producer and round: the quick and full totals as before the
    // rounds (1.5M and 6M blocks per producer).
    let per_producer = ctx.size(2_000, 300_000, 600_000);

    let t = Instant::now();
    let mut times = Vec::with_capacity(rounds);
    let setup_ms = ms(t.elapsed());
    for _ in 0..rounds {
        let t = Instant::now();
        let freed = round(producers, consumers, per_producer)?;
        times.push(ms(t.elapsed()));
        let expected = producers * per_producer;
        if freed != expected {
            return Err(format!("xmalloc: freed {freed} blocks, expected {expected}"));
        }
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    out.phase("transfer", times.iter().sum());
    Ok(out)
}
