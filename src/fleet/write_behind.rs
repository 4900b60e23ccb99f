//! Write-behind: new sessions reach Redis from a queue, never from the handshake.
//!
//! `put` (and `Fleet::add_session`) only queue a session; one task takes batches off the
//! queue, seals them and writes them with their remaining lifetime as the TTL, a few
//! batches at a time. A full queue drops the newest write (counted): nothing waits for
//! Redis in `put`. On a cluster a batch goes out as one pipeline per hash slot, so a slot
//! without a master holds up its own writes only.
//!
//! The queue is also what makes local claims possible. A ticket still *unsent* is known
//! to no other server, so the acceptor can claim it by [`cancel`](WriteQueue::cancel)ing
//! its write: it then never reaches Redis, and resumes once, here. A ticket whose write
//! is being *sent* cannot be cancelled; the acceptor waits for that write to land or
//! fail ([`landed`](WriteQueue::landed)) before it claims the ticket with `GETDEL`, so
//! the `SET` is always ahead of the `GETDEL` in Redis, whichever connection carries
//! them. A session is never in two writes being sent at once, so writes of the same id
//! land in the order they were queued.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;
use parking_lot::Mutex;
use tokio::sync::{Notify, Semaphore, watch};

use super::codec::FleetKeys;
use super::stats::Counters;
use super::store::{Store, Write};
use crate::cache::SessionCache;
use crate::session::{Entry, Id, Session};
use crate::stats::add;

/// The most queued writes taken in one batch.
const WRITE_BATCH: usize = 64;

/// The most batches being written at once.
const BATCHES_IN_FLIGHT: usize = 4;

/// How long one pipeline of writes may take before its writes count as dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The writes waiting to be sent, and the ones being sent.
pub(crate) struct WriteQueue {
    state: Mutex<State>,
    /// Wakes the writer when a write is queued, or the queue is closed.
    wake: Notify,
    /// Bumped whenever writes finish (land in Redis, or fail): waiters look again.
    finished: watch::Sender<u64>,
}

struct State {
    /// Unsent writes, oldest first.
    unsent: LruCache<Id, Entry>,
    capacity: usize,
    /// The ids of the writes being sent now.
    sending: HashSet<Id>,
    closed: bool,
}

/// Where a session's writes are, once [`WriteQueue::cancel`] has cancelled the unsent
/// one.
#[derive(Default)]
pub(crate) struct Pending {
    /// The write not yet sent, now cancelled: it never will be.
    pub(crate) cancelled: Option<Session>,
    /// Whether a write of this id is being sent: wait for [`WriteQueue::landed`] before
    /// reading the id from Redis.
    pub(crate) sending: bool,
}

impl WriteQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                unsent: LruCache::unbounded(),
                capacity,
                sending: HashSet::new(),
                closed: false,
            }),
            wake: Notify::new(),
            finished: watch::Sender::new(0),
        }
    }

    /// Queues `session` to be written. `false` if the queue is full (or closed): the
    /// write is dropped. A session already queued under the same id is replaced.
    pub(crate) fn push(&self, session: Session) -> bool {
        let Session { id, entry, .. } = session;
        let displaced = {
            let mut state = self.state.lock();
            if state.closed
                || (state.unsent.len() >= state.capacity && !state.unsent.contains(id.key()))
            {
                return false;
            }
            state.unsent.push(id, entry)
        };
        drop(displaced); // wiped, outside the lock
        self.wake.notify_one();
        true
    }

    /// Cancels the write of the session keyed `id` (its context, then its id, as L1
    /// keys it) that has not been sent, if any, and tells whether one is being sent; see
    /// [`Pending`].
    pub(crate) fn cancel(&self, id: &[u8]) -> Pending {
        let mut state = self.state.lock();
        let cancelled = state.unsent.pop_entry(id).map(|(id, entry)| Session {
            id,
            entry,
            context: None,
        });
        let sending = state.sending.contains(id);
        Pending { cancelled, sending }
    }

    /// Waits until no write of the session keyed `id` is being sent: it landed in Redis,
    /// or failed.
    pub(crate) async fn landed(&self, id: &[u8]) {
        let mut finished = self.finished.subscribe();
        while self.state.lock().sending.contains(id) {
            // The sender lives as long as `self`: this cannot fail while we wait.
            if finished.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stops taking writes. Those queued are still written.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().unsent.len()
    }

    /// The next batch to send, oldest first; `None` once the queue is closed and empty.
    /// A session whose earlier write is still being sent waits for the next batch.
    async fn next_batch(&self) -> Option<Vec<Session>> {
        loop {
            {
                let mut state = self.state.lock();
                let ready: Vec<Id> = state
                    .unsent
                    .iter()
                    .rev()
                    .map(|(id, _)| id)
                    .filter(|id| !state.sending.contains(id.key()))
                    .take(WRITE_BATCH)
                    .cloned()
                    .collect();
                if !ready.is_empty() {
                    let mut batch = Vec::with_capacity(ready.len());
                    for id in ready {
                        if let Some((id, entry)) = state.unsent.pop_entry(id.key()) {
                            state.sending.insert(id.clone());
                            batch.push(Session {
                                id,
                                entry,
                                context: None,
                            });
                        }
                    }
                    return Some(batch);
                }
                if state.closed && state.unsent.is_empty() {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }

    /// These writes have landed or failed: they are no longer being sent.
    fn finish(&self, ids: impl IntoIterator<Item = Vec<u8>>) {
        {
            let mut state = self.state.lock();
            for id in ids {
                state.sending.remove(id.as_slice());
            }
        }
        self.finished.send_modify(|n| *n = n.wrapping_add(1));
        // A write held back behind one of these may go now.
        self.wake.notify_one();
    }
}

/// What the writer needs.
pub(crate) struct Writer {
    pub(crate) queue: Arc<WriteQueue>,
    pub(crate) store: Store,
    pub(crate) keys: Arc<FleetKeys>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) l1: Arc<SessionCache>,
}

/// The writer: takes batches off the queue, seals them, and writes them to Redis with
/// their remaining lifetime as the TTL, until the queue is closed and empty.
pub(crate) async fn write_behind(writer: Writer) {
    let writer = Arc::new(writer);
    let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(batch) = writer.queue.next_batch().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return; // never closed
        };
        let writer = writer.clone();
        tokio::spawn(async move {
            writer.write(batch).await;
            drop(permit);
        });
    }
}

