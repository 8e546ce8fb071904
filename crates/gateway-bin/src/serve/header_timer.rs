//! The timer behind hyper's HTTP/1 header read timeout, one per connection, which also marks
//! when an idle keep-alive connection may give its buffers back (`serve/keep_alive/`).
//!
//! hyper arms the header read timeout each time it starts reading a request head (so it also
//! bounds how long a keep-alive connection idles) and drops it once the head is in. With a
//! plain tokio timer every request then registers a timer in the wheel and removes it again.
//! This one keeps a single tokio timer per connection and moves its deadline later for each
//! head, which tokio does with one atomic update while the timer is pending.
//!
//! With a release point set, the timer first fires that long after the head read started:
//! it then raises [`Signals::release_due`] and waits on for the real deadline. The release
//! costs a busy connection nothing (its heads arrive before the release point, and the
//! deadline moves as before); only a connection that stays idle wakes once more.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::time::Sleep;

/// A connection's header read timer, handed to hyper's HTTP/1 builder.
#[derive(Clone, Default)]
pub(crate) struct HeaderTimer {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    armed: Mutex<Armed>,
    /// How long before the head deadline the release point lies; `None`: no release.
    release_lead: Option<Duration>,
    signals: Signals,
}

#[derive(Default)]
struct Armed {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline of the head being read.
    deadline: Option<tokio::time::Instant>,
    /// A deadline the next head may not move past: the one of a head whose connection was
    /// released while waiting for it.
    cap: Option<tokio::time::Instant>,
}

impl Armed {
    /// Makes the one tokio timer fire at `at`.
    fn wake_at(&mut self, at: tokio::time::Instant) {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        self.armed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ready once the armed deadline has passed; passing the release point on the way
    /// raises [`Signals::release_due`].
    fn poll_deadline(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut armed = self.lock();
        let deadline = armed.deadline;
        let Some(sleep) = armed.sleep.as_mut() else {
            return Poll::Ready(());
        };
        std::task::ready!(sleep.as_mut().poll(cx));
        match deadline {
            Some(deadline) if sleep.deadline() < deadline => {
                // The release point, not the deadline: say so and wait on.
                self.signals.release_due.store(true, Ordering::Relaxed);
                sleep.as_mut().reset(deadline);
                sleep.as_mut().poll(cx)
            }
            _ => Poll::Ready(()),
        }
    }
}

/// What a keep-alive connection's parts tell each other about it; relaxed flags, all written
/// and read by the connection's own task.
#[derive(Default)]
pub(crate) struct Signals {
    release_due: AtomicBool,
    read_since_head: AtomicBool,
    write_blocked: AtomicBool,
    releasing: AtomicBool,
}

impl Signals {
    /// Whether the connection has waited the release time for its next head without a byte
    /// of it arriving and with its last response written out: hyper then holds no request
    /// state, so the connection can be shut down and served anew on its next byte.
    pub(crate) fn release_due(&self) -> bool {
        self.release_due.load(Ordering::Relaxed)
            && !self.read_since_head.load(Ordering::Relaxed)
            && !self.write_blocked.load(Ordering::Relaxed)
    }

    /// Records bytes read from the client.
    pub(crate) fn bytes_read(&self) {
        self.read_since_head.store(true, Ordering::Relaxed);
    }

    /// Records whether the last write to the client had to wait.
    pub(crate) fn write_blocked(&self, blocked: bool) {
        self.write_blocked.store(blocked, Ordering::Relaxed);
    }

    /// Marks the connection as being released: hyper's shutdown of the socket is then
    /// skipped, because the socket lives on.
    pub(crate) fn set_releasing(&self, releasing: bool) {
        self.release_due.store(false, Ordering::Relaxed);
        self.releasing.store(releasing, Ordering::Relaxed);
    }

