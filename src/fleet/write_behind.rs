//! Write-behind: new sessions reach Redis from a queue, never from the handshake.
//!
//! `put` (and `Fleet::add_session`) only queue a session; one task takes batches off the
//! queue, seals them and writes them with their remaining lifetime as the TTL. A full
//! queue drops the newest write (counted): nothing waits for Redis in `put`.
//!
//! The queue is also what makes local claims possible. A ticket still *unsent* is known
//! to no other server, so the acceptor can claim it by [`cancel`](WriteQueue::cancel)ing
//! its write: it then never reaches Redis, and resumes once, here. A ticket whose batch
//! is being *sent* cannot be cancelled; the acceptor waits for that batch to land
//! ([`landed`](WriteQueue::landed)) before it claims the ticket with `GETDEL`, so the
//! `SET` is always ahead of the `GETDEL` in Redis, whichever connection carries them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::codec::FleetKeys;
use super::stats::Counters;
use super::store::{Store, Write};
use crate::cache::SessionCache;
use crate::session::{Entry, Id, Session};
use crate::stats::add;

/// The most queued writes sent to Redis in one pipeline.
const WRITE_BATCH: usize = 64;

/// How long one pipeline of writes may take before its writes count as dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The writes waiting to be sent, and the batch being sent.
pub(crate) struct WriteQueue {
    state: Mutex<State>,
    /// Wakes the writer when a write is queued, or the queue is closed.
    wake: Notify,
    /// How many batches have finished: landed in Redis, or failed.
    finished: watch::Sender<u64>,
}

struct State {
    /// Unsent writes, oldest first.
    unsent: LruCache<Id, Entry>,
    capacity: usize,
    /// The ids in the batch being sent now.
    sending: HashSet<Id>,
    /// How many batches have been taken for sending; the one in flight is this number.
    taken: u64,
    closed: bool,
}

/// Where a session's writes are, once [`WriteQueue::cancel`] has cancelled the unsent
/// one.
#[derive(Default)]
pub(crate) struct Pending {
    /// The write not yet sent, now cancelled: it never will be.
    pub(crate) cancelled: Option<Session>,
    /// The batch being sent, if it holds a write of this id: wait for
    /// [`WriteQueue::landed`] with this number before reading the id from Redis.
    pub(crate) sending: Option<u64>,
}

