//! Graceful shutdown of one worker's connections.
//!
//! Every connection must learn when the worker stops accepting, so that it finishes its
//! in-flight requests and closes. Watching a channel for that would poll a shared future
//! with every poll of every connection; here a connection registers its task's waker once
//! and then checks one flag per poll.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;
use tokio::sync::Notify;

/// A connection that can be asked to finish its in-flight requests and close.
pub(crate) trait Graceful: Future {
    /// Starts the graceful shutdown; the connection is polled on until it ends.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

/// Wakers of the registered connections, in slots reused after their connection ends.
#[derive(Default)]
struct Wakers {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    wakers: Mutex<Wakers>,
    live: AtomicUsize,
    all_closed: Notify,
}

/// The connections of one worker, to be drained together.
#[derive(Clone, Default)]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

impl Drain {
    /// Wraps a connection so that [`shutdown`](Self::shutdown) drains it.
    ///
    /// The returned future must be polled by one task only: it registers the waker of its
    /// first poll, which is then that task's waker for good.
    pub(crate) fn watch<C: Graceful>(&self, conn: C) -> Draining<C> {
        self.shared.live.fetch_add(1, Ordering::Relaxed);
        Draining {
            conn,
            shared: self.shared.clone(),
            state: State::New,
        }
    }

    /// Asks every connection to finish and close, and waits until they all have.
    pub(crate) async fn shutdown(&self) {
        let shared = &*self.shared;
        {
            let mut wakers = shared.wakers.lock().unwrap_or_else(PoisonError::into_inner);
            shared.draining.store(true, Ordering::Release);
            for waker in wakers.slots.iter_mut().filter_map(Option::take) {
                waker.wake();
            }
        }
        loop {
            let closed = shared.all_closed.notified();
            if shared.live.load(Ordering::Acquire) == 0 {
                return;
            }
            closed.await;
        }
    }
}

enum State {
    /// Not polled yet.
    New,
    /// Registered in this slot.
    Registered(usize),
    /// Told to drain.
    Draining,
}

pin_project! {
    /// A connection that [`Drain::shutdown`] drains.
    pub(crate) struct Draining<C> {
        #[pin]
        conn: C,
        shared: Arc<Shared>,
        state: State,
    }

    impl<C> PinnedDrop for Draining<C> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let State::Registered(slot) = *this.state {
                let mut wakers = this.shared.wakers.lock().unwrap_or_else(PoisonError::into_inner);
                wakers.slots[slot] = None;
                wakers.free.push(slot);
            }
            if this.shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                this.shared.all_closed.notify_waiters();
            }
        }
    }
}

impl<C: Graceful> Future for Draining<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        match *this.state {
            State::Registered(_) if !this.shared.draining.load(Ordering::Acquire) => {}
            State::Draining => {}
            State::New => {
                let mut wakers = this
                    .shared
                    .wakers
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                // Checked under the lock `shutdown` sets it under: no wake-up is missed.
                if this.shared.draining.load(Ordering::Acquire) {
                    *this.state = State::Draining;
                    this.conn.as_mut().graceful_shutdown();
                } else {
                    let waker = Some(cx.waker().clone());
                    let slot = match wakers.free.pop() {
                        Some(slot) => {
                            wakers.slots[slot] = waker;
                            slot
                        }
                        None => {
                            wakers.slots.push(waker);
                            wakers.slots.len() - 1
                        }
                    };
                    *this.state = State::Registered(slot);
                }
            }
            State::Registered(_) => {
                // `shutdown` has taken the waker and woken the task.
                *this.state = State::Draining;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::{Request, Response};
    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::serve::keep_alive::{Connection, Serving};
    use crate::serve::listener::{ConnectionGauge, ConnectionLimits};

    /// Serves one accepted connection under `drain`, answering after `delay`.
    async fn serve_one(listener: &TcpListener, drain: &Drain, delay: Duration) {
        let (stream, _) = listener.accept().await.unwrap();
        let service = hyper::service::service_fn(move |_: Request<Incoming>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::convert::Infallible>(Response::new(String::from("done")))
        });
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_size: 64 << 10,
            max_headers: 100,
            release_idle_after: Duration::from_secs(1),
        };
        let serving = Arc::new(Serving::new(limits, Arc::new(ConnectionGauge::default())));
        let connection = drain.watch(Connection::new(stream, service, serving));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }

    /// What arrives until the server closes the connection (a reset counts as a close: a
    /// server closing with a request unread resets).
    async fn read_all(stream: &mut TcpStream) -> String {
        let mut text = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut text))
            .await
            .expect("the connection was not closed");
        if let Err(error) = read {
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        }
        String::from_utf8(text).unwrap()
    }

    #[tokio::test]
    async fn shutdown_finishes_in_flight_requests_and_closes_idle_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let drain = Drain::default();

        // An idle keep-alive connection, after one request.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        serve_one(&listener, &drain, Duration::ZERO).await;
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        idle.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");

        // A request still being answered.
        let mut busy = TcpStream::connect(addr).await.unwrap();
        serve_one(&listener, &drain, Duration::from_millis(300)).await;
        busy.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let shutdown = tokio::spawn({
            let drain = drain.clone();
            async move { drain.shutdown().await }
        });
        let answer = read_all(&mut busy).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        read_all(&mut idle).await;
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("shutdown did not end once the connections closed")
            .unwrap();

        // A connection that arrives while draining is closed after its first request.
        let mut late = TcpStream::connect(addr).await.unwrap();
        serve_one(&listener, &drain, Duration::ZERO).await;
        late.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_all(&mut late).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
    }
}
