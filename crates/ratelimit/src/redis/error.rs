//! Why the store gave no answer, and why it could not be made.

use std::time::Duration;

use fred::prelude::{Error as FredError, Value};

/// Why Redis gave no answer.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("not connected to Redis")]
    Disconnected,
    #[error("no answer from Redis within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(#[from] FredError),
    #[error("unexpected reply from the rate-limit script: {0:?}")]
    UnexpectedReply(Value),
}

/// The error of connecting to Redis.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL or options were refused by the client.
    #[error("invalid Redis configuration: {0}")]
    Config(#[source] FredError),
    /// Connecting starts background tasks, which needs a Tokio runtime.
    #[error("the Redis rate-limit backend must be created inside a Tokio runtime")]
    NoRuntime,
}