impl WriteQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                unsent: LruCache::unbounded(),
                capacity,
                sending: HashSet::new(),
                taken: 0,
                closed: false,
            }),
            wake: Notify::new(),
            finished: watch::Sender::new(0),
        }
    }

    /// Queues `session` to be written. `false` if the queue is full (or closed): the
    /// write is dropped. A session already queued under the same id is replaced.
    pub(crate) fn push(&self, session: Session) -> bool {
        let Session { id, entry } = session;
        let displaced = {
            let mut state = self.state.lock();
            if state.closed
                || (state.unsent.len() >= state.capacity && !state.unsent.contains(id.as_slice()))
            {
                return false;
            }
            state.unsent.push(id, entry)
        };
        drop(displaced); // wiped, outside the lock
        self.wake.notify_one();
        true
    }

    /// Cancels the write of `id` that has not been sent, if any, and tells whether one
    /// is being sent; see [`Pending`].
    pub(crate) fn cancel(&self, id: &[u8]) -> Pending {
        let mut state = self.state.lock();
        let cancelled = state
            .unsent
            .pop_entry(id)
            .map(|(id, entry)| Session { id, entry });
        let sending = state.sending.contains(id).then_some(state.taken);
        Pending { cancelled, sending }
    }

    /// Waits until batch `batch` has finished: its writes landed in Redis, or failed.
    pub(crate) async fn landed(&self, batch: u64) {
        let mut finished = self.finished.subscribe();
        // The sender lives as long as `self`: this cannot fail while we wait.
        let _ = finished.wait_for(|done| *done >= batch).await;
    }

    /// Stops taking writes. Those queued are still written.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().unsent.len()
    }

    /// The next batch to send, oldest first, and its number; `None` once the queue is
    /// closed and empty.
    async fn next_batch(&self) -> Option<(u64, Vec<Session>)> {
        loop {
            {
                let mut state = self.state.lock();
                if !state.unsent.is_empty() {
                    let mut batch = Vec::with_capacity(WRITE_BATCH);
                    while batch.len() < WRITE_BATCH {
                        let Some((id, entry)) = state.unsent.pop_lru() else {
                            break;
                        };
                        state.sending.insert(id.clone());
                        batch.push(Session { id, entry });
                    }
                    state.taken += 1;
                    return Some((state.taken, batch));
                }
                if state.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// Batch `batch` has landed or failed: its ids are no longer being sent.
    fn finish(&self, batch: u64) {
        self.state.lock().sending.clear();
        self.finished.send_replace(batch);
    }
}

/// The writer: takes batches off `queue`, seals them, and writes them to Redis with their
/// remaining lifetime as the TTL, until the queue is closed and empty.
pub(crate) async fn write_behind(
    queue: Arc<WriteQueue>,
    store: Store,
    keys: Arc<FleetKeys>,
    counters: Arc<Counters>,
    l1: Arc<SessionCache>,
) {
    while let Some((number, batch)) = queue.next_batch().await {
        let now = l1.clock.now_nanos();
        let cache_timeout = l1.timeout_nanos();
        let writes: Vec<Write> = batch
            .iter()
            .filter_map(|session| {
                let stamp = session.entry.stamp;
                let left_ms = (stamp.deadline(cache_timeout) - i128::from(now)) / 1_000_000;
                // Expired while queued: not worth writing.
                let ttl_ms = u64::try_from(left_ms).ok().filter(|ms| *ms > 0)?;
                let key = store.key(session.id());
                let sealed = keys.seal(&key, session, stamp.timeout_or(cache_timeout));
                Some(Write {
                    key,
                    sealed,
                    ttl_ms,
                })
            })
            .collect();
        let expired = (batch.len() - writes.len()) as u64;
        add(&counters.writes_dropped, expired);
        if !writes.is_empty() {
            let written = writes.len() as u64;
            match tokio::time::timeout(WRITE_TIMEOUT, store.write(&writes)).await {
                Ok(Ok(())) => add(&counters.writes_written, written),
                Ok(Err(error)) => {
                    add(&counters.writes_dropped, written);
                    counters.redis_trouble("session writes to Redis failed", &error);
                }
                Err(_) => {
                    add(&counters.writes_dropped, written);
                    counters
                        .redis_trouble("session writes to Redis timed out", &"no answer within 1s");
                }
            }
        }
        queue.finish(number);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: u8) -> Session {
        Session::new(vec![id; 32], vec![id; 8])
    }

    #[test]
    fn a_full_queue_drops_new_writes_but_replaces_queued_ones() {
        let queue = WriteQueue::new(2);
        assert!(queue.push(session(1)));
        assert!(queue.push(session(2)));
        assert!(!queue.push(session(3)), "full");
        assert!(queue.push(session(1)), "the same id replaces");
        assert_eq!(queue.len(), 2);
        queue.close();
        assert!(!queue.push(session(4)), "closed");
    }

    #[tokio::test]
    async fn an_unsent_write_is_cancelled_once_and_a_sending_one_is_waited_for() {
        let queue = Arc::new(WriteQueue::new(8));
        queue.push(session(1));
        queue.push(session(2));
        let pending = queue.cancel(&[1; 32]);
        assert_eq!(pending.cancelled.unwrap().value(), &[1; 8]);
        assert_eq!(pending.sending, None);
        let again = queue.cancel(&[1; 32]);
        assert!(
            again.cancelled.is_none() && again.sending.is_none(),
            "only once"
        );
        let (number, batch) = queue.next_batch().await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].id(), &[2; 32]);
        // Queued again while the first write is being sent: the unsent one is
        // cancelled, and the one being sent must still be waited for.
        queue.push(session(2));
        let pending = queue.cancel(&[2; 32]);
        assert!(pending.cancelled.is_some());
        assert_eq!(pending.sending, Some(number));
        let waiter = queue.clone();
        let landed = tokio::spawn(async move { waiter.landed(number).await });
        tokio::task::yield_now().await;
        assert!(!landed.is_finished());
        queue.finish(number);
        landed.await.unwrap();
        assert_eq!(queue.cancel(&[2; 32]).sending, None);
    }

    #[tokio::test]
    async fn the_writer_ends_when_the_queue_is_closed_and_empty() {
        let queue = WriteQueue::new(8);
        queue.push(session(1));
        queue.close();
        assert!(queue.next_batch().await.is_some(), "queued writes still go");
        assert!(queue.next_batch().await.is_none());
    }
}
