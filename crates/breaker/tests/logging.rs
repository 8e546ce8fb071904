//! Every transition is logged once: a warning when the circuit opens, info otherwise.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_breaker::{BreakerConfig, CircuitBreaker};
use tokio::time::advance;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One logged event: its level and its fields rendered as `name=value`.
#[derive(Debug, Clone)]
struct Logged {
    level: Level,
    fields: Vec<String>,
}

impl Logged {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
    }
}

/// A subscriber that keeps every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Logged>>>);

struct Fields<'a>(&'a mut Vec<String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.push(format!("{}={value:?}", field.name()));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push(format!("{}={value}", field.name()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            fields,
        });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn each_transition_logs_one_line_with_the_breakers_name() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let config = BreakerConfig::default()
        .failure_threshold(2)
        .open_for(Duration::from_secs(3));
    let breaker = CircuitBreaker::named("users", config).unwrap();

    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().success();
    assert!(
        capture.0.lock().unwrap().is_empty(),
        "no transition, no log"
    );

    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap_err();
    advance(Duration::from_secs(3)).await;
    breaker.try_acquire().unwrap().success();

    let logged = capture.0.lock().unwrap().clone();
    let summary: Vec<_> = logged
        .iter()
        .map(|l| {
            (
                l.level,
                l.field("from").unwrap(),
                l.field("breaker").unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (Level::WARN, "closed", "users"),
            (Level::INFO, "open", "users"),
            (Level::INFO, "half_open", "users"),
        ]
    );
    assert_eq!(logged[0].field("open_for"), Some("3s"));
    assert!(logged[0].field("message").unwrap().contains("opened"));
    assert!(logged[2].field("message").unwrap().contains("closed"));
}