impl Writer {
    async fn write(&self, batch: Vec<Session>) {
        let (counters, store) = (&self.counters, &self.store);
        let now = self.l1.clock.now_nanos();
        let cache_timeout = self.l1.timeout_nanos();
        let keys: Vec<Vec<u8>> = batch.iter().map(|s| s.id.key().to_vec()).collect();
        let mut writes = Vec::with_capacity(batch.len());
        for (session, tag) in batch.iter().zip(&keys) {
            let stamp = session.entry.stamp;
            let left_ms = (stamp.deadline(cache_timeout) - i128::from(now)) / 1_000_000;
            // Expired while queued: not worth writing.
            let Some(ttl_ms) = u64::try_from(left_ms).ok().filter(|ms| *ms > 0) else {
                add(&counters.writes_dropped, 1);
                continue;
            };
            let context = self.l1.contexts.name(session.id.context());
            let key = store.key(context.as_deref(), session.id());
            let sealed = self
                .keys
                .seal(&key, session, stamp.timeout_or(cache_timeout));
            writes.push(Write {
                tag: tag.clone(),
                key,
                sealed,
                ttl_ms,
            });
        }
        drop(batch); // the plaintexts, wiped
        let groups = store.write_groups(writes);
        let sends = groups.iter().map(|group| async move {
            let written = group.len() as u64;
            match tokio::time::timeout(WRITE_TIMEOUT, store.write(group)).await {
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
            // Each group's ids are done as soon as it is: waiters on other slots are
            // not held up by this one.
            self.queue
                .finish(group.iter().map(|write| write.tag.clone()));
        });
        futures_util::future::join_all(sends).await;
        // The expired ones are done too.
        self.queue.finish(keys);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the queue keys `session(id)`: the default context, then the id.
    fn key(id: u8) -> Vec<u8> {
        let mut key = vec![0];
        key.extend([id; 32]);
        key
    }

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
        let pending = queue.cancel(&key(1));
        assert_eq!(pending.cancelled.unwrap().value(), &[1; 8]);
        assert!(!pending.sending);
        let again = queue.cancel(&key(1));
        assert!(again.cancelled.is_none() && !again.sending, "only once");
        let batch = queue.next_batch().await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].id(), &[2; 32]);
        // Queued again while the first write is being sent: the unsent one is
        // cancelled, and the one being sent must still be waited for.
        queue.push(session(2));
        let pending = queue.cancel(&key(2));
        assert!(pending.cancelled.is_some());
        assert!(pending.sending);
        let waiter = queue.clone();
        let landed = tokio::spawn(async move { waiter.landed(&key(2)).await });
        tokio::task::yield_now().await;
        assert!(!landed.is_finished());
        queue.finish([key(9)]); // another write finishing changes nothing
        tokio::task::yield_now().await;
        assert!(!landed.is_finished());
        queue.finish([key(2)]);
        landed.await.unwrap();
        assert!(!queue.cancel(&key(2)).sending);
    }

    #[tokio::test]
    async fn a_session_being_sent_is_not_sent_again_until_it_lands() {
        let queue = WriteQueue::new(8);
        queue.push(session(1));
        let first = queue.next_batch().await.unwrap();
        assert_eq!(first.len(), 1);
        queue.push(session(1)); // written again while the first write is out
        queue.push(session(2));
        let second = queue.next_batch().await.unwrap();
        let ids: Vec<&[u8]> = second.iter().map(Session::id).collect();
        assert_eq!(ids, [&[2; 32][..]], "the second write of 1 waits");
        queue.finish([key(1)]);
        let third = queue.next_batch().await.unwrap();
        assert_eq!(third[0].id(), &[1; 32]);
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
