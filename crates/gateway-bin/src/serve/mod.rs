//! Serving connections: listeners and worker event loops, the per-connection service, graceful
//! drain, the header-read timer, idle keep-alive connections without buffers, TLS
//! termination, and the admin listener with its token check and dashboard.

pub(crate) mod admin;
pub(crate) mod admin_token;
pub(crate) mod connection;
pub(crate) mod dashboard;
pub(crate) mod drain;
pub(crate) mod header_timer;
pub(crate) mod keep_alive;
pub(crate) mod listener;
pub(crate) mod memory;
pub(crate) mod tls;
