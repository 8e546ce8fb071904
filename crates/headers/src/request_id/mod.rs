//! The request id middleware: keeps a trusted client's id or generates one, stores it as
//! [`RequestId`](gateway_core::RequestId), forwards it upstream and returns it to the client.
//!
//! [`settings`] holds what the config names too (whose ids to trust, the defaults); the
//! middleware is in the other submodules.

mod assign;
mod future;
mod generator;
mod layer;
mod service;
pub(crate) mod settings;

pub use future::RequestIdFuture;
pub use layer::SetRequestIdLayer;
pub use service::SetRequestId;
pub use settings::{DEFAULT_HEADER, DEFAULT_MAX_LENGTH, RequestIdStats, TrustIncoming};
