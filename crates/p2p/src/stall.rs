//! A write-stall guard under noise and yamux: a connection whose writes make no progress for
//! [`WRITE_STALL_TIMEOUT`] fails with `TimedOut` instead of waiting forever.
//!
//! A peer that stops reading fills our socket's send buffer; every write to it then pends. libp2p
//! closes such a connection gracefully (after a failed ping), and the graceful close itself has to
//! write (yamux's GoAway) and so pends too, for as long as the peer keeps acknowledging TCP
//! window probes, which is forever. The peer keeps its connection slot and whatever we had queued
//! for it. The guard turns "no byte written for `WRITE_STALL_TIMEOUT`" into an I/O error, so the
//! connection is torn down and everything it held is freed. Bitcoin Core drops a peer whose send
//! buffer does not drain in the same way (its send timeout).
//!
//! Only writes are watched: a peer that sends nothing is handled by pings and idle timeouts.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};

/// Longest time a connection's writes may make no progress before it is failed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Wraps a raw connection; see the module docs.
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write, flush or close pends; fires `timeout` after the first pending call
    /// since the last progress.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Guards `inner` with [`WRITE_STALL_TIMEOUT`].
    pub fn new(inner: S) -> Self {
        Self::with_timeout(inner, WRITE_STALL_TIMEOUT)
    }

    /// Guards `inner` with `timeout`.
    pub fn with_timeout(inner: S, timeout: Duration) -> Self {
        StallGuard { inner, timeout, deadline: None }
    }

    /// Progress resets the deadline; pending arms it (once) and fails the call once it passed.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no byte written for {timeout:?}: the peer does not read"),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_close(cx);
        self.watch(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::AsyncWriteExt;

    /// A writer that accepts `room` bytes, then pends forever (a peer that stopped reading).
    struct Stuck {
        room: usize,
    }

    impl AsyncWrite for Stuck {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            if self.room == 0 {
                return Poll::Pending;
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_stalls_fails_after_the_timeout_and_progress_is_not_a_stall() {
        let mut w = StallGuard::with_timeout(Stuck { room: 10 }, Duration::from_secs(20));
        let start = tokio::time::Instant::now();
        w.write_all(&[0; 10]).await.unwrap();
        let err = w.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        // A graceful close that cannot finish fails the same way.
        let mut w = StallGuard::with_timeout(Stuck { room: 0 }, Duration::from_secs(5));
        assert_eq!(w.close().await.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
