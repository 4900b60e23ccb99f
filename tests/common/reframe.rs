//! Reframing a client's ClientHello on its way to a server, in each legal way: split into
//! several records, behind warning alerts rustls tolerates, in another record version,
//! or dribbled slowly over many segments. A proxy does it to real clients' hellos; the
//! same framings replay a recorded hello raw, as an attacker replaying 0-RTT would.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::hello::{Answer, answer};

/// How a ClientHello record is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// As it came: one record, one write.
    Whole,
    /// Its handshake message split over this many records.
    Records(usize),
    /// Behind this many warning alerts (`user_canceled`).
    AlertsFirst(usize),
    /// In a record with this version instead (rustls takes any `0x03XX`, and a few more).
    RecordVersion(u16),
    /// Split over this many writes, with this pause before each after the first.
    Dribble(usize, Duration),
}

/// Every framing the tests try, slow ones included.
pub const FRAMINGS: [Framing; 7] = [
    Framing::Whole,
    Framing::Records(2),
    Framing::Records(7),
    Framing::AlertsFirst(1),
    Framing::AlertsFirst(4),
    Framing::RecordVersion(0x0300),
    Framing::Dribble(4, Duration::from_millis(150)),
];

const WARNING_ALERT: [u8; 7] = [21, 3, 3, 0, 2, 1, 90];

impl Framing {
    /// `record` (one whole handshake record) framed this way: the writes to make, each
    /// with the pause before it.
    pub fn apply(self, record: &[u8]) -> Vec<(Duration, Vec<u8>)> {
        let (header, message) = record.split_at(5);
        let reheader = |version: [u8; 2], payload: &[u8]| {
            let mut out = vec![header[0], version[0], version[1]];
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            out.extend_from_slice(payload);
            out
        };
        let version = [header[1], header[2]];
        let now = |bytes| vec![(Duration::ZERO, bytes)];
        match self {
            Self::Whole => now(record.to_vec()),
            Self::Records(n) => {
                let size = message.len().div_ceil(n);
                now(message
                    .chunks(size)
                    .flat_map(|part| reheader(version, part))
                    .collect())
            }
            Self::AlertsFirst(n) => {
                let mut bytes = WARNING_ALERT.repeat(n);
                bytes.extend_from_slice(record);
                now(bytes)
            }
            Self::RecordVersion(v) => now(reheader(v.to_be_bytes(), message)),
            Self::Dribble(n, gap) => {
                let size = record.len().div_ceil(n);
                record
                    .chunks(size)
                    .enumerate()
                    .map(|(i, part)| (if i == 0 { Duration::ZERO } else { gap }, part.to_vec()))
                    .collect()
            }
        }
    }
}

/// Writes `record` to `stream` framed as `framing` says.
pub async fn send_framed(stream: &mut TcpStream, framing: Framing, record: &[u8]) {
    for (pause, bytes) in framing.apply(record) {
        tokio::time::sleep(pause).await;
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// Reads one whole TLS record from `stream`.
pub async fn read_record(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut record = vec![0; 5];
    stream.read_exact(&mut record).await?;
    let len = usize::from(u16::from_be_bytes([record[3], record[4]]));
    record.resize(5 + len, 0);
    stream.read_exact(&mut record[5..]).await?;
    Ok(record)
}

/// A proxy to `target` that reframes each client's first record (its ClientHello) and
/// passes everything else through. It keeps the last ClientHello as the client sent it.
pub struct Proxy {
    pub addr: SocketAddr,
    pub last_hello: Arc<Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr, framing: Framing) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let last_hello = Arc::new(Mutex::new(None));
        let kept = last_hello.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = server.set_nodelay(true);
                    let Ok(hello) = read_record(&mut client).await else {
                        return;
                    };
                    *kept.lock().unwrap() = Some(hello.clone());
                    send_framed(&mut server, framing, &hello).await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self {
            addr,
            last_hello,
            task,
        }
    }

    /// The last ClientHello a client sent through this proxy, unframed.
    pub fn last_hello(&self) -> Vec<u8> {
        self.last_hello
            .lock()
            .unwrap()
            .clone()
            .expect("a client came through")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `hello` raw to `target`, framed as `framing` says, and reads how the server
/// answers, as a client replaying a recorded ClientHello would. Gives up after 5 s.
pub async fn replay(target: SocketAddr, framing: Framing, hello: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(target).await.unwrap();
    let _ = stream.set_nodelay(true);
    send_framed(&mut stream, framing, hello).await;
    match tokio::time::timeout(Duration::from_secs(5), read_record(&mut stream)).await {
        Ok(Ok(record)) => answer(&record),
        _ => Answer::NoServerHello,
    }
}
