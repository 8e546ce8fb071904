//! Checks queued per thread, and sent to Redis in batches: one script call for all the
//! checks that queued up while the previous batch was on its way.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use fred::clients::Pool;
use fred::prelude::{ClientLike, Options, Value};
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};
use tokio::sync::{Notify, oneshot};

use super::error::StoreError;
use super::script::{Granted, ScriptKind, parse_reply, push_args};
use crate::policy::Kind;

/// The most keys one script call counts: a script blocks Redis while it runs.
const MAX_BATCH: usize = 128;

/// What the batchers need of their store.
pub(super) struct Shared {
    /// Tells the store apart in the threads' queue lists.
    pub(super) id: u64,
    pub(super) pool: Pool,
    pub(super) timeout: Duration,
    pub(super) cluster: bool,
    /// By `ScriptKind`.
    pub(super) scripts: [Script; 3],
    /// Every thread's queue, to stop their batchers when the store goes.
    pub(super) queues: Mutex<Vec<Weak<Queue>>>,
}

/// One thread's checks waiting to be sent, and its batcher's wake-up.
///
/// A queue per thread: on a gateway worker (a current-thread runtime) the checks of all the
/// requests that thread is serving collect in its queue while the batcher waits its turn on
/// the same thread, so enqueuing never wakes another thread and a batch costs one hand-off to
/// the Redis connection, not one per request.
#[derive(Default)]
pub(super) struct Queue {
    checks: Mutex<Vec<Pending>>,
    pub(super) wake: Notify,
    /// The batcher has stopped (its store was dropped or its runtime shut down).
    pub(super) closed: AtomicBool,
}

thread_local! {
    /// This thread's queue of each store (by store id).
    static QUEUES: RefCell<Vec<(u64, Arc<Queue>)>> = const { RefCell::new(Vec::new()) };
}

/// One check waiting for its batch.
pub(super) struct Pending {
    pub(super) key: Bytes,
    pub(super) policy: Kind,
    /// Hits counted, or with `lease`, hits asked for.
    pub(super) cost: u32,
    pub(super) lease: bool,
    pub(super) reply: oneshot::Sender<Result<Granted, StoreError>>,
}

/// Puts a check in this thread's queue, starting the thread's batcher on first use.
pub(super) fn enqueue(shared: &Arc<Shared>, check: Pending) {
    QUEUES.with_borrow_mut(|queues| {
        // Forget the queues of dropped stores and stopped batchers.
        queues.retain(|(_, queue)| !queue.closed.load(Ordering::Acquire));
        let queue = match queues.iter().find(|(id, _)| *id == shared.id) {
            Some((_, queue)) => queue,
            None => {
                let queue = Arc::new(Queue::default());
                let mut all = shared.queues.lock().unwrap_or_else(PoisonError::into_inner);
                all.retain(|queue| queue.strong_count() > 0);
                all.push(Arc::downgrade(&queue));
                drop(all);
                tokio::spawn(batch_checks(Arc::downgrade(shared), Arc::clone(&queue)));
                queues.push((shared.id, queue));
                &queues[queues.len() - 1].1
            }
        };
        let first = {
            let mut checks = queue.checks.lock().unwrap_or_else(PoisonError::into_inner);
            checks.push(check);
            checks.len() == 1
        };
        // The batcher is woken once per batch; a wake-up while it is busy is kept.
        if first {
            queue.wake.notify_one();
        }
    });
}

