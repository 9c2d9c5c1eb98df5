//! Emulated links for in-process networks: latency, bandwidth, topology and cuts on top of
//! libp2p's memory transport, for simulations and tests (in the spirit of Linux `netem`).
//!
//! A [`LinkModel`] answers, for a dial from the node listening on `/memory/{from}` to the one on
//! `/memory/{to}`, whether a link exists and what it is like. The dialing side wraps the raw
//! connection (below noise and yamux, so every handshake and frame pays for it) in two pumps, one
//! per direction. Each pump reads what one side wrote, stamps it with the time its last byte
//! would leave a link of that bandwidth plus the link's one-way latency, and writes it to the other
//! side at that time. Bytes in flight per direction are capped ([`LINK_QUEUE_CHUNKS`] chunks of at
//! most [`LINK_CHUNK_BYTES`]); a full queue stops reading, which is the sender's back-pressure.
//!
//! A link is cut when the model cancels the token it handed out with the link: both pumps stop and
//! drop their ends, so both nodes see the connection close (as after `docker network disconnect`
//! with a reset). Dials over a missing or cut link fail. The listening side does not shape: the
//! dialer's pumps already delay both directions.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use libp2p::core::ConnectedPoint;
use libp2p::core::transport::memory::Channel;
use libp2p::multiaddr::Protocol;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use tokio_util::sync::CancellationToken;

/// Largest piece a pump reads and forwards at once.
pub const LINK_CHUNK_BYTES: usize = 16 * 1024;
/// Chunks in flight per direction of one link (so at most 1 MiB buffered per direction).
pub const LINK_QUEUE_CHUNKS: usize = 64;
/// Buffer of the in-process pipe between a node and its side of the pumps.
pub const LINK_PIPE_BYTES: usize = 64 * 1024;

/// What one link is like, in each direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkSpec {
    /// One-way delay.
    pub latency: Duration,
    /// Bytes per second each way; 0 is unlimited.
    pub bytes_per_sec: u64,
}

impl LinkSpec {
    /// How long `bytes` occupy the link.
    fn transmit_time(&self, bytes: usize) -> Duration {
        if self.bytes_per_sec == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos((bytes as u64).saturating_mul(1_000_000_000) / self.bytes_per_sec)
    }
}

/// Decides which links exist and what they are like.
pub trait LinkModel: Send + Sync + 'static {
    /// The link from the node listening on `/memory/{from}` to the one on `/memory/{to}`, with a
    /// token the model cancels when the link goes down; `None` when there is no link (the dial
    /// fails).
    fn link(&self, from: u64, to: u64) -> Option<(LinkSpec, CancellationToken)>;
}

/// A node's view of the link model: the model and the node's own memory port.
#[derive(Clone)]
pub struct Links {
    /// The model.
    pub model: Arc<dyn LinkModel>,
    /// The port this node listens on (`/memory/{local}`).
    pub local: u64,
}

impl fmt::Debug for Links {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Links").field("local", &self.local).finish_non_exhaustive()
    }
}

/// A connection after [`shape`]: the dialer's shaped pipe or the listener's raw channel.
pub type Shaped = Either<Compat<tokio::io::DuplexStream>, Channel<Vec<u8>>>;

fn memory_port(addr: &libp2p::Multiaddr) -> Option<u64> {
    addr.iter().find_map(|p| match p {
        Protocol::Memory(port) => Some(port),
        _ => None,
    })
}

/// Wraps a fresh memory connection: on the dialing side in a shaped link, or fails when the model
/// has no link; the listening side passes through.
pub async fn shape(conn: Channel<Vec<u8>>, endpoint: ConnectedPoint, links: Links) -> io::Result<Shaped> {
    let ConnectedPoint::Dialer { address, .. } = &endpoint else {
        return Ok(Either::Right(conn));
    };
    let to = memory_port(address).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a memory address"))?;
    let Some((spec, cut)) = links.model.link(links.local, to) else {
        return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("no link {} -> {to}", links.local)));
    };
    if cut.is_cancelled() {
        return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("link {} -> {to} is cut", links.local)));
    }
    let (near, far) = tokio::io::duplex(LINK_PIPE_BYTES);
    let (far_read, far_write) = tokio::io::split(far);
    let (remote_read, remote_write) = tokio::io::split(conn.compat());
    tokio::spawn(pump(far_read, remote_write, spec, cut.clone()));
    tokio::spawn(pump(remote_read, far_write, spec, cut));
    Ok(Either::Left(near.compat()))
}

/// Moves bytes from `src` to `dst`, each delayed by the link until its time to arrive; ends when
/// `src` ends (after delivering what is in flight) or at once when the link is cut.
async fn pump<R, W>(mut src: R, mut dst: W, spec: LinkSpec, cut: CancellationToken)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(LINK_QUEUE_CHUNKS);
    let read = async move {
        let mut free_at = Instant::now();
        let mut buf = vec![0u8; LINK_CHUNK_BYTES];
        loop {
            let n = match src.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            free_at = free_at.max(Instant::now()) + spec.transmit_time(n);
            if tx.send((free_at + spec.latency, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if dst.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = dst.shutdown().await;
    };
    tokio::select! {
        _ = cut.cancelled() => {}
        _ = async { tokio::join!(read, write) } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmit_time_follows_bandwidth() {
        let spec = LinkSpec { latency: Duration::ZERO, bytes_per_sec: 1_000_000 };
        assert_eq!(spec.transmit_time(1_000), Duration::from_millis(1));
        let unlimited = LinkSpec { latency: Duration::ZERO, bytes_per_sec: 0 };
        assert_eq!(unlimited.transmit_time(1 << 30), Duration::ZERO);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_pump_delays_by_latency_and_bandwidth_and_stops_when_cut() {
        let spec = LinkSpec { latency: Duration::from_millis(50), bytes_per_sec: 100_000 };
        let (mut writer, src) = tokio::io::duplex(LINK_PIPE_BYTES);
        let (dst, mut reader) = tokio::io::duplex(LINK_PIPE_BYTES);
        let cut = CancellationToken::new();
        let task = tokio::spawn(pump(src, dst, spec, cut.clone()));
        let start = Instant::now();
        writer.write_all(&[7u8; 10_000]).await.unwrap();
        let mut got = vec![0u8; 10_000];
        reader.read_exact(&mut got).await.unwrap();
        // 10 kB at 100 kB/s is 100 ms on the wire, plus 50 ms of latency: never sooner.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(got.iter().all(|b| *b == 7));
        cut.cancel();
        task.await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 0, "the far side sees the link close");
    }
}
