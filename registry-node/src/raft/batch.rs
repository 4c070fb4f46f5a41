//! Proposal batching: concurrent client writes share one Raft entry.
//!
//! Every Raft entry costs the core, the log, replication and the state machine their
//! per-entry work (an entry header, a log record, a response). openraft 0.10's
//! `client_write_many` hands many writes to the core in one message, but still as one entry
//! each; here concurrent writes become ONE entry. Proposals wait
//! in a queue; a driver takes everything queued into ONE entry ([`Command::batch`]) whenever
//! fewer than [`MAX_IN_FLIGHT`] entries are on their way, and hands each waiter its own
//! result. Under load, a batch is whatever arrived while the previous entries were being
//! written; a lone request still goes alone, as a plain entry, straight from its caller.
//!
//! ```text
//!  propose ─┐                    ┌─ client_write(batch 1) ─▶ results ─▶ waiters of batch 1
//!  propose ─┼─▶ queue ─▶ driver ─┼─ client_write(batch 2) ─▶ ...
//!  propose ─┘   (≤ MAX_IN_FLIGHT) └─ ...
//! ```

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::oneshot;

use super::{Command, CommandResult, Raft, TypeConfig};
use crate::batching::Batching;

/// Entries of batched proposals on their way through Raft at once, by default
/// (`[raft] proposals_in_flight`).
pub(crate) const MAX_IN_FLIGHT: usize = 3;
/// At most this many requests in one entry.
pub(crate) const MAX_BATCH: usize = 256;
/// A batch is closed once its encoded requests reach this many bytes.
pub(crate) const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// What one proposal gets back.
pub(crate) type Outcome =
    Result<CommandResult, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

type Waiter = (Vec<u8>, oneshot::Sender<Outcome>);

/// The proposal queue of a member.
#[derive(Clone)]
pub(crate) struct ProposalBatch {
    queue: Batching<Waiter>,
}

impl Default for ProposalBatch {
    fn default() -> Self {
        ProposalBatch::new(MAX_IN_FLIGHT)
    }
}

impl ProposalBatch {
    /// A queue that lets `in_flight` entries (at least one) be on their way at once.
    pub(crate) fn new(in_flight: usize) -> Self {
        ProposalBatch {
            queue: Batching::new(in_flight),
        }
    }

    /// Queues `encoded` (an encoded `InternalRequest`) and waits for its applied result.
    pub(crate) async fn propose(&self, raft: &Raft, encoded: Vec<u8>) -> Option<Outcome> {
        // A lone request with a free slot goes straight from the caller's task, as a plain
        // entry: no driver task and no hand-off on the path of a single client's write.
        if let Some(permit) = self.queue.direct() {
            let r = raft.client_write(Command(encoded)).await.map(|r| r.data);
            drop(permit);
            return Some(r);
        }
        let (tx, rx) = oneshot::channel();
        let raft = raft.clone();
        self.queue.push((encoded, tx), take_batch, move |batch| {
            let raft = raft.clone();
            async move { write_batch(&raft, batch).await }
        });
        rx.await.ok()
    }
}

/// The oldest waiters, up to the batch limits (at least one).
fn take_batch(waiting: &mut Vec<Waiter>) -> Vec<Waiter> {
    let mut bytes = 0;
    let n = waiting
        .iter()
        .take(MAX_BATCH)
        .take_while(|(req, _)| {
            let first = bytes == 0;
            bytes += req.len();
            first || bytes <= MAX_BATCH_BYTES
        })
        .count()
        .max(1);
    let rest = waiting.split_off(n);
    std::mem::replace(waiting, rest)
}

async fn write_batch(raft: &Raft, mut batch: Vec<Waiter>) {
    if batch.len() == 1 {
        let (req, tx) = batch.pop().expect("one waiter");
        let _ = tx.send(raft.client_write(Command(req)).await.map(|r| r.data));
        return;
    }
    let (reqs, txs): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    match raft.client_write(Command::batch(&reqs)).await {
        Ok(resp) => {
            let mut results = match resp.data {
                CommandResult::Batch(v) if v.len() == txs.len() => v.into_iter(),
                _ => Vec::new().into_iter(),
            };
            for tx in txs {
                let r = results.next().unwrap_or(CommandResult::Undecodable);
                let _ = tx.send(Ok(r));
            }
        }
        Err(e) => {
            for tx in txs {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_byte_limits() {
        let mk = |n: usize, len: usize| -> Vec<Waiter> {
            (0..n)
                .map(|_| (vec![0u8; len], oneshot::channel().0))
                .collect()
        };
        let mut w = mk(MAX_BATCH + 10, 10);
        assert_eq!(take_batch(&mut w).len(), MAX_BATCH);
        assert_eq!(w.len(), 10);
        // A request bigger than the byte limit still goes, alone.
        let mut w = mk(3, MAX_BATCH_BYTES + 1);
        assert_eq!(take_batch(&mut w).len(), 1);
        let mut w = mk(4, MAX_BATCH_BYTES / 2);
        assert_eq!(take_batch(&mut w).len(), 2);
    }
}
