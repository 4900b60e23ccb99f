//! Where the fleet's sessions live: Redis, a single node or a Redis Cluster, reached
//! through a few batched commands; how sessions are named there
//! (`PREFIX:hex(context):hex(id)`). The
//! only place that talks to Redis.
//!
//! - reads: `GET` (a TLS 1.2 session, which stays) and `GETDEL` (a TLS 1.3 claim);
//! - writes: `SET key value PX ttl`;
//! - creations (ticket keys): `SET key value NX PX ttl` then `GET key`, so the value
//!   read is the one that won;
//! - removals: `DEL`.
//!
//! Commands go out in *groups*, one pipeline each, on the connection that owns them:
//! - **single node**: one group for a whole batch, on one multiplexed connection, so
//!   Redis runs a batch's commands in order, and after any batch sent before it;
//! - **cluster**: one group per hash slot, all sent at once, each to the master that owns
//!   its slot (the `redis` crate's cluster client routes, follows `MOVED`/`ASK` and
//!   refreshes the topology). A slot with no reachable master fails alone: the other
//!   groups are not held up by it, and its failure is counted by the caller.
//!
//! Reads and claims go to masters. A replica would answer from a copy that lags: a
//! session written a moment ago would miss (a full handshake, harmless), and a ticket
//! claimed a moment ago on the master would still be there, which is why claims are
//! never read from replicas (`GETDEL` is a write, so the cluster client sends it to the
//! master in any case).
//!
//! With `claim_replicas(n)`, each group of claims ends with `WAIT n <deadline>`, on the
//! same connection: a claim counts only once `n` replicas have acknowledged the
//! `GETDEL`, so that a master failing over right after it cannot hand the ticket to a
//! replay through an unreplicated replica. See [`FleetBuilder::claim_replicas`].
//!
//! [`FleetBuilder::claim_replicas`]: super::FleetBuilder::claim_replicas

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Pipeline, RedisResult, Value};

use super::builder::FleetError;

/// A read of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Read {
    /// `GET`: the session stays (TLS 1.2 sessions are multi-use).
    Get(Vec<u8>),
    /// `GETDEL`: the session is removed as it is read (a TLS 1.3 ticket's claim).
    GetDel(Vec<u8>),
}

impl Read {
    fn key(&self) -> &[u8] {
        match self {
            Self::Get(key) | Self::GetDel(key) => key,
        }
    }
}

/// What one [`Read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The sealed session.
    Found(Vec<u8>),
    /// No such key.
    Missing,
    /// A claim that fewer replicas than asked acknowledged in time: it does not count.
    Unreplicated,
    /// The command failed, or its group did.
    Failed,
}

/// What one [`Store::create`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// The key was created with the value given.
    Here,
    /// The key existed already, with this value.
    There(Vec<u8>),
    /// The command failed, or its group did.
    Failed,
}

/// A write of one sealed session, or of one sealed ticket key.
#[derive(Debug)]
pub(crate) struct Write {
    /// The writer's own name for the write (a session's key in L1: its context, then
    /// its id), handed back with the outcome. Not secret.
    pub(crate) tag: Vec<u8>,
    pub(crate) key: Vec<u8>,
    pub(crate) sealed: Vec<u8>,
    /// Its remaining lifetime, in milliseconds: at least 1.
    pub(crate) ttl_ms: u64,
}

impl Write {
    fn key(&self) -> &[u8] {
        &self.key
    }
}

/// Which Redis to use.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// One node.
    Single(String),
    /// A cluster, found through these seed nodes.
    Cluster(Vec<String>),
}

impl Target {
    /// How many nodes it names.
    pub(crate) fn nodes(&self) -> usize {
        match self {
            Self::Single(_) => 1,
            Self::Cluster(seeds) => seeds.len(),
        }
    }
}

