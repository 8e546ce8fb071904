//! Active health checks: every target probed on an interval from a background task; a
//! target failing enough probes in a row leaves rotation until enough pass again.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri, Version};
use tokio::task::JoinSet;

use crate::error::ProxyError;
use crate::pool;
use crate::request_body::UpstreamBody;
use crate::target::Target;
use crate::upstream::Inner;

/// Active health checks of an upstream's targets (every address of a hostname or SRV
/// name is probed on its own).
///
/// Each `interval`, a background task sends `GET path` to every target on a new
/// connection (HTTP/2 for [`h2c`](crate::UpstreamBuilder::h2c) upstreams), with the
/// target's `Host` (or [`host`](Self::host)). A probe passes when the status is expected
/// (any 2xx by default) within `timeout`, connecting included. A target that fails
/// `unhealthy_threshold` probes in a row leaves rotation until it passes
/// `healthy_threshold` in a row. When every target is unhealthy they are all used anyway
/// (fail open): refusing every request helps nobody when the checks are wrong.
///
/// The path is sent as written: a target's base path is not prepended.
#[derive(Clone, Debug)]
#[must_use = "pass it to `UpstreamBuilder::health_check`"]
pub struct HealthCheck {
    pub(crate) path: String,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: u32,
    pub(crate) unhealthy_threshold: u32,
    /// `None`: any 2xx.
    pub(crate) expect_status: Option<Box<[u16]>>,
    pub(crate) host: Option<String>,
}

impl HealthCheck {
    /// Probes of `path` (such as `/healthz`) every 5 s, 1 s timeout, 2 passes to come back,
    /// 3 failures to leave, any 2xx passing.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expect_status: None,
            host: None,
        }
    }

    /// Time between two probes of a target (default 5 s).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Time a probe may take, connecting included (default 1 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes in a row that bring an unhealthy target back (default 2).
    pub fn healthy_threshold(mut self, passes: u32) -> Self {
        self.healthy_threshold = passes;
        self
    }

    /// Failures in a row that take a target out of rotation (default 3).
    pub fn unhealthy_threshold(mut self, failures: u32) -> Self {
        self.unhealthy_threshold = failures;
        self
    }

    /// The statuses that pass (default: any 2xx).
    pub fn expect_status(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.expect_status = Some(statuses.into_iter().collect());
        self
    }

    /// The `Host` of the probes (default: the target's authority).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Checks the settings as [`UpstreamBuilder::build`](crate::UpstreamBuilder::build)
    /// will, for a config loader that reports errors before building anything.
    pub fn check(&self, upstream: &str) -> Result<(), ProxyError> {
        self.validate(upstream).map(drop)
    }

    pub(crate) fn validate(&self, upstream: &str) -> Result<ValidCheck, ProxyError> {
        let invalid = |reason: String| ProxyError::InvalidHealthCheck {
            upstream: upstream.to_owned(),
            reason,
        };
        if !self.path.starts_with('/') {
            return Err(invalid(format!(
                "the path `{}` must start with `/`",
                self.path
            )));
        }
        let path = self
            .path
            .parse::<http::uri::PathAndQuery>()
            .map_err(|_| invalid(format!("the path `{}` is not a valid path", self.path)))?;
        if self.interval.is_zero() || self.timeout.is_zero() {
            return Err(invalid(
                "the interval and timeout must be above zero".into(),
            ));
        }
        if self.healthy_threshold == 0 || self.unhealthy_threshold == 0 {
            return Err(invalid("the thresholds must be at least 1".into()));
        }
        if let Some(status) = self
            .expect_status
            .iter()
            .flatten()
            .find(|&&status| StatusCode::from_u16(status).is_err())
        {
            return Err(invalid(format!("{status} is not an HTTP status")));
        }
        let host = self
            .host
            .as_deref()
            .map(|host| {
                http::uri::Authority::try_from(host)
                    .map_err(|_| invalid(format!("the host `{host}` is not a valid host")))?;
                HeaderValue::from_str(host)
                    .map_err(|_| invalid(format!("the host `{host}` is not a valid host")))
            })
            .transpose()?;
        Ok(ValidCheck {
            settings: self.clone(),
            path,
            host,
        })
    }
}

