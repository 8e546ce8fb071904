//! Gives memory a worker has freed back to the operating system.
//!
//! The binary allocates with mimalloc, which returns freed pages lazily, during a thread's
//! later allocations. A worker that goes quiet after a storm of connections makes none, so
//! the storm's memory stayed resident for good: 5,000 idle keep-alive connections opened and
//! closed left RSS at 184 MiB against 30 MiB before them (`benches/idle_connections.py`).
//! Each worker's housekeeping ticks a [`Reclaimer`] once a second.

/// Open connections that must have closed, at the least, before a forced collection.
const STORM: i64 = 256;

/// One worker's memory housekeeping: a normal collection every tick, a forced one once a
/// storm of connections has ended.
#[derive(Debug, Default)]
pub(crate) struct Reclaimer {
    /// The most connections open at a tick since the last forced collection.
    high: i64,
}

impl Reclaimer {
    /// Collects this thread's freed memory, given the gateway's open connections now.
    ///
    /// A normal collection frees the thread's empty pages; a forced one also purges cached
    /// segments (what gives the bulk back) but walks more, so it runs only when at least
    /// [`STORM`] connections and half of the high mark have gone since the last one. A storm
    /// that opens and closes between two ticks is not seen: its memory waits for the next.
    pub(crate) fn tick(&mut self, open: i64) {
        self.high = self.high.max(open);
        let force = storm_ended(self.high, open);
        if force {
            self.high = open;
        }
        collect(force);
    }
}

fn storm_ended(high: i64, open: i64) -> bool {
    high - open >= STORM && open <= high / 2
}

/// Harmless when the process allocator is another one (a program embedding the gateway):
/// mimalloc then has nothing of this thread's to collect.
fn collect(force: bool) {
    // SAFETY: `mi_collect` takes no pointers and may be called on any thread at any time;
    // it only touches mimalloc's own state (the calling thread's heap and the shared caches).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_collect(force);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storm_has_ended_when_most_of_it_has_closed() {
        assert!(storm_ended(5_000, 10));
        assert!(storm_ended(512, 256));
        assert!(!storm_ended(5_000, 4_000), "most still open");
        assert!(!storm_ended(300, 100), "too few to be a storm");
        assert!(!storm_ended(0, 0));
    }

    #[test]
    fn the_high_mark_restarts_after_a_forced_collection() {
        let mut reclaimer = Reclaimer::default();
        reclaimer.tick(2_000);
        reclaimer.tick(1_500);
        assert_eq!(reclaimer.high, 2_000);
        reclaimer.tick(100);
        assert_eq!(
            reclaimer.high, 100,
            "forced: the next storm is measured from here"
        );
        reclaimer.tick(50);
        assert_eq!(reclaimer.high, 100);
    }
}
