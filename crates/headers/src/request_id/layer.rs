//! The request id layer.

use std::sync::Arc;

use gateway_core::TrustedProxies;
use http::HeaderName;
use tower_layer::Layer;

use super::assign::{Assigner, Settings};
use super::service::SetRequestId;
use super::settings::{DEFAULT_HEADER, DEFAULT_MAX_LENGTH, RequestIdStats, TrustIncoming};

/// Assigns every request an id; see [`SetRequestId`].
///
/// For each request, in order:
/// 1. a [`RequestId`](gateway_core::RequestId) extension already present (set by an outer
///    layer) is used as it is;
/// 2. else the incoming header is kept when its sender is trusted ([`TrustIncoming`]) and the
///    value is sane: sent once, 1 to `max_length` bytes of visible ASCII (`!`..=`~`);
/// 3. else a new id is generated: 32 lowercase hex digits, unique, from an atomic counter
///    and per-process random keys (no lock, no syscall).
///
/// The id is stored as the [`RequestId`](gateway_core::RequestId) request extension (read by
/// `{request_id}` templates and by an access log inside this layer), set as the request header
/// (replacing what the client sent), and set on the response as the header (unless
/// `echo(false)`). A layer outside this one (an access log wrapping everything) can read the
/// echoed header, or ask for a [`RequestId`](gateway_core::RequestId) response extension with
/// [`response_extension(true)`](Self::response_extension) (off by default: it costs three
/// allocations per response).
///
/// Clones share the generator and the counters.
///
/// ```
/// use gateway_headers::SetRequestIdLayer;
/// use gateway_core::RequestId;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let service = ServiceBuilder::new().layer(SetRequestIdLayer::new()).service(service_fn(
///     |request: Request<()>| async move {
///         let id = request.extensions().get::<RequestId>().unwrap().0.clone();
///         assert_eq!(request.headers()["x-request-id"], id);
///         Ok::<_, std::convert::Infallible>(Response::new(()))
///     },
/// ));
/// let response = service.oneshot(Request::new(())).await.unwrap();
/// assert_eq!(response.headers()["x-request-id"].len(), 32);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SetRequestIdLayer {
    shared: Arc<Assigner>,
}

impl Default for SetRequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SetRequestIdLayer {
    /// `X-Request-Id`, kept from trusted proxies (none until
    /// [`trusted_proxies`](Self::trusted_proxies)), at most 128 bytes, echoed on the response.
    pub fn new() -> Self {
        Self::with_settings(Settings {
            header: DEFAULT_HEADER,
            trust: TrustIncoming::default(),
            trusted: TrustedProxies::none(),
            max_length: DEFAULT_MAX_LENGTH,
            echo: true,
            response_extension: false,
        })
    }

    fn with_settings(settings: Settings) -> Self {
        Self {
            shared: Arc::new(Assigner::new(settings)),
        }
    }

    fn configure(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.shared.settings.clone();
        change(&mut settings);
        Self::with_settings(settings)
    }

    /// The header that carries the id.
    #[must_use]
    pub fn header(self, header: HeaderName) -> Self {
        // The default name is a static one: cloning it per request then costs nothing.
        let header = if header == DEFAULT_HEADER {
            DEFAULT_HEADER
        } else {
            header
        };
        self.configure(|s| s.header = header)
    }

    /// Whose incoming id is kept.
    #[must_use]
    pub fn trust(self, trust: TrustIncoming) -> Self {
        self.configure(|s| s.trust = trust)
    }

    /// The proxies trusted under [`TrustIncoming::TrustedProxies`].
    #[must_use]
    pub fn trusted_proxies(self, trusted: TrustedProxies) -> Self {
        self.configure(|s| s.trusted = trusted)
    }

    /// The longest incoming id kept (at least 1).
    #[must_use]
    pub fn max_length(self, max_length: usize) -> Self {
        self.configure(|s| s.max_length = max_length.max(1))
    }

    /// Whether the id is set on the response.
    #[must_use]
    pub fn echo(self, echo: bool) -> Self {
        self.configure(|s| s.echo = echo)
    }

    /// Whether the id is also stored as a [`RequestId`](gateway_core::RequestId) extension of
    /// the response.
    #[must_use]
    pub fn response_extension(self, enabled: bool) -> Self {
        self.configure(|s| s.response_extension = enabled)
    }

    /// The response header the id is echoed in, unless [`echo(false)`](Self::echo).
    ///
    /// An outer layer that wants the id of each response can read it there instead of asking
    /// for the [`RequestId`](gateway_core::RequestId) response extension: the echo replaces
    /// whatever the inner services set on that header.
    pub fn echoed_header(&self) -> Option<&HeaderName> {
        let settings = &self.shared.settings;
        settings.echo.then_some(&settings.header)
    }

    /// The counters so far, shared by every service of this layer.
    pub fn stats(&self) -> RequestIdStats {
        self.shared.stats()
    }
}

impl<S> Layer<S> for SetRequestIdLayer {
    type Service = SetRequestId<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SetRequestId::new(inner, Arc::clone(&self.shared))
    }
}
