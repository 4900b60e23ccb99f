//! Where the fleet's sessions live: Redis, reached through a few batched commands. How
//! sessions are named there (`PREFIX:hex(id)`), and the only place that talks to Redis.
//!
//! - reads: `GET` (a TLS 1.2 session, which stays) and `GETDEL` (a TLS 1.3 claim);
//! - writes: `SET key value PX ttl`, a batch at a time;
//! - removals: `DEL`.
//!
//! A batch goes out as one pipeline on one connection, so Redis runs its commands in
//! order, and after any batch sent before it on that connection.

use std::time::Duration;

use redis::RedisResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::builder::FleetError;

/// A read of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Read {
    /// `GET`: the session stays (TLS 1.2 sessions are multi-use).
    Get(Vec<u8>),
    /// `GETDEL`: the session is removed as it is read (a TLS 1.3 ticket's claim).
    GetDel(Vec<u8>),
}

/// A write of one sealed session.
#[derive(Debug)]
pub(crate) struct Write {
    pub(crate) key: Vec<u8>,
    pub(crate) sealed: Vec<u8>,
    /// Its remaining lifetime, in milliseconds: at least 1.
    pub(crate) ttl_ms: u64,
}

/// Redis, as the fleet uses it.
#[derive(Clone)]
pub(crate) struct Store {
    conn: ConnectionManager,
    prefix: String,
}

impl Store {
    /// A store on the Redis at `url`, connected lazily (Redis need not be up) on the
    /// current tokio runtime, with connects bounded by `connect_timeout`.
    pub(crate) fn open(
        url: &str,
        prefix: String,
        connect_timeout: Duration,
    ) -> Result<Self, FleetError> {
        let client = redis::Client::open(url).map_err(FleetError::redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(FleetError::redis_url)?;
        Ok(Self { conn, prefix })
    }

    /// The Redis key for a session id: `prefix:hex(id)`. Hex has no `:`, so no two
    /// prefixes can name the same key.
    pub(crate) fn key(&self, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + 2 * id.len());
        key.extend_from_slice(self.prefix.as_bytes());
        key.push(b':');
        key.extend_from_slice(hex::encode(id).as_bytes());
        key
    }

    /// Runs `reads` in one pipeline; one reply each, in order.
    pub(crate) async fn read(&self, reads: &[Read]) -> RedisResult<Vec<Option<Vec<u8>>>> {
        let mut pipe = redis::pipe();
        for read in reads {
            match read {
                Read::Get(key) => pipe.cmd("GET").arg(key),
                Read::GetDel(key) => pipe.cmd("GETDEL").arg(key),
            };
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Runs `writes` in one pipeline.
    pub(crate) async fn write(&self, writes: &[Write]) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        for write in writes {
            pipe.cmd("SET")
                .arg(&write.key)
                .arg(&write.sealed)
                .arg("PX")
                .arg(write.ttl_ms)
                .ignore();
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Deletes `key`; whether there was one.
    pub(crate) async fn delete(&self, key: &[u8]) -> RedisResult<bool> {
        let removed: u64 = redis::cmd("DEL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(removed > 0)
    }
}
