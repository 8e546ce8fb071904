//! From config to middleware: the one place that makes a breaker of a config.

use super::{BreakerConfig, ConfigError};
use crate::breaker::CircuitBreaker;

impl CircuitBreaker {
    /// A breaker with the given settings.
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Ok(Self::with_policy(None, config.policy()?))
    }

    /// A breaker whose transitions are logged under `name` (the upstream's name).
    pub fn named(name: impl Into<Box<str>>, config: BreakerConfig) -> Result<Self, ConfigError> {
        Ok(Self::with_policy(Some(name.into()), config.policy()?))
    }
}
