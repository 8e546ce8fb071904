//! The client streams a connection is served over: what each says about the protocol its
//! client speaks, and how a released connection learns that its client sent more.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// What a connection speaks, as far as its stream can tell before hyper reads it.
pub(crate) enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2, or not known yet: hyper-util's auto connection reads the preface.
    Auto,
    /// The client closed before sending anything.
    Closed,
}

/// A client stream: plain TCP or TLS over it.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// What the client speaks; pending until it can be told.
    fn poll_protocol(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Protocol>>;

    /// Ready once the client has sent more (or closed).
    ///
    /// Only asked after hyper's last read of the stream was pending, so a TLS stream holds
    /// no decrypted bytes then, and the socket's readiness tells.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ClientStream for TcpStream {
    fn poll_protocol(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Protocol>> {
        let mut first = [0u8; 24];
        let mut first = tokio::io::ReadBuf::new(&mut first);
        let peeked = std::task::ready!(self.poll_peek(cx, &mut first))?;
        Poll::Ready(Ok(if peeked == 0 {
            Protocol::Closed
        } else if may_be_http2(first.filled()) {
            Protocol::Auto
        } else {
            Protocol::Http1
        }))
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl ClientStream for TlsStream<TcpStream> {
    fn poll_protocol(&mut self, _: &mut Context<'_>) -> Poll<io::Result<Protocol>> {
        // ALPN says it; a client that offered none may still send the HTTP/2 preface.
        Poll::Ready(Ok(match self.get_ref().1.alpn_protocol() {
            Some(b"http/1.1") => Protocol::Http1,
            _ => Protocol::Auto,
        }))
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().0.poll_read_ready(cx)
    }
}

/// Whether `bytes`, the first of a connection, can still be the HTTP/2 preface.
fn may_be_http2(bytes: &[u8]) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    PREFACE.starts_with(bytes)
}
