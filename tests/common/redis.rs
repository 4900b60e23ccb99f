//! A real `redis-server` for the tests, on a free loopback port, stopped when dropped.
//! No mocks: the fleet tier is tested against what users run.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

impl Redis {
    /// Starts a `redis-server` with no persistence on a free port.
    pub fn start() -> Self {
        let port = free_port();
        let mut redis = Self { child: None, port };
        redis.restart();
        redis
    }

    /// A port nothing listens on, for a Redis that is down from the start.
    pub fn absent() -> Self {
        Self {
            child: None,
            port: free_port(),
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again, on the same port (or for the first time).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install the Debian package `redis-server` \
                     (apt-get install redis-server); .ci/run does this"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.command("PING") != "+PONG\r\n" {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it; its port stays reserved for [`Redis::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one inline command and returns the raw reply ("" if nobody answers).
    pub fn command(&self, text: &str) -> String {
        command(self.port, text)
    }

    /// Every value stored, raw (for scanning at-rest bytes).
    pub fn all_values(&self) -> Vec<(String, Vec<u8>)> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_connection().unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
        keys.into_iter()
            .map(|key| {
                let value: Vec<u8> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
                (key, value)
            })
            .collect()
    }

    /// How many times `command` has run since the last `CONFIG RESETSTAT`.
    pub fn calls(&self, command: &str) -> u64 {
        let stats = self.command("INFO commandstats");
        let needle = format!("cmdstat_{command}:calls=");
        stats
            .split(&needle)
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn complete(reply: &[u8]) -> bool {
    match reply.first() {
        Some(b'$') => {
            let Some(end) = reply.windows(2).position(|w| w == b"\r\n") else {
                return false;
            };
            let len: usize = std::str::from_utf8(&reply[1..end])
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            reply.len() >= end + 2 + len + 2
        }
        _ => reply.ends_with(b"\r\n"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real Redis Cluster for the tests: six `redis-server --cluster-enabled yes` on free
/// loopback ports, three masters with a replica each, joined by `redis-cli --cluster
/// create`. Fast failover (`cluster-node-timeout` 1 s); the cluster serves the slots it
/// can while some have no master (`cluster-require-full-coverage no`). Stopped when
/// dropped.
pub struct Cluster {
    nodes: Vec<(u16, Option<Child>)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for port in cluster_ports(6) {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-require-full-coverage", "no"])
                .args(["--enable-debug-command", "yes"])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start redis-server: apt-get install redis-server");
            nodes.push((port, Some(child)));
        }
        let cluster = Self { nodes, _dir: dir };
        for (port, _) in &cluster.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while command(*port, "PING") != "+PONG\r\n" {
                assert!(Instant::now() < deadline, "a cluster node did not come up");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("cannot run redis-cli (it comes with redis-server)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        // Replicas can take over only once they have synced with their master.
        cluster.wait_until(|c| c.masters().len() == 3 && c.all_ok() && c.replicas_synced() == 3);
        cluster
    }

    /// How many live replicas report their link to their master up.
    pub fn replicas_synced(&self) -> usize {
        self.live()
            .filter(|port| command(*port, "INFO replication").contains("master_link_status:up"))
            .count()
    }

    /// `redis://` URLs of every node, in the order started.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(port, _)| format!("redis://127.0.0.1:{port}"))
            .collect()
    }

    /// The ports of the nodes that are masters and up, as the live nodes see it.
    pub fn masters(&self) -> Vec<u16> {
        self.node_lines()
            .into_iter()
            .filter(|l| l.flags.contains("master") && !l.flags.contains("fail"))
            .map(|l| l.port)
            .collect()
    }

    /// The port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let reply = command(self.any_live(), &format!("CLUSTER KEYSLOT {key}"));
        let slot: u16 = reply.trim_start_matches(':').trim().parse().unwrap();
        self.node_lines()
            .into_iter()
            .find(|l| {
                l.flags.contains("master")
                    && !l.flags.contains("fail")
                    && l.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .map(|l| l.port)
            .expect("a master for the slot")
    }

    /// The port of `master`'s replica.
    pub fn replica_of(&self, master: u16) -> u16 {
        let lines = self.node_lines();
        let id = lines.iter().find(|l| l.port == master).unwrap().id.clone();
        lines
            .iter()
            .find(|l| l.master_id == id)
            .map(|l| l.port)
            .expect("a replica")
    }

    /// Kills the node on `port` (SIGKILL: no goodbye to the others).
    pub fn kill(&mut self, port: u16) {
        let (_, child) = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        if let Some(mut child) = child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `command` to the node on `port`; the raw reply.
    pub fn command(&self, port: u16, text: &str) -> String {
        command(port, text)
    }

    /// How many keys the node on `port` holds.
    pub fn keys_on(&self, port: u16) -> u64 {
        command(port, "DBSIZE")
            .trim_start_matches(':')
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Waits (up to 20 s) until `done` holds.
    pub fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "the cluster never got there");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every live node says `cluster_state:ok`.
    pub fn all_ok(&self) -> bool {
        self.live()
            .all(|port| command(port, "CLUSTER INFO").contains("cluster_state:ok"))
    }

    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
    }

    fn any_live(&self) -> u16 {
        self.live().next().unwrap()
    }

    fn node_lines(&self) -> Vec<NodeLine> {
        command(self.any_live(), "CLUSTER NODES")
            .lines()
            .filter_map(NodeLine::parse)
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// One line of `CLUSTER NODES`.
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    master_id: String,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
        let slots = fields
            .get(8..)
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| {
                let mut ends = s.split('-').map(|n| n.parse::<u16>());
                let start = ends.next()?.ok()?;
                let end = ends.next().map_or(Ok(start), |e| e).ok()?;
                Some((start, end))
            })
            .collect();
        Some(Self {
            id: fields.first()?.to_string(),
            port,
            flags: fields.get(2)?.to_string(),
            master_id: fields.get(3)?.to_string(),
            slots,
        })
    }
}

/// `n` free loopback ports, each with its cluster bus port (+10000) free too: Redis
/// refuses ports over 55535 for that reason.
fn cluster_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut held = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bus = port.checked_add(10_000).filter(|_| port <= 55_535);
        if let Some(bus) = bus
            && let Ok(bus_listener) = TcpListener::bind(("127.0.0.1", bus))
        {
            ports.push(port);
            held.push((listener, bus_listener));
        }
    }
    ports
}

/// Sends one inline command to the Redis on `port`; the raw reply ("" if nobody answers).
pub fn command_on(port: u16, text: &str) -> String {
    command(port, text)
}

fn command(port: u16, command: &str) -> String {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    if conn.write_all(format!("{command}\r\n").as_bytes()).is_err() {
        return String::new();
    }
    let mut reply = vec![0; 1 << 20];
    let mut len = 0;
    // Read until the reply is whole: simple replies end with a line; bulk replies
    // announce their length.
    while let Ok(n @ 1..) = conn.read(&mut reply[len..]) {
        len += n;
        if complete(&reply[..len]) {
            break;
        }
    }
    String::from_utf8_lossy(&reply[..len]).into_owned()
}
