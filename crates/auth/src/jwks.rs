//! Keys from a JWKS endpoint: fetched over HTTP(S), swapped atomically, refreshed on a
//! schedule and when a token names an unknown `kid` (single-flight, at most once per
//! cooldown).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{BuildError, JwksError};
use crate::keys::{KeySet, VerifyingKey};

/// The largest JWKS document accepted.
const MAX_DOCUMENT: usize = 1 << 20;
/// The most keys kept from one document.
const MAX_KEYS: usize = 64;

#[cfg(feature = "jwks-https")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "jwks-https"))]
type Connector = HttpConnector;

/// Timing of fetches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JwksTiming {
    pub(crate) refresh: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) timeout: Duration,
}

/// The JWKS source: the current keys and what it takes to fetch new ones.
pub(crate) struct Jwks {
    url: Uri,
    client: Client<Connector, Empty<Bytes>>,
    algorithms: Vec<Algorithm>,
    pub(crate) timing: JwksTiming,
    /// `None` until a fetch succeeds.
    keys: ArcSwapOption<KeySet>,
    /// Bumped by every successful fetch: a request that waited for a fetch run by someone
    /// else sees it and does not fetch again.
    generation: AtomicU64,
    /// Held while fetching: the single flight.
    fetch: Mutex<FetchState>,
    refresher_started: AtomicBool,
}

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_document: Option<Bytes>,
}

/// The result of a successful fetch.
pub(crate) enum Fetched {
    /// New keys are in place (trust changed: cached verifications must go).
    Changed(usize),
    /// The document did not change.
    Unchanged(usize),
}

impl Jwks {
    pub(crate) fn new(
        url: Uri,
        algorithms: Vec<Algorithm>,
        timing: JwksTiming,
    ) -> Result<Self, BuildError> {
        let https = url.scheme_str() == Some("https");
        Ok(Self {
            client: client(timing.timeout, https)?,
            url,
            algorithms,
            timing,
            keys: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            fetch: Mutex::new(FetchState::default()),
            refresher_started: AtomicBool::new(false),
        })
    }

    /// The keys of the last successful fetch, if any.
    pub(crate) fn keys(&self) -> Option<Arc<KeySet>> {
        self.keys.load_full()
    }

    pub(crate) fn has_keys(&self) -> bool {
        self.keys.load().is_some()
    }

    pub(crate) fn refresher_started(&self) -> bool {
        self.refresher_started.load(Ordering::Relaxed)
    }

    /// Marks the background refresher as started; true for the one caller that should
    /// spawn it.
    pub(crate) fn claim_refresher(&self) -> bool {
        !self.refresher_started.swap(true, Ordering::AcqRel)
    }

    /// Fetches for a token whose key is unknown: waits for a fetch already running rather
    /// than starting another, and fetches at most once per cooldown.
    pub(crate) async fn refresh_for_unknown_key(&self) -> Result<Fetched, JwksError> {
        let seen = self.generation.load(Ordering::Acquire);
        let mut state = self.fetch.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return Ok(Fetched::Unchanged(self.keys().map_or(0, |k| k.len())));
        }
        self.fetch_locked(&mut state, self.timing.cooldown).await
    }

    /// Fetches unless the last attempt is more recent than the cooldown.
    pub(crate) async fn refresh(&self) -> Result<Fetched, JwksError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state, self.timing.cooldown).await
    }

    /// The background refresher's fetch: on its own schedule, whatever the cooldown, but
    /// not right after another fetch (e.g. by the request that spawned the refresher).
    pub(crate) async fn scheduled_refresh(&self) -> Result<Fetched, JwksError> {
        let mut state = self.fetch.lock().await;
        let gap = self.timing.cooldown.min(self.timing.refresh / 2);
        self.fetch_locked(&mut state, gap).await
    }

    async fn fetch_locked(
        &self,
        state: &mut FetchState,
        min_gap: Duration,
    ) -> Result<Fetched, JwksError> {
        if state
            .last_attempt
            .is_some_and(|last| last.elapsed() < min_gap)
        {
            return Err(JwksError::CoolingDown);
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch_document().await.and_then(|document| {
            if state.last_document.as_ref() == Some(&document) {
                return Ok(Fetched::Unchanged(self.keys().map_or(0, |k| k.len())));
            }
            let keys = parse_key_set(&document, &self.algorithms)?;
            let count = keys.len();
            self.keys.store(Some(Arc::new(keys)));
            state.last_document = Some(document);
            Ok(Fetched::Changed(count))
        });
        match &result {
            Ok(_) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the current keys")
            }
        }
        result
    }

    async fn fetch_document(&self) -> Result<Bytes, JwksError> {
        let request = Request::get(self.url.clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/jwk-set+json, application/json"),
            )
            .header(USER_AGENT, HeaderValue::from_static("gateway-auth"))
            .body(Empty::new())
            .map_err(|e| JwksError::Request(e.to_string()))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| JwksError::Request(e.to_string()))?;
            if response.status() != StatusCode::OK {
                return Err(JwksError::Status(response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| JwksError::Document(e.to_string()))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.timing.timeout, fetch)
            .await
            .map_err(|_| JwksError::Timeout)?
    }
}

fn client(timeout: Duration, https: bool) -> Result<Client<Connector, Empty<Bytes>>, BuildError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(timeout));
    #[cfg(feature = "jwks-https")]
    let connector = {
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if https {
            builder
                .with_provider_and_native_roots(provider)
                .map_err(|e| BuildError::Https(e.to_string()))?
        } else {
            // Plain http: no need to load (or require) the system's root certificates.
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| BuildError::Https(e.to_string()))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder.with_tls_config(config)
        };
        builder.https_or_http().enable_http1().wrap_connector(http)
    };
    #[cfg(not(feature = "jwks-https"))]
    let connector = {
        debug_assert!(
            !https,
            "https is rejected by config validation without the feature"
        );
        http
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector))
}

/// Turns a JWKS document into verification keys; keys that cannot serve (encryption keys,
/// symmetric keys, unsupported types or curves, algorithms not allowed) are skipped.
pub(crate) fn parse_key_set(
    document: &[u8],
    algorithms: &[Algorithm],
) -> Result<KeySet, JwksError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document =
        serde_json::from_slice(document).map_err(|e| JwksError::Document(e.to_string()))?;
    let keys: Vec<VerifyingKey> = doc
        .keys
        .into_iter()
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(|jwk| verifying_key(&jwk, algorithms))
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err(JwksError::NoUsableKeys);
    }
    Ok(KeySet::new(keys))
}

fn verifying_key(jwk: &Jwk, algorithms: &[Algorithm]) -> Option<VerifyingKey> {
    let common = &jwk.common;
    if matches!(
        common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_) => {}
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {}
        // Symmetric keys are never published for verification, and a gateway that took them
        // would let the JWKS host mint tokens with a secret everyone can fetch.
        _ => return None,
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    match common.key_algorithm {
        None => VerifyingKey::new(common.key_id.as_deref(), &key, algorithms),
        Some(declared) => {
            let alg = Algorithm::try_from(declared)
                .ok()
                .filter(|alg| algorithms.contains(alg))?;
            VerifyingKey::new(common.key_id.as_deref(), &key, &[alg])
        }
    }
}
