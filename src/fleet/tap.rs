//! [`HelloTap`]: the stream the acceptor hands rustls. Until the ClientHello is in, it
//! keeps a copy of every byte rustls reads, so the acceptor can read the session id and
//! the PSK identities from exactly those bytes; after that it only passes bytes through.
//!
//! It also drops the warning alerts a client may send before its ClientHello.
//! `rustls::ServerConnection` ignores up to four of them, but `rustls::server::Acceptor`
//! (which the acceptor reads the hello with) stops at the first: dropping them here makes
//! the acceptor take exactly the connections `tokio_rustls::TlsAcceptor` takes.
//!
//! Memory is bounded: a few kilobytes past [`MAX_CLIENT_HELLO`] at most, and nothing at
//! all once the hello has been handed over. A stalled client costs nothing but its
//! buffer: reads wait on the socket, with no timer and no polling.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Prepared;
use super::client_hello::{MAX_CLIENT_HELLO, known_record_version};

/// The most bytes kept while waiting for a ClientHello: the largest hello read, with
/// room for the headers of the records it may come in. Past this, nothing more is kept,
/// and the hello, whole or not, is not followed: its handshake is full.
const MAX_RECORDED: usize = MAX_CLIENT_HELLO + 4 * 1024;

/// How much is read from the socket at a time while recording.
const READ_CHUNK: usize = 2048;

/// How many warning alerts before the ClientHello are dropped, as many as rustls's
/// `ServerConnection` tolerates.
const MAX_WARNING_ALERTS: u8 = 4;

/// The stream under a TLS connection accepted through the fleet: `IO`, with a copy of the
/// ClientHello kept until it has been read. Once the handshake has started, a plain
/// pass-through.
///
/// Reach the underlying stream with [`get_ref`](Self::get_ref), and see what the fleet
/// did before the handshake with [`prepared`](Self::prepared).
#[derive(Debug)]
pub struct HelloTap<IO> {
    io: IO,
    recording: Option<Box<Recording>>,
    prepared: Prepared,
}

