//! The last config reloads, for the dashboard: when, how it ended, and the error line of a
//! failed one (the operator who broke the file wants to see where without reading logs).

use std::sync::Mutex;
use std::time::SystemTime;

use super::history::Ring;

/// Reloads remembered.
pub(crate) const KEPT: usize = 10;

/// One reload attempt.
#[derive(Clone, Debug, Default)]
pub(crate) struct Reload {
    /// When it finished.
    pub(crate) at: Option<SystemTime>,
    /// The config version it swapped in; `None` when it failed.
    pub(crate) version: Option<u64>,
    /// The first line of the error of a failed one.
    pub(crate) error: Option<String>,
}

/// The newest [`KEPT`] reloads.
#[derive(Debug, Default)]
pub(crate) struct ReloadLog(Mutex<Ring<Reload, KEPT>>);

impl ReloadLog {
    /// Remembers a reload's outcome.
    pub(crate) fn record(&self, outcome: Result<u64, &dyn std::fmt::Display>) {
        let (version, error) = match outcome {
            Ok(version) => (Some(version), None),
            Err(error) => {
                let text = error.to_string();
                let line = text.lines().next().unwrap_or_default().to_owned();
                (None, Some(line))
            }
        };
        self.0
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(Reload {
                at: Some(SystemTime::now()),
                version,
                error,
            });
    }

    /// The reloads remembered, newest first.
    pub(crate) fn newest_first(&self) -> Vec<Reload> {
        let ring = self.0.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut reloads: Vec<Reload> = ring.iter().cloned().collect();
        reloads.reverse();
        reloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_reloads_and_the_first_line_of_an_error() {
        let log = ReloadLog::default();
        for version in 2..14 {
            log.record(Ok(version));
        }
        log.record(Err(&"gw.toml:3:1: field `routes`: bad\nmore detail"));
        let reloads = log.newest_first();
        assert_eq!(reloads.len(), KEPT);
        assert_eq!(
            reloads[0].error.as_deref(),
            Some("gw.toml:3:1: field `routes`: bad")
        );
        assert_eq!(reloads[1].version, Some(13));
        assert_eq!(reloads[KEPT - 1].version, Some(5));
    }
}