/// A health check whose path and host are parsed.
#[derive(Debug)]
pub(crate) struct ValidCheck {
    pub(crate) settings: HealthCheck,
    path: http::uri::PathAndQuery,
    host: Option<HeaderValue>,
}

impl ValidCheck {
    fn passes(&self, status: StatusCode) -> bool {
        match &self.settings.expect_status {
            None => status.is_success(),
            Some(expected) => expected.contains(&status.as_u16()),
        }
    }
}

/// The outcome of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// An expected status.
    Passed(u16),
    /// A response with a status that is not expected.
    Status(u16),
    /// No response within the timeout.
    TimedOut,
    /// No connection, or it broke before the response.
    Unreachable,
}

impl Probe {
    /// Whether the probe passed.
    pub fn passed(self) -> bool {
        matches!(self, Self::Passed(_))
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passed(status) => write!(f, "passed ({status})"),
            Self::Status(status) => write!(f, "failed: status {status}"),
            Self::TimedOut => f.write_str("failed: timed out"),
            Self::Unreachable => f.write_str("failed: unreachable"),
        }
    }
}

/// A target's probe history, written by the health-check task and read for status.
#[derive(Debug, Default)]
pub(crate) struct ProbeRecord(Mutex<ProbeState>);

impl ProbeRecord {
    pub(crate) fn last(&self) -> Option<Probe> {
        self.0.lock().map_or(None, |state| state.last)
    }
}

/// Consecutive outcomes: the hysteresis between healthy and unhealthy.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ProbeState {
    passes: u32,
    failures: u32,
    last: Option<Probe>,
}

impl ProbeState {
    /// Records `probe` for a target that is `healthy` now; gives its new health when the
    /// probe changes it.
    pub(crate) fn record(
        &mut self,
        probe: Probe,
        healthy: bool,
        check: &HealthCheck,
    ) -> Option<bool> {
        self.last = Some(probe);
        if probe.passed() {
            self.passes = self.passes.saturating_add(1);
            self.failures = 0;
            (!healthy && self.passes >= check.healthy_threshold).then_some(true)
        } else {
            self.failures = self.failures.saturating_add(1);
            self.passes = 0;
            (healthy && self.failures >= check.unhealthy_threshold).then_some(false)
        }
    }
}