impl<IO> HelloTap<IO> {
    pub(crate) fn new(io: IO) -> Self {
        Self {
            io,
            recording: Some(Box::new(Recording {
                prelude: Some(0),
                ..Recording::default()
            })),
            prepared: Prepared::default(),
        }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The underlying stream. Reading from it directly skips bytes this tap may still
    /// hold for rustls.
    pub fn get_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// What the fleet fetched and claimed for this connection before its handshake.
    pub fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The bytes rustls has been given so far, if they were all kept.
    pub(crate) fn recorded(&self) -> Option<&[u8]> {
        let recording = self.recording.as_deref()?;
        (!recording.overflowed).then(|| recording.kept())
    }

    /// The hello has been read: keep nothing more, and free the copy once rustls has
    /// been given every byte read so far.
    pub(crate) fn hello_read(&mut self, prepared: Prepared) {
        self.prepared = prepared;
        if let Some(recording) = &mut self.recording {
            recording.done = true;
            if recording.undelivered().is_empty() {
                self.recording = None;
            }
        }
    }
}

/// What the tap holds until the hello has been handed over.
#[derive(Debug, Default)]
struct Recording {
    /// Every byte read from the socket, up to [`MAX_RECORDED`] (and one read beyond).
    bytes: Vec<u8>,
    /// Where the bytes for rustls start: warning alerts before that were dropped.
    start: usize,
    /// How many bytes after `start` rustls has been given.
    delivered: usize,
    /// Warning alerts dropped so far; `None` once the first record is known not to be one.
    prelude: Option<u8>,
    /// `bytes` reached [`MAX_RECORDED`]: the recording is incomplete, and no more is kept.
    overflowed: bool,
    /// The hello has been read: no more is kept.
    done: bool,
}

impl Recording {
    /// The bytes kept for rustls, delivered or not.
    fn kept(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    /// Bytes kept but not yet given to rustls. Empty while the first record could still
    /// be a warning alert to drop.
    fn undelivered(&self) -> &[u8] {
        if self.prelude.is_some() {
            return &[];
        }
        self.kept().get(self.delivered..).unwrap_or_default()
    }

    /// Whether reads from now on bypass the recording.
    fn bypassed(&self) -> bool {
        self.done || self.overflowed
    }

    /// Drops whole warning alerts at the start, and decides, as soon as it can, whether
    /// the first record after them is another.
    fn skip_warning_alerts(&mut self) {
        while let Some(dropped) = self.prelude {
            match first_record(self.kept()) {
                First::Unknown => return,
                First::WarningAlert if dropped < MAX_WARNING_ALERTS => {
                    tracing::debug!(
                        "a warning alert before the ClientHello dropped, as rustls would"
                    );
                    self.start += ALERT_RECORD_LEN;
                    self.prelude = Some(dropped + 1);
                }
                First::WarningAlert | First::Other => self.prelude = None,
            }
        }
    }

    /// The peer closed: whatever is held goes to rustls as it is.
    fn end_of_stream(&mut self) {
        self.prelude = None;
    }
}

/// A whole alert record: a 5-byte header and a 2-byte payload.
const ALERT_RECORD_LEN: usize = 7;

/// What the first record of some bytes is, as far as they tell.
enum First {
    /// Too few bytes to say.
    Unknown,
    /// A well-formed warning alert, which rustls's `ServerConnection` ignores.
    WarningAlert,
    /// Anything else: rustls's to judge.
    Other,
}

fn first_record(bytes: &[u8]) -> First {
    let alert = 21;
    match bytes {
        [] => First::Unknown,
        [kind, ..] if *kind != alert => First::Other,
        [_, a, b, ..] if !known_record_version(u16::from_be_bytes([*a, *b])) => First::Other,
        [_, _, _, 0, 2, 1, _, ..] => First::WarningAlert,
        [_, _, _, 0, 2, _, _, ..] => First::Other, // fatal, or an unknown level
        [_, _, _, 0, 2, ..] | [_, _, _, 0] | [_, _, _] | [_, _] | [_] => First::Unknown,
        _ => First::Other, // an alert of another length
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for HelloTap<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let Some(recording) = this.recording.as_deref_mut() else {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            };
            let ready = recording.undelivered();
            if !ready.is_empty() {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                recording.delivered += n;
                if recording.done && recording.undelivered().is_empty() {
                    this.recording = None;
                }
                return Poll::Ready(Ok(()));
            }
            if recording.bypassed() && recording.prelude.is_none() {
                // Everything kept has been delivered: read straight into rustls's buffer.
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            let mut chunk = [0; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
            let got = read.filled();
            if got.is_empty() {
                recording.end_of_stream();
                if recording.undelivered().is_empty() {
                    return Poll::Ready(Ok(())); // end of stream
                }
                continue;
            }
            recording.bytes.extend_from_slice(got);
            recording.overflowed |= recording.bytes.len() >= MAX_RECORDED;
            recording.skip_warning_alerts();
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for HelloTap<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    const ALERT: [u8; 7] = [21, 3, 3, 0, 2, 1, 90];
    const HELLO_START: [u8; 6] = [22, 3, 1, 0, 40, 1];

    async fn read_through(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut builder = tokio_test_io(chunks);
        let mut tap = HelloTap::new(&mut builder);
        let mut out = Vec::new();
        tap.read_to_end(&mut out).await.unwrap();
        let kept = tap
            .recording
            .as_deref()
            .map(|r| r.kept().to_vec())
            .unwrap_or_default();
        (out, kept)
    }

    /// A reader that yields `chunks` one read at a time.
    fn tokio_test_io(chunks: &[&[u8]]) -> impl AsyncRead + Unpin + use<> {
        let mut builder = tokio::io::duplex(64 * 1024);
        let data: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in data {
                builder.0.write_all(&chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        builder.1
    }

    #[tokio::test]
    async fn passes_a_hello_through_and_keeps_a_copy() {
        let (out, kept) = read_through(&[&HELLO_START, b"rest"]).await;
        assert_eq!(out, [&HELLO_START[..], b"rest"].concat());
        assert_eq!(kept, out);
    }

    #[tokio::test]
    async fn drops_up_to_four_warning_alerts_split_anywhere() {
        let mut stream: Vec<u8> = ALERT.repeat(3);
        stream.extend_from_slice(&HELLO_START);
        // Byte by byte: every decision is made with as little as can be known.
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, kept) = read_through(&chunks).await;
        assert_eq!(out, HELLO_START);
        assert_eq!(kept, HELLO_START);

        let mut five = ALERT.repeat(5);
        five.extend_from_slice(&HELLO_START);
        let (out, _) = read_through(&[&five]).await;
        assert_eq!(
            out,
            [&ALERT[..], &HELLO_START].concat(),
            "the fifth is rustls's"
        );
    }

    #[tokio::test]
    async fn keeps_fatal_alerts_and_other_records_for_rustls() {
        let fatal = [21, 3, 3, 0, 2, 2, 40];
        let (out, _) = read_through(&[&fatal, &HELLO_START]).await;
        assert_eq!(out, [&fatal[..], &HELLO_START].concat());
        let long_alert = [21, 3, 3, 0, 3, 1, 0, 0];
        let (out, _) = read_through(&[&long_alert]).await;
        assert_eq!(out, long_alert);
        let (out, _) = read_through(&[b"GET / HTTP/1.1\r\n"]).await;
        assert_eq!(out, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_partial_alert_at_the_end_of_the_stream_is_delivered() {
        let (out, _) = read_through(&[&ALERT[..4]]).await;
        assert_eq!(out, &ALERT[..4]);
    }

    #[tokio::test]
    async fn stops_keeping_past_the_limit_but_passes_everything() {
        let big = vec![22; MAX_RECORDED + 5000];
        let mut source = tokio_test_io(&[&big]);
        let mut tap = HelloTap::new(&mut source);
        let mut out = Vec::new();
        tap.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, big);
        assert_eq!(tap.recorded(), None, "an incomplete copy is never used");
        let kept = tap.recording.as_deref().unwrap().bytes.len();
        assert!(kept < MAX_RECORDED + READ_CHUNK, "{kept}");
    }

    #[tokio::test]
    async fn frees_the_copy_once_the_hello_is_read_and_delivered() {
        let mut source = tokio_test_io(&[&HELLO_START, b"after"]);
        let mut tap = HelloTap::new(&mut source);
        let mut first = [0; 6];
        tap.read_exact(&mut first).await.unwrap();
        assert_eq!(tap.recorded(), Some(&HELLO_START[..]));
        tap.hello_read(Prepared::default());
        let mut rest = Vec::new();
        tap.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"after");
        assert!(
            tap.recording.is_none(),
            "freed once rustls has every byte read"
        );
    }
}
