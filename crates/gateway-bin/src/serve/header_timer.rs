//! The timer behind hyper's HTTP/1 header read timeout, one per connection.
//!
//! hyper arms the header read timeout each time it starts reading a request head (so it also
//! bounds how long a keep-alive connection idles) and drops it once the head is in. With a
//! plain tokio timer every request then registers a timer in the wheel and removes it again.
//! This one keeps a single tokio timer per connection and moves its deadline later for each
//! head, which tokio does with one atomic update while the timer is pending.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A connection's header read timer, handed to hyper's HTTP/1 builder.
#[derive(Clone, Default)]
pub(crate) struct HeaderTimer {
    sleep: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let deadline = tokio::time::Instant::from_std(deadline);
        {
            let mut sleep = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
            match sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => *sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        Box::pin(HeaderSleep {
            sleep: self.sleep.clone(),
        })
    }

    fn now(&self) -> Instant {
        // Follows tokio's clock, which tests may pause.
        tokio::time::Instant::now().into_std()
    }
}

/// The connection's timer as hyper holds it for one head.
struct HeaderSleep {
    sleep: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut sleep = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        match sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
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
}
