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
    pub fn command(&self, command: &str) -> String {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
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
