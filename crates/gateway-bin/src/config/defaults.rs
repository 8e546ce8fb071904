//! The default of every optional setting.

use std::time::Duration;

use gateway_core::config::{ByteSize, HumanDuration};
use toml::Spanned;

use super::AuthMode;

pub(super) fn max_body() -> ByteSize {
    ByteSize(10 << 20)
}
pub(super) fn request_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn header_read_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
pub(super) fn release_idle_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
pub(super) fn max_header_size() -> ByteSize {
    ByteSize(64 << 10)
}
pub(super) fn max_headers() -> Spanned<usize> {
    Spanned::new(0..0, 100)
}
pub(super) fn upgrades() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["websocket".to_owned()])
}
pub(super) fn shutdown_grace() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
pub(super) fn upstream_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
pub(super) fn idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(90))
}
/// As nginx's `proxy_read_timeout`.
pub(super) fn body_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
pub(super) fn resolve_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
pub(super) fn no_targets() -> Spanned<Vec<super::TargetEntry>> {
    Spanned::new(0..0, Vec::new())
}
pub(super) fn weight() -> u32 {
    1
}
pub(super) fn health_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
pub(super) fn health_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
pub(super) fn healthy_threshold() -> u32 {
    2
}
pub(super) fn unhealthy_threshold() -> u32 {
    3
}
pub(super) fn resolver_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
pub(super) fn resolver_attempts() -> usize {
    2
}
pub(super) fn eject_for() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
pub(super) fn auth() -> Spanned<AuthMode> {
    Spanned::new(0..0, AuthMode::None)
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn export_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
pub(super) fn service_name() -> String {
    "gateway".to_owned()
}
pub(super) fn sample_ratio() -> Spanned<f64> {
    Spanned::new(0..0, 1.0)
}
