//! Client connections, served so that an idle HTTP/1.1 keep-alive connection holds no
//! request buffers.
//!
//! hyper keeps a read buffer (8 KiB or more), a write buffer (8 KiB) and a cached header map
//! for every HTTP/1 connection for as long as it lives, and its server API can neither shrink
//! nor free them; 10,000 idle keep-alive clients cost ~300 MiB that way. nginx frees the
//! request buffers of an idle keep-alive connection; this does the same around hyper: once a
//! connection has waited `[server] release_idle_after` for its next request head (the head
//! timer tells, see `serve/header_timer.rs`), with nothing of that head read and its last
//! response written out, hyper holds no request state. The connection is then shut down
//! the graceful way, which for an idle hyper connection writes nothing and ends it, except
//! that the socket's shutdown is skipped; the socket, any bytes read ahead and the service
//! are taken back, hyper's connection is dropped, and the socket waits for its next byte
//! (or the head deadline it had) with nothing else allocated. That byte starts a new hyper
//! connection on the same socket.
//!
//! A plain-TCP connection waits for its first bytes the same way, and one whose first bytes
//! are the HTTP/2 preface (or too few to tell) is handed to hyper-util's auto connection as
//! before; over TLS, ALPN decides (`h2`, or none offered: the auto connection). A released
//! TLS connection keeps its rustls session and that session's buffers; hyper's are freed.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::serve::drain::Graceful;
use crate::serve::header_timer::HeaderTimer;
use crate::serve::listener::{
    ConnectionGauge, ConnectionLimits, ReleasedGuard, connection_builder, http1_builder,
};

mod socket;
mod stream;

use socket::Socket;
pub(crate) use stream::ClientStream;
use stream::Protocol;

type BoxError = Box<dyn StdError + Send + Sync>;

/// The per-connection service, with what hyper (both versions, upgrades) needs of it.
pub(crate) trait ClientService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Self::Body>,
        Error: Into<BoxError>,
        Future: Send + 'static,
    > + Unpin
    + Send
    + 'static
{
    /// The response body.
    type Body: http_body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
}

impl<S, B> ClientService for S
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Unpin + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Body = B;
}

/// What every connection of a worker is served with.
pub(crate) struct Serving {
    /// The builder for HTTP/2 (and for connections whose first bytes cannot tell).
    pub(crate) auto: auto::Builder<TokioExecutor>,
    /// The HTTP/1 builder, without the connection's own timer.
    pub(crate) http1: http1::Builder,
    /// Time allowed to read a request head, and so to idle between requests.
    pub(crate) header_read_timeout: Duration,
    /// How long a connection waits for its next head before it gives its buffers back.
    pub(crate) release_after: Duration,
    /// Counts the connections that hold no buffers.
    pub(crate) gauge: Arc<ConnectionGauge>,
}

impl Serving {
    /// Builders and times from `limits`, released connections counted in `gauge`.
    pub(crate) fn new(limits: ConnectionLimits, gauge: Arc<ConnectionGauge>) -> Self {
        Self {
            auto: connection_builder(limits),
            http1: http1_builder(&limits),
            header_read_timeout: limits.header_read_timeout,
            release_after: limits.release_idle_after,
            gauge,
        }
    }
}

type Http1Connection<S, T> = http1::UpgradeableConnection<TokioIo<Socket<T>>, S>;
type AutoConnection<S, T> = auto::UpgradeableConnection<'static, TokioIo<T>, S, TokioExecutor>;

enum State<S: HttpService<Incoming>, T> {
    /// Accepted; waiting to learn what it speaks.
    Fresh {
        stream: T,
        service: S,
    },
    /// Serving HTTP/1 requests.
    Http1(Box<Http1Connection<S, T>>),
    /// Idle between requests, holding only its socket and service.
    Released {
        socket: Socket<T>,
        service: S,
        _counted: ReleasedGuard,
    },
    /// Served by hyper-util's auto connection.
    Auto(Pin<Box<AutoConnection<S, T>>>),
    Done,
}

/// One client connection over `T` (see the module docs).
pub(crate) struct Connection<S: HttpService<Incoming>, T> {
    state: State<S, T>,
    timer: HeaderTimer,
    http1: http1::Builder,
    serving: Arc<Serving>,
    draining: bool,
}

impl<S: HttpService<Incoming>, T> Connection<S, T> {
    /// Serves `stream` (accepted, and past its TLS handshake if it has one) with `service`.
    pub(crate) fn new(stream: T, service: S, serving: Arc<Serving>) -> Self {
        let timer =
            HeaderTimer::releasing_after(serving.header_read_timeout, serving.release_after);
        timer.arm(serving.header_read_timeout);
        let mut http1 = serving.http1.clone();
        http1.timer(timer.clone());
        Self {
            state: State::Fresh { stream, service },
            timer,
            http1,
            serving,
            draining: false,
        }
    }
}

