//! The client socket of a keep-alive connection as hyper sees it: bytes hyper had read
//! but not parsed when the connection was released come first, and what the socket does
//! is reported to the connection's [`Signals`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::serve::header_timer::HeaderTimer;

/// A client socket with the bytes read ahead of it.
pub(crate) struct Socket<T> {
    unread: Bytes,
    stream: T,
    timer: HeaderTimer,
}

impl<T> Socket<T> {
    /// `stream`, reporting to `timer`'s signals.
    pub(crate) fn new(stream: T, timer: HeaderTimer) -> Self {
        Self {
            unread: Bytes::new(),
            stream,
            timer,
        }
    }

    /// Puts back the bytes hyper read but did not parse. They are copied out of hyper's read
    /// buffer, which is what releasing the connection frees.
    pub(crate) fn unread(&mut self, bytes: &Bytes) {
        self.unread = Bytes::copy_from_slice(bytes);
    }

    /// The socket itself.
    pub(crate) fn stream(&self) -> &T {
        &self.stream
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Socket<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread[..n]);
            this.unread.advance(n);
            this.timer.signals().bytes_read();
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        std::task::ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.timer.signals().bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Socket<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.timer.signals().write_blocked(written.is_pending());
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.timer.signals().write_blocked(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timer.signals().releasing() {
            // hyper ends the connection it was asked to end; the socket stays open.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}
