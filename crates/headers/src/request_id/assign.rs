//! How a request gets its id: what every service of one layer shares.

use std::sync::atomic::{AtomicU64, Ordering};

use gateway_core::{PeerAddr, RequestId, TrustedProxies};
use http::{HeaderName, HeaderValue, Request};

use super::generator::IdGenerator;
use super::settings::{RequestIdStats, TrustIncoming};

/// The settings of a layer, its generator and its counters.
#[derive(Debug)]
pub(super) struct Assigner {
    pub(super) settings: Settings,
    generator: IdGenerator,
    kept: AtomicU64,
    replaced: AtomicU64,
}

#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) header: HeaderName,
    pub(super) trust: TrustIncoming,
    pub(super) trusted: TrustedProxies,
    pub(super) max_length: usize,
    pub(super) echo: bool,
    pub(super) response_extension: bool,
}

impl Assigner {
    pub(super) fn new(settings: Settings) -> Self {
        Self {
            settings,
            generator: IdGenerator::new(),
            kept: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
        }
    }

    pub(super) fn stats(&self) -> RequestIdStats {
        RequestIdStats {
            generated: self.generator.generated(),
            kept: self.kept.load(Ordering::Relaxed),
            replaced: self.replaced.load(Ordering::Relaxed),
        }
    }

    /// The request's id, now also its [`RequestId`] extension and its only id header.
    pub(super) fn assign<B>(&self, request: &mut Request<B>) -> HeaderValue {
        let id = match request.extensions().get::<RequestId>() {
            Some(assigned) => assigned.0.clone(),
            None => {
                let id = self
                    .incoming(request)
                    .unwrap_or_else(|| self.generator.next_id());
                request.extensions_mut().insert(RequestId(id.clone()));
                id
            }
        };
        // Replaces every copy the client sent, so upstream sees exactly one id: this one.
        let _ = request
            .headers_mut()
            .try_insert(&self.settings.header, id.clone());
        id
    }

    fn incoming<B>(&self, request: &Request<B>) -> Option<HeaderValue> {
        let settings = &self.settings;
        let mut values = request.headers().get_all(&settings.header).iter();
        let first = values.next()?;
        let kept = values.next().is_none()
            && self.trusts(request)
            && first.len() <= settings.max_length
            && is_sane(first);
        if kept {
            self.kept.fetch_add(1, Ordering::Relaxed);
            Some(first.clone())
        } else {
            self.replaced.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    fn trusts<B>(&self, request: &Request<B>) -> bool {
        match self.settings.trust {
            TrustIncoming::Always => true,
            TrustIncoming::Never => false,
            TrustIncoming::TrustedProxies => request
                .extensions()
                .get::<PeerAddr>()
                .is_some_and(|peer| self.settings.trusted.is_trusted(peer.0.ip())),
        }
    }
}

/// Non-empty visible ASCII: nothing that could confuse a log line or a downstream parser.
fn is_sane(id: &HeaderValue) -> bool {
    !id.is_empty() && id.as_bytes().iter().all(|b| (b'!'..=b'~').contains(b))
}