impl<S: ClientService, T: ClientStream> Connection<S, T> {
    fn serve_http1(&mut self, socket: Socket<T>, service: S) {
        let connection = self
            .http1
            .serve_connection(TokioIo::new(socket), service)
            .with_upgrades();
        self.state = State::Http1(Box::new(connection));
    }

    /// Polls a fresh connection until it says what it speaks (or is closed).
    fn poll_fresh(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let State::Fresh { stream, .. } = &mut self.state else {
            unreachable!("polled as fresh")
        };
        if self.draining {
            // Nothing started yet: close, as hyper closes a connection that has sent nothing.
            self.state = State::Done;
            return Poll::Ready(());
        }
        let http1 = match stream.poll_protocol(cx) {
            Poll::Ready(Ok(Protocol::Http1)) => true,
            Poll::Ready(Ok(Protocol::Auto)) => false,
            Poll::Ready(Ok(Protocol::Closed) | Err(_)) => {
                self.state = State::Done;
                return Poll::Ready(());
            }
            Poll::Pending => {
                if self.timer.poll_deadline(cx).is_ready() {
                    self.state = State::Done;
                    return Poll::Ready(());
                }
                return Poll::Pending;
            }
        };
        let State::Fresh { stream, service } = std::mem::replace(&mut self.state, State::Done)
        else {
            unreachable!("polled as fresh")
        };
        if http1 {
            self.serve_http1(Socket::new(stream, self.timer.clone()), service);
        } else {
            let mut auto = self.serving.auto.clone();
            auto.http1().timer(self.timer.clone());
            let connection = auto
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            self.state = State::Auto(Box::pin(connection));
        }
        Poll::Ready(())
    }

    /// Shuts an idle HTTP/1 connection down and keeps its socket, if hyper agrees it is idle.
    fn release(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let State::Http1(connection) = &mut self.state else {
            unreachable!("released while not serving HTTP/1")
        };
        let signals = self.timer.signals();
        signals.set_releasing(true);
        Pin::new(&mut **connection).graceful_shutdown();
        let ended = Pin::new(&mut **connection).poll(cx);
        signals.set_releasing(false);
        match ended {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => {
                self.state = State::Done;
                return Poll::Ready(Err(error.into()));
            }
            // hyper was in the middle of something after all; it now closes the connection
            // once that is done, as on any graceful shutdown.
            Poll::Pending => return Poll::Pending,
        }
        let State::Http1(connection) = std::mem::replace(&mut self.state, State::Done) else {
            unreachable!("checked above")
        };
        let Some(parts) = connection.into_parts() else {
            // Upgraded: the tunnel owns the socket now.
            return Poll::Ready(Ok(()));
        };
        let mut socket = parts.io.into_inner();
        socket.unread(&parts.read_buf);
        self.timer.hold_deadline();
        self.state = State::Released {
            socket,
            service: parts.service,
            _counted: self.serving.gauge.count_released(),
        };
        Poll::Ready(Ok(()))
    }
}

impl<S: ClientService, T: ClientStream> Future for Connection<S, T> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Fresh { .. } => std::task::ready!(this.poll_fresh(cx)),
                State::Http1(connection) => match Pin::new(&mut **connection).poll(cx) {
                    Poll::Ready(result) => {
                        this.state = State::Done;
                        return Poll::Ready(result.map_err(Into::into));
                    }
                    Poll::Pending if !this.draining && this.timer.signals().release_due() => {
                        std::task::ready!(this.release(cx))?;
                    }
                    Poll::Pending => return Poll::Pending,
                },
                State::Released { socket, .. } => {
                    // Closed when the worker stops, as hyper closes an idle connection, even
                    // if the next request is on its way; else when idle past its deadline.
                    if this.draining {
                        this.state = State::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if socket.stream().poll_read_ready(cx).is_pending() {
                        if this.timer.poll_deadline(cx).is_ready() {
                            this.state = State::Done;
                            return Poll::Ready(Ok(()));
                        }
                        return Poll::Pending;
                    }
                    let State::Released {
                        socket, service, ..
                    } = std::mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!("matched above")
                    };
                    // A read error shows up in hyper's first read, as it would have.
                    this.serve_http1(socket, service);
                }
                State::Auto(connection) => return connection.as_mut().poll(cx),
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: ClientService, T: ClientStream> Graceful for Connection<S, T> {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        let this = self.get_mut();
        this.draining = true;
        match &mut this.state {
            State::Http1(connection) => Pin::new(&mut **connection).graceful_shutdown(),
            State::Auto(connection) => connection.as_mut().graceful_shutdown(),
            // Closed at their next poll.
            State::Fresh { .. } | State::Released { .. } | State::Done => {}
        }
    }
}

#[cfg(test)]
mod tests;