/// Probes the upstream's targets every interval until the upstream is dropped.
pub(crate) async fn run(upstream: Weak<Inner>, check: Arc<ValidCheck>) {
    let mut ticks = tokio::time::interval(check.settings.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_open = false;
    loop {
        ticks.tick().await;
        let (set, h2, name, counters) = match upstream.upgrade() {
            Some(inner) => (
                inner.targets.snapshot(),
                inner.h2c,
                inner.name.clone(),
                inner.counters.clone(),
            ),
            None => return,
        };
        let mut probes = JoinSet::new();
        for (index, target) in set.targets.iter().enumerate() {
            let (target, check) = (target.clone(), check.clone());
            probes.spawn(async move { (index, probe(&target, &check, h2).await) });
        }
        while let Some(done) = probes.join_next().await {
            let Ok((index, outcome)) = done else { continue };
            let target = &set.targets[index];
            counters.count_probe(outcome.passed());
            let change =
                target.probes.0.lock().ok().and_then(|mut state| {
                    state.record(outcome, target.is_healthy(), &check.settings)
                });
            match change {
                Some(true) => {
                    target.set_healthy(true);
                    tracing::info!(upstream = %name, target = %target, "target passes its health checks again: back in rotation");
                }
                Some(false) => {
                    target.set_healthy(false);
                    tracing::warn!(upstream = %name, target = %target, probe = %outcome, "target fails its health checks: out of rotation");
                }
                None => {}
            }
        }
        let all_unhealthy = !set.targets.is_empty() && set.targets.iter().all(|t| !t.is_healthy());
        if all_unhealthy && !failing_open {
            tracing::error!(upstream = %name, "every target fails its health checks: using them all anyway (fail open)");
        } else if !all_unhealthy && failing_open {
            tracing::info!(upstream = %name, "a target passes its health checks: no longer failing open");
        }
        failing_open = all_unhealthy;
    }
}

/// One probe of `target`, on a connection of its own.
async fn probe(target: &Arc<Target>, check: &ValidCheck, h2: bool) -> Probe {
    let timeout = check.settings.timeout;
    let host = check.host.as_ref().unwrap_or(&target.host_header);
    let attempt = async {
        let response = if h2 {
            let mut conn = pool::open_h2(target, timeout).await.ok()?;
            let scheme = if target.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let uri = Uri::builder()
                .scheme(scheme)
                .authority(host.as_bytes())
                .path_and_query(check.path.clone())
                .build()
                .ok()?;
            let mut request = Request::new(UpstreamBody::Empty);
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_2;
            request
                .headers_mut()
                .insert(USER_AGENT, HeaderValue::from_static("gateway-health-check"));
            conn.send_request(request).await.ok()?
        } else {
            let mut conn = pool::open_h1(target, timeout, false).await.ok()?;
            let mut request = Request::new(UpstreamBody::Empty);
            *request.uri_mut() = Uri::from(check.path.clone());
            let headers = request.headers_mut();
            headers.insert(HOST, host.clone());
            headers.insert(USER_AGENT, HeaderValue::from_static("gateway-health-check"));
            // The connection is the probe's own: the target may free it at once.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
            conn.send_request(request).await.ok()?
        };
        Some(response.status())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Probe::TimedOut,
        Ok(None) => Probe::Unreachable,
        Ok(Some(status)) if check.passes(status) => Probe::Passed(status.as_u16()),
        Ok(Some(status)) => Probe::Status(status.as_u16()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> HealthCheck {
        HealthCheck::new("/healthz")
            .healthy_threshold(2)
            .unhealthy_threshold(3)
    }

    /// Feeds probes to a target's state the way the task does; gives its health after each.
    fn replay(probes: &[Probe]) -> Vec<bool> {
        let check = check();
        let mut state = ProbeState::default();
        let mut healthy = true;
        probes
            .iter()
            .map(|&probe| {
                if let Some(now) = state.record(probe, healthy, &check) {
                    healthy = now;
                }
                healthy
            })
            .collect()
    }

    const PASS: Probe = Probe::Passed(200);
    const FAIL: Probe = Probe::Status(503);

    #[test]
    fn leaves_after_three_failures_in_a_row_and_returns_after_two_passes() {
        assert_eq!(
            replay(&[FAIL, FAIL, FAIL, PASS, PASS]),
            [true, true, false, false, true]
        );
    }

    #[test]
    fn a_pass_resets_the_failure_count_and_a_failure_the_pass_count() {
        assert_eq!(
            replay(&[FAIL, FAIL, PASS, FAIL, FAIL, Probe::TimedOut]),
            [true, true, true, true, true, false]
        );
        assert_eq!(
            replay(&[FAIL, FAIL, FAIL, PASS, Probe::Unreachable, PASS, PASS]),
            [true, true, false, false, false, false, true]
        );
    }

    #[test]
    fn expected_statuses_replace_any_2xx() {
        let any = check().validate("users").unwrap();
        assert!(any.passes(StatusCode::NO_CONTENT));
        assert!(!any.passes(StatusCode::SERVICE_UNAVAILABLE));
        let only = check().expect_status([200, 301]).validate("users").unwrap();
        assert!(only.passes(StatusCode::MOVED_PERMANENTLY));
        assert!(!only.passes(StatusCode::NO_CONTENT));
    }

    #[test]
    fn bad_settings_are_refused_with_the_upstream_named() {
        for (check, reason) in [
            (HealthCheck::new("healthz"), "must start with `/`"),
            (HealthCheck::new("/a b"), "not a valid path"),
            (check().healthy_threshold(0), "at least 1"),
            (check().interval(Duration::ZERO), "above zero"),
            (check().expect_status([42]), "42 is not an HTTP status"),
            (check().host("a b"), "not a valid host"),
        ] {
            let err = check.validate("users").unwrap_err().to_string();
            assert!(err.contains(reason) && err.contains("users"), "{err}");
        }
    }
}