    /// Whether the connection is being released (see [`set_releasing`](Self::set_releasing)).
    pub(crate) fn releasing(&self) -> bool {
        self.releasing.load(Ordering::Relaxed)
    }
}

impl HeaderTimer {
    /// A timer whose heads raise [`Signals::release_due`] after waiting `release_after` of
    /// their `header_read_timeout`; none when `release_after` is not shorter.
    pub(crate) fn releasing_after(header_read_timeout: Duration, release_after: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                release_lead: header_read_timeout.checked_sub(release_after),
                ..Shared::default()
            }),
        }
    }

    /// The flags this connection's socket and connection future share.
    pub(crate) fn signals(&self) -> &Signals {
        &self.shared.signals
    }

    /// Arms the timer for a connection that has not sent a head yet, so that its first
    /// head is due `timeout` from now.
    pub(crate) fn arm(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut armed = self.shared.lock();
        armed.cap = Some(deadline);
        armed.deadline = Some(deadline);
        armed.wake_at(deadline);
    }

    /// Keeps the deadline of the head being waited for as the cap of the next one: a
    /// released connection's next head is due when it would have been.
    pub(crate) fn hold_deadline(&self) {
        let mut armed = self.shared.lock();
        armed.cap = armed.deadline;
    }

    /// Ready once the deadline armed last has passed.
    pub(crate) fn poll_deadline(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.poll_deadline(cx)
    }
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let mut deadline = tokio::time::Instant::from_std(deadline);
        {
            let mut armed = self.shared.lock();
            if let Some(cap) = armed.cap.take() {
                deadline = deadline.min(cap);
            }
            armed.deadline = Some(deadline);
            let signals = &self.shared.signals;
            signals.release_due.store(false, Ordering::Relaxed);
            signals.read_since_head.store(false, Ordering::Relaxed);
            let wake = match self.shared.release_lead {
                // A capped deadline can be nearer than the lead: release at once then.
                Some(lead) => deadline
                    .checked_sub(lead)
                    .unwrap_or_else(tokio::time::Instant::now),
                None => deadline,
            };
            armed.wake_at(wake);
        }
        Box::pin(HeaderSleep {
            shared: self.shared.clone(),
        })
    }

    fn now(&self) -> Instant {
        // Follows tokio's clock, which tests may pause.
        tokio::time::Instant::now().into_std()
    }
}

/// The connection's timer as hyper holds it for one head.
struct HeaderSleep {
    shared: Arc<Shared>,
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.poll_deadline(cx)
    }
}

impl hyper::rt::Sleep for HeaderSleep {}

#[cfg(test)]
mod tests {
    use hyper::rt::Timer;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_replaces_the_earlier_one() {
        let timer = HeaderTimer::default();
        let start = timer.now();
        let mut first = timer.sleep_until(start + Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        drop(first);

        // The next head's deadline: the first one no longer fires.
        let mut second = timer.sleep_until(start + Duration::from_secs(3));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(second.as_mut().poll(&mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(second.as_mut().poll(&mut cx).is_ready());

        // After firing, it can be armed again.
        let mut third = timer.sleep(Duration::from_secs(1));
        assert!(third.as_mut().poll(&mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(third.as_mut().poll(&mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_head_read_is_woken_at_its_deadline() {
        let timer = HeaderTimer::default();
        let sleep = timer.sleep(Duration::from_millis(300));
        let started = tokio::time::Instant::now();
        sleep.await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn the_release_point_comes_before_the_deadline_and_does_not_end_the_head() {
        let timer = HeaderTimer::releasing_after(Duration::from_secs(10), Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut head = timer.sleep(Duration::from_secs(10));
        assert!(head.as_mut().poll(&mut cx).is_pending());
        assert!(!timer.signals().release_due());

        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(head.as_mut().poll(&mut cx).is_pending(), "not the deadline");
        assert!(timer.signals().release_due());

        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(head.as_mut().poll(&mut cx).is_ready(), "the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_of_the_head_or_a_blocked_write_holds_the_release() {
        let timer = HeaderTimer::releasing_after(Duration::from_secs(10), Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());

        let mut head = timer.sleep(Duration::from_secs(10));
        timer.signals().bytes_read();
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(head.as_mut().poll(&mut cx).is_pending());
        assert!(!timer.signals().release_due(), "a head has begun");

        // The next head starts clean.
        let mut head = timer.sleep(Duration::from_secs(10));
        timer.signals().write_blocked(true);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(head.as_mut().poll(&mut cx).is_pending());
        assert!(!timer.signals().release_due(), "the response is not out");
        timer.signals().write_blocked(false);
        assert!(timer.signals().release_due());
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_connection_keeps_its_head_deadline() {
        let timer = HeaderTimer::releasing_after(Duration::from_secs(10), Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let start = tokio::time::Instant::now();
        let mut head = timer.sleep(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(head.as_mut().poll(&mut cx).is_pending());
        drop(head);
        timer.hold_deadline();

        // Released and waiting: the wait ends at the head's deadline.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(timer.poll_deadline(&mut cx).is_pending());

        // A byte arrives at 6 s: the resumed head is still due at 10 s, not 16 s, and
        // releases at once if it is idle again.
        let mut resumed = timer.sleep(Duration::from_secs(10));
        tokio::time::advance(Duration::ZERO).await;
        assert!(resumed.as_mut().poll(&mut cx).is_pending());
        assert!(timer.signals().release_due());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(resumed.as_mut().poll(&mut cx).is_ready());
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_waits_at_most_the_timeout_for_its_first_head() {
        let timer = HeaderTimer::releasing_after(Duration::from_secs(10), Duration::from_secs(1));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        timer.arm(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(timer.poll_deadline(&mut cx).is_pending());
        // Its first byte came at 4 s: hyper's head starts with 10 s, the cap keeps 6.
        let mut head = timer.sleep(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(head.as_mut().poll(&mut cx).is_ready());
    }
}