/// How the store is connected.
#[derive(Clone)]
enum Topology {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Redis, as the fleet uses it.
#[derive(Clone)]
pub(crate) struct Store {
    topology: Topology,
    prefix: String,
    /// Replicas that must acknowledge a claim (`WAIT`); 0 for none.
    claim_replicas: usize,
}

impl Store {
    /// A store on `target`, connected lazily (Redis need not be up) on the current tokio
    /// runtime, with connects bounded by `connect_timeout`.
    pub(crate) fn open(
        target: &Target,
        prefix: String,
        connect_timeout: Duration,
        claim_replicas: usize,
    ) -> Result<Self, FleetError> {
        let response_timeout = Duration::from_secs(1);
        let topology = match target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(FleetError::redis_url)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_secs(1));
                Topology::Single(
                    client
                        .get_connection_manager_lazy(config)
                        .map_err(FleetError::redis_url)?,
                )
            }
            Target::Cluster(seeds) => {
                let client = ClusterClientBuilder::new(seeds.iter().map(String::as_str))
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(2)
                    .max_retry_wait(200)
                    .build()
                    .map_err(FleetError::redis_url)?;
                Topology::Cluster(
                    client.get_pending_async_connection_with_config(Default::default()),
                )
            }
        };
        Ok(Self {
            topology,
            prefix,
            claim_replicas,
        })
    }

    /// The Redis key for a session id in a resumption context (`None`: the default
    /// one): `prefix:hex(context):hex(id)`. Hex has no `:`, so read from the right a key
    /// names one id, one context and one prefix: no two of any of them share a key, a
    /// context name that is a prefix of another's included.
    pub(crate) fn key(&self, context: Option<&str>, id: &[u8]) -> Vec<u8> {
        let context = context.unwrap_or_default().as_bytes();
        let mut key = Vec::with_capacity(self.prefix.len() + 2 + 2 * context.len() + 2 * id.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.push(b':');
        key.extend_from_slice(hex::encode(context).as_bytes());
        key.push(b':');
        key.extend_from_slice(hex::encode(id).as_bytes());
        key
    }

    /// The Redis key for the ticket key of `epoch` under a rotation period of
    /// `period_ms`: `prefix:ticket-key:PERIOD:EPOCH`. Session keys are hex (or empty)
    /// after the prefix, so the two never meet; fleets with other periods have other names.
    pub(crate) fn ticket_key(&self, period_ms: u64, epoch: u64) -> Vec<u8> {
        format!("{}:ticket-key:{period_ms}:{epoch}", self.prefix).into_bytes()
    }

    /// Runs `reads`; one reply each, in order, and the first error, if a group failed.
    /// Claims wait at most `wait` for replicas.
    pub(crate) async fn read(
        &self,
        reads: &[Read],
        wait: Duration,
    ) -> (Vec<Reply>, Option<redis::RedisError>) {
        self.grouped(
            reads,
            Read::key,
            || Reply::Failed,
            |group| async move { self.read_group(&group, reads, wait).await },
        )
        .await
    }

    /// Creates each of `writes` unless its key exists: `SET key value NX PX ttl`, then
    /// `GET key` in the same pipeline, so the value read is the one that won, whoever
    /// wrote it. One answer each, in order, and the first error, if a group failed.
    pub(crate) async fn create(
        &self,
        writes: &[Write],
    ) -> (Vec<Created>, Option<redis::RedisError>) {
        self.grouped(
            writes,
            Write::key,
            || Created::Failed,
            |group| async move {
                let mut pipe = redis::pipe();
                for write in group.iter().map(|index| &writes[*index]) {
                    pipe.cmd("SET")
                        .arg(&write.key)
                        .arg(&write.sealed)
                        .arg("NX")
                        .arg("PX")
                        .arg(write.ttl_ms);
                    pipe.cmd("GET").arg(&write.key);
                }
                let values = self.query::<Vec<Value>>(&pipe).await?;
                let mut values = values.into_iter();
                Ok(group
                    .iter()
                    .map(|_| match (values.next(), values.next()) {
                        (Some(Value::Okay), Some(Value::BulkString(_))) => Created::Here,
                        (Some(Value::Nil), Some(Value::BulkString(found))) => Created::There(found),
                        _ => Created::Failed,
                    })
                    .collect())
            },
        )
        .await
    }

    /// Runs `run` on each group of `items` at once, and puts each answer back in the
    /// place of its item; `failed()` for the items of a group that failed, with the
    /// first error.
    async fn grouped<T, R, F>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> &[u8],
        failed: impl Fn() -> R,
        run: impl Fn(Vec<usize>) -> F,
    ) -> (Vec<R>, Option<redis::RedisError>)
    where
        F: Future<Output = RedisResult<Vec<R>>>,
    {
        let groups = self.groups(items, key);
        let answers = join_all(groups.iter().map(|group| run(group.clone())));
        let mut replies: Vec<R> = items.iter().map(|_| failed()).collect();
        let mut first_error = None;
        for (group, answer) in groups.iter().zip(answers.await) {
            match answer {
                Ok(answer) => {
                    for (index, reply) in group.iter().zip(answer) {
                        replies[*index] = reply;
                    }
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        (replies, first_error)
    }

    /// One group of reads, `GET`s and `GETDEL`s in one pipeline, with a `WAIT` after
    /// the claims when replicas must acknowledge them.
    async fn read_group(
        &self,
        group: &[usize],
        reads: &[Read],
        wait: Duration,
    ) -> RedisResult<Vec<Reply>> {
        let mut pipe = redis::pipe();
        let mut claims = false;
        for read in group.iter().map(|index| &reads[*index]) {
            match read {
                Read::Get(key) => pipe.cmd("GET").arg(key),
                Read::GetDel(key) => {
                    claims = true;
                    pipe.cmd("GETDEL").arg(key)
                }
            };
        }
        let wait_for = (claims && self.claim_replicas > 0).then_some(self.claim_replicas);
        if let Some(replicas) = wait_for {
            let timeout_ms = wait.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
            pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        }
        let mut values = self.query::<Vec<Value>>(&pipe).await?;
        let replicated = match wait_for {
            Some(replicas) => match values.pop() {
                Some(Value::Int(acked)) => usize::try_from(acked).unwrap_or(0) >= replicas,
                _ => false,
            },
            None => true,
        };
        Ok(group
            .iter()
            .zip(values)
            .map(|(index, value)| match (value, &reads[*index]) {
                (Value::Nil, _) => Reply::Missing,
                (Value::BulkString(_), Read::GetDel(_)) if !replicated => Reply::Unreplicated,
                (Value::BulkString(sealed), _) => Reply::Found(sealed),
                _ => Reply::Failed,
            })
            .collect())
    }

    /// `writes` in the groups they are sent in: all together on a single node, one group
    /// per hash slot on a cluster.
    pub(crate) fn write_groups(&self, writes: Vec<Write>) -> Vec<Vec<Write>> {
        let groups = self.groups(&writes, Write::key);
        let mut writes: Vec<Option<Write>> = writes.into_iter().map(Some).collect();
        groups
            .into_iter()
            .map(|group| group.into_iter().filter_map(|i| writes[i].take()).collect())
            .collect()
    }

    /// Sends one group of writes, in one pipeline.
    pub(crate) async fn write(&self, group: &[Write]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for write in group {
            pipe.cmd("SET")
                .arg(&write.key)
                .arg(&write.sealed)
                .arg("PX")
                .arg(write.ttl_ms)
                .ignore();
        }
        self.query(&pipe).await
    }

    /// Connects now rather than on the first lookup (which would likely miss its
    /// deadline); the answer does not matter.
    pub(crate) async fn warm_up(&self) {
        let mut pipe = redis::pipe();
        pipe.cmd("PING");
        let _ = self.query::<Value>(&pipe).await;
    }

    /// Deletes `key`; whether there was one.
    pub(crate) async fn delete(&self, key: &[u8]) -> RedisResult<bool> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(key);
        let (removed,): (u64,) = self.query(&pipe).await?;
        Ok(removed > 0)
    }

    /// The indexes of `items` by the group they go out in.
    fn groups<T>(&self, items: &[T], key: impl Fn(&T) -> &[u8]) -> Vec<Vec<usize>> {
        match self.topology {
            Topology::Single(_) => vec![(0..items.len()).collect()],
            Topology::Cluster(_) => {
                let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
                for (index, item) in items.iter().enumerate() {
                    by_slot
                        .entry(Slot::for_key(key(item)))
                        .or_default()
                        .push(index);
                }
                by_slot.into_values().collect()
            }
        }
    }

    async fn query<T: redis::FromRedisValue>(&self, pipe: &Pipeline) -> RedisResult<T> {
        match &self.topology {
            Topology::Single(conn) => run(pipe, conn.clone()).await,
            Topology::Cluster(conn) => run(pipe, conn.clone()).await,
        }
    }
}

async fn run<T: redis::FromRedisValue>(
    pipe: &Pipeline,
    mut conn: impl ConnectionLike,
) -> RedisResult<T> {
    pipe.query_async(&mut conn).await
}