/// Marks its queue closed when the batcher stops, also when its runtime drops it.
struct CloseOnDrop(Arc<Queue>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::Release);
        // Checks left behind get `Disconnected` from their dropped reply senders.
        self.0
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Takes the queued checks whenever there are some and sends them, one script call per
/// algorithm (and per hash slot in a cluster), without waiting for earlier batches' answers.
async fn batch_checks(shared: Weak<Shared>, queue: Arc<Queue>) {
    let queue = CloseOnDrop(queue);
    let mut taken = Vec::new();
    loop {
        queue.0.wake.notified().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        std::mem::swap(
            &mut taken,
            &mut *queue
                .0
                .checks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        // Checks whose requests already gave up need no round trip.
        taken.retain(|pending| !pending.reply.is_closed());
        while !taken.is_empty() {
            let batch = take_batch(&mut taken, shared.cluster);
            tokio::spawn(run_batch(Arc::clone(&shared), batch));
        }
    }
}

/// Removes from `checks` up to [`MAX_BATCH`] checks that one script call can count: those of
/// the first check's algorithm (and, in a cluster, its hash slot).
fn take_batch(checks: &mut Vec<Pending>, cluster: bool) -> Vec<Pending> {
    let first = &checks[0];
    let script = ScriptKind::of(first.policy, first.lease);
    let slot = cluster.then(|| fred::util::redis_keyslot(&first.key));
    let mut batch = Vec::with_capacity(checks.len().min(MAX_BATCH));
    let mut index = 0;
    while index < checks.len() && batch.len() < MAX_BATCH {
        let check = &checks[index];
        let same = ScriptKind::of(check.policy, check.lease) == script
            && slot.is_none_or(|slot| fred::util::redis_keyslot(&check.key) == slot);
        if same {
            batch.push(checks.swap_remove(index));
        } else {
            index += 1;
        }
    }
    batch
}

/// Sends one batch and hands each check its outcome.
async fn run_batch(shared: Arc<Shared>, batch: Vec<Pending>) {
    // A check whose connection broke is not sent again, and not kept for after a reconnect
    // either: by then `on_error` has answered its request, and running it would count a
    // request twice.
    let client = shared.pool.next_connected().with_options(&Options {
        fail_fast: true,
        timeout: Some(shared.timeout),
        ..Options::default()
    });
    let kind = ScriptKind::of(batch[0].policy, batch[0].lease);
    let (script, per_key) = (&shared.scripts[kind as usize], kind.reply_width());
    // `EVALSHA script numkeys KEYS.. ARGV..`, or with the source for `EVAL`. As custom
    // commands because fred's script calls take no per-command options; routed in a cluster
    // by the slot of the keys (a batch's keys share one).
    let slot = ClusterHash::Custom(fred::util::redis_keyslot(&batch[0].key));
    let command = |name: &'static str, script: Value| {
        let mut args = Vec::with_capacity(2 + batch.len() * 4);
        args.push(script);
        args.push(Value::Integer(batch.len() as i64));
        args.extend(batch.iter().map(|check| Value::Bytes(check.key.clone())));
        for check in &batch {
            push_args(&mut args, check.policy, check.cost, check.lease);
        }
        client.custom::<Value, Value>(CustomCommand::new_static(name, slot.clone(), false), args)
    };
    let call = async {
        match command("EVALSHA", Value::from(script.sha1().clone())).await {
            // The server lost its scripts (restart, SCRIPT FLUSH): send the source, which also
            // caches it again for the next EVALSHA.
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                let lua = script.lua().cloned().unwrap_or_default();
                command("EVAL", Value::from(lua)).await
            }
            reply => reply,
        }
    };
    // fred drops a command that timed out before it was written; one already written cannot
    // be called back, and its late reply goes nowhere.
    let Ok(reply) = tokio::time::timeout(shared.timeout, call).await else {
        return;
    };
    let numbers = match reply {
        Ok(Value::Array(values)) if values.len() == batch.len() * per_key => {
            let numbers: Option<Vec<i64>> = values.iter().map(Value::as_i64).collect();
            numbers.ok_or(StoreError::UnexpectedReply(Value::Array(values)))
        }
        Ok(other) => Err(StoreError::UnexpectedReply(other)),
        Err(e) => Err(StoreError::Redis(e)),
    };
    match numbers {
        Ok(numbers) => {
            for (check, numbers) in batch.into_iter().zip(numbers.chunks_exact(per_key)) {
                let _ = check
                    .reply
                    .send(parse_reply(kind, check.policy, check.cost, numbers));
            }
        }
        Err(error) => {
            for check in batch {
                let _ = check.reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Kind;

    fn pending(key: &str, policy: Kind) -> Pending {
        Pending {
            key: Bytes::copy_from_slice(key.as_bytes()),
            policy,
            cost: 1,
            lease: false,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn batches_group_one_script_and_one_slot() {
        let fixed = Kind::FixedWindow {
            limit: 5,
            window_ms: 1000,
        };
        let bucket = Kind::TokenBucket {
            capacity: 3,
            interval_us: 400_000,
        };
        let mut checks: Vec<_> = (0..300)
            .map(|i| {
                pending(
                    &format!("{{a}}:{i}"),
                    if i % 3 == 0 { bucket } else { fixed },
                )
            })
            .collect();
        let sizes: Vec<_> = std::iter::from_fn(|| {
            (!checks.is_empty()).then(|| {
                let batch = take_batch(&mut checks, false);
                let kinds: std::collections::HashSet<_> = batch
                    .iter()
                    .map(|check| matches!(check.policy, Kind::TokenBucket { .. }))
                    .collect();
                assert_eq!(kinds.len(), 1, "one script per batch");
                batch.len()
            })
        })
        .collect();
        assert_eq!(sizes, [100, 128, 72], "at most MAX_BATCH keys per call");

        // In a cluster, a script's keys must share a hash slot.
        let mut checks = vec![
            pending("{a}:1", fixed),
            pending("{b}:1", fixed),
            pending("{a}:2", fixed),
        ];
        let batch = take_batch(&mut checks, true);
        let keys: Vec<_> = batch.iter().map(|check| check.key.clone()).collect();
        assert_eq!(keys, ["{a}:1", "{a}:2"]);
        assert_eq!(checks.len(), 1);
    }
}
