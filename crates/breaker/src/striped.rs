//! Keeping threads off each other's cache lines: padding, and a stripe index per thread.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Aligns its value to 128 bytes (two cache lines: adjacent-line prefetchers pair them), so
/// writes to one padded value never invalidate the line another one lives on.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// How many stripes to spread per-thread state over: a power of two, about one per CPU.
pub(crate) fn stripe_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, usize::from)
        .clamp(1, 64)
        .next_power_of_two()
}

/// This thread's stripe among `count` (a power of two): threads take stripes round-robin on
/// first use, so a few busy threads rarely share one.
pub(crate) fn this_thread_stripe(count: usize) -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let index = STRIPE.with(|stripe| {
        let mut index = stripe.get();
        if index == usize::MAX {
            index = NEXT.fetch_add(1, Ordering::Relaxed);
            stripe.set(index);
        }
        index
    });
    index & (count - 1)
}
