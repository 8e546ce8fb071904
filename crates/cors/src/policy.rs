//! The built policy: origin matching, the preflight decision, and the header values computed
//! once at build time.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::Problem;
use gateway_core::config::HumanDuration;
use gateway_core::problem::PROBLEM_JSON;
use http::header::Entry;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, CONTENT_TYPE, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::config::{CorsConfig, DEFAULT_ALLOW_METHODS};
use crate::error::CorsError;
use crate::origin::{Origin, OriginPattern, Serialized};

const ANY: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);

/// Marks a response by which the layer refused a preflight (403, problem+json), in the
/// response's extensions, for metrics and access logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorsRejected;

/// A built CORS policy: which origins, methods and headers are allowed, with every header
/// value it sends already computed.
///
/// Made by [`CorsConfig::build`] or [`CorsPolicy::builder`]; cloning shares it (an [`Arc`]).
#[derive(Clone)]
pub struct CorsPolicy {
    inner: Arc<Inner>,
}

struct Inner {
    origins: AllowOrigins,
    methods: Box<[Method]>,
    headers: Box<[HeaderName]>,
    credentials: bool,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

enum AllowOrigins {
    /// `["*"]`: answered with `*` (never with credentials).
    Any,
    /// Exact origins and wildcard-subdomain patterns, answered with the request's origin.
    List {
        patterns: Box<[OriginPattern]>,
        /// The same patterns as browsers send the origins they match: most requests match
        /// one byte for byte, and only the rest are parsed.
        serialized: Box<[Serialized]>,
    },
}

impl fmt::Debug for CorsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut debug = f.debug_struct("CorsPolicy");
        match &inner.origins {
            AllowOrigins::Any => debug.field("origins", &"*"),
            AllowOrigins::List { patterns, .. } => debug.field("origins", patterns),
        };
        debug
            .field("methods", &inner.methods)
            .field("headers", &inner.headers)
            .field("expose_headers", &inner.expose_headers)
            .field("credentials", &inner.credentials)
            .field("max_age", &inner.max_age)
            .finish()
    }
}

impl CorsPolicy {
    /// A builder, for policies made in code rather than read from the config.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gateway_cors::CorsPolicy;
    ///
    /// let policy = CorsPolicy::builder()
    ///     .allow_origin("https://app.example.com")
    ///     .allow_methods(["GET", "PUT"])
    ///     .allow_header("content-type")
    ///     .allow_credentials(true)
    ///     .max_age(Duration::from_secs(600))
    ///     .build()
    ///     .unwrap();
    /// assert!(policy.allows_origin("https://app.example.com"));
    /// assert!(!policy.allows_origin("https://evil.example.com"));
    /// ```
    pub fn builder() -> CorsPolicyBuilder {
        CorsPolicyBuilder::default()
    }

    /// Whether `origin` (the text of an `Origin` header) is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.inner.allows(origin.as_bytes())
    }

    /// Whether credentialed requests are allowed (`allow_credentials`).
    pub fn allows_credentials(&self) -> bool {
        self.inner.credentials
    }

    pub(crate) fn from_config(config: &CorsConfig) -> Result<Self, CorsError> {
        let origins = origins(&config.allow_origins, config.allow_credentials)?;
        let methods = methods(&config.allow_methods)?;
        let headers = header_names("allow_headers", &config.allow_headers)?;
        let exposed = header_names("expose_headers", &config.expose_headers)?;
        let inner = Inner {
            origins,
            allow_methods: join(methods.iter().map(Method::as_str))
                .expect("method names are valid header values"),
            allow_headers: join(headers.iter().map(HeaderName::as_str)),
            expose_headers: join(exposed.iter().map(HeaderName::as_str)),
            max_age: config
                .max_age
                .map(|age| HeaderValue::from(age.get().as_secs())),
            methods: methods.into_boxed_slice(),
            headers: headers.into_boxed_slice(),
            credentials: config.allow_credentials,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`): 204 with the CORS headers, or 403.
    pub(crate) fn preflight(
        &self,
        origin: &HeaderValue,
        method: &HeaderValue,
        request: &HeaderMap,
    ) -> Response<Full<Bytes>> {
        let inner = &*self.inner;
        if !inner.allows(origin.as_bytes()) {
            return refusal(Refusal::Origin);
        }
        if !inner
            .methods
            .iter()
            .any(|allowed| allowed.as_str().as_bytes() == method.as_bytes())
        {
            return refusal(Refusal::Method);
        }
        if !request
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .all(|value| inner.allows_headers(value))
        {
            return refusal(Refusal::Header);
        }
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, inner.allow_origin(origin));
        headers.insert(ACCESS_CONTROL_ALLOW_METHODS, inner.allow_methods.clone());
        if let Some(allow_headers) = &inner.allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers.clone());
        }
        if let Some(max_age) = &inner.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if inner.credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        headers.insert(VARY, VARY_PREFLIGHT);
        response
    }

    /// What to do to the response of an actual (not preflight) request with this `Origin`.
    pub(crate) fn actual(&self, origin: &HeaderValue) -> Actual {
        if self.inner.allows(origin.as_bytes()) {
            Actual::Allowed {
                allow_origin: self.inner.allow_origin(origin),
                policy: self.clone(),
            }
        } else {
            Actual::Refused
        }
    }
}

impl Inner {
    fn allows(&self, origin: &[u8]) -> bool {
        match &self.origins {
            // The answer is `*`, whatever the origin says, so any text (even `null`) is fine.
            AllowOrigins::Any => true,
            AllowOrigins::List {
                patterns,
                serialized,
            } => {
                serialized.iter().any(|pattern| pattern.matches(origin))
                    || std::str::from_utf8(origin)
                        .ok()
                        .and_then(|text| Origin::parse(text).ok())
                        .is_some_and(|origin| {
                            patterns.iter().any(|pattern| pattern.matches(&origin))
                        })
            }
        }
    }

    /// The `Access-Control-Allow-Origin` value for an allowed origin.
    fn allow_origin(&self, origin: &HeaderValue) -> HeaderValue {
        match self.origins {
            AllowOrigins::Any => ANY,
            AllowOrigins::List { .. } => origin.clone(),
        }
    }

    /// Whether every header named in an `Access-Control-Request-Headers` value is allowed.
    fn allows_headers(&self, value: &HeaderValue) -> bool {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .map(trim)
            .filter(|name| !name.is_empty())
            .all(|name| {
                self.headers
                    .iter()
                    .any(|allowed| allowed.as_str().as_bytes().eq_ignore_ascii_case(name))
            })
    }
}

/// What the response of an actual request gets, decided when the request arrives.
#[derive(Debug, Default)]
pub(crate) enum Actual {
    /// No `Origin`: nothing.
    #[default]
    Untouched,
    /// An allowed origin: the CORS headers, replacing any the inner service sent.
    Allowed {
        allow_origin: HeaderValue,
        policy: CorsPolicy,
    },
    /// An origin not allowed: no CORS headers (any the inner service sent are removed), and
    /// `Vary: Origin`, since another origin would get them.
    Refused,
}

impl Actual {
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        match self {
            Self::Untouched => {}
            Self::Allowed {
                allow_origin,
                policy,
            } => {
                let inner = &*policy.inner;
                // Upstreams rarely send CORS headers of their own: one pass over the names
                // spares the hashed removals of headers that are not there.
                let stale = has_cors_headers(headers);
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
                if inner.credentials {
                    headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
                } else if stale {
                    headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
                }
                match &inner.expose_headers {
                    Some(exposed) => {
                        headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone());
                    }
                    None if stale => {
                        headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
                    }
                    None => {}
                }
                // With `*` every origin gets the same answer, so caches need not tell them
                // apart.
                if let AllowOrigins::List { .. } = inner.origins {
                    vary_origin(headers);
                }
            }
            Self::Refused => {
                if has_cors_headers(headers) {
                    headers.remove(ACCESS_CONTROL_ALLOW_ORIGIN);
                    headers.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
                    headers.remove(ACCESS_CONTROL_EXPOSE_HEADERS);
                }
                vary_origin(headers);
            }
        }
    }
}

/// Whether the response has any of the CORS headers that the policy replaces.
fn has_cors_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|name| {
        name == ACCESS_CONTROL_ALLOW_ORIGIN
            || name == ACCESS_CONTROL_ALLOW_CREDENTIALS
            || name == ACCESS_CONTROL_EXPOSE_HEADERS
    })
}

/// Adds `Origin` to `Vary`, unless it (or `*`) is there already. An existing `Vary` (one or
/// more lines) becomes one line ending in `, Origin`: the only formatting done per response.
fn vary_origin(headers: &mut HeaderMap) {
    // One lookup: most responses have no `Vary`, and get it here.
    let mut entry = match headers.entry(VARY) {
        Entry::Vacant(entry) => {
            entry.insert(VARY_ORIGIN);
            return;
        }
        Entry::Occupied(entry) => entry,
    };
    let mut joined = Vec::new();
    for value in entry.iter() {
        let mut tokens = value.as_bytes().split(|&b| b == b',').map(trim);
        if tokens.any(|token| token == b"*" || token.eq_ignore_ascii_case(b"origin")) {
            return;
        }
        let value = trim(value.as_bytes());
        if !value.is_empty() {
            joined.extend_from_slice(value);
            joined.extend_from_slice(b", ");
        }
    }
    if joined.is_empty() {
        entry.insert(VARY_ORIGIN);
        return;
    }
    joined.extend_from_slice(b"Origin");
    match HeaderValue::from_maybe_shared(Bytes::from(joined)) {
        Ok(value) => {
            entry.insert(value);
        }
        // Made of valid values and ASCII; kept as a fallback only.
        Err(_) => entry.append(VARY_ORIGIN),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Why a preflight is refused.
#[derive(Clone, Copy)]
enum Refusal {
    Origin,
    Method,
    Header,
}

/// 403, problem+json, and the [`CorsRejected`] marker; no CORS headers.
fn refusal(reason: Refusal) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(problem_body(reason)));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(CONTENT_TYPE, PROBLEM_JSON);
    response.extensions_mut().insert(CorsRejected);
    response
}

/// The problem document of a refusal, rendered once per process (the texts name nothing of
/// the request or the policy).
fn problem_body(reason: Refusal) -> Bytes {
    static ORIGIN: OnceLock<Box<[u8]>> = OnceLock::new();
    static METHOD: OnceLock<Box<[u8]>> = OnceLock::new();
    static HEADER: OnceLock<Box<[u8]>> = OnceLock::new();
    let (cell, detail) = match reason {
        Refusal::Origin => (
            &ORIGIN,
            "cross-origin requests from this origin are not allowed (CORS preflight refused)",
        ),
        Refusal::Method => (
            &METHOD,
            "the requested method is not allowed for cross-origin requests (CORS preflight refused)",
        ),
        Refusal::Header => (
            &HEADER,
            "a requested header is not allowed for cross-origin requests (CORS preflight refused)",
        ),
    };
    let json = cell.get_or_init(|| {
        let problem = Problem::new(StatusCode::FORBIDDEN).with_detail(detail);
        problem.to_json().to_vec().into_boxed_slice()
    });
    Bytes::from_static(json)
}

/// Parses `allow_origins`.
fn origins(entries: &[String], credentials: bool) -> Result<AllowOrigins, CorsError> {
    if entries.is_empty() {
        return Err(CorsError::NoOrigins);
    }
    if let Some(index) = entries.iter().position(|entry| entry == "*") {
        if credentials {
            return Err(CorsError::AnyOriginWithCredentials { index });
        }
        if entries.len() > 1 {
            return Err(CorsError::Origin {
                index,
                origin: "*".into(),
                reason: "\"*\" allows every origin, so it is listed alone",
            });
        }
        return Ok(AllowOrigins::Any);
    }
    let mut patterns: Vec<OriginPattern> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let pattern = OriginPattern::parse(entry).map_err(|reason| CorsError::Origin {
            index,
            origin: entry.clone(),
            reason,
        })?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    let serialized = patterns.iter().map(OriginPattern::serialized).collect();
    Ok(AllowOrigins::List {
        patterns: patterns.into_boxed_slice(),
        serialized,
    })
}

/// Parses `allow_methods`, keeping the first of duplicates.
fn methods(entries: &[String]) -> Result<Vec<Method>, CorsError> {
    if entries.is_empty() {
        return Err(CorsError::NoMethods);
    }
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    let mut methods: Vec<Method> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let error = |reason| CorsError::Method {
            index,
            method: entry.clone(),
            reason,
        };
        if entry == "*" {
            return Err(error("wildcards are not supported; list the methods"));
        }
        let method = Method::from_bytes(entry.as_bytes())
            .map_err(|_| error("not a method name (a token such as `PUT`)"))?;
        if entry.len() > 1 && entry != &entry.to_ascii_uppercase() {
            let upper = entry.to_ascii_uppercase();
            if STANDARD.contains(&upper.as_str()) {
                return Err(error(
                    "method names are case-sensitive; write it in capitals",
                ));
            }
        }
        if !methods.contains(&method) {
            methods.push(method);
        }
    }
    Ok(methods)
}

/// Parses `allow_headers` or `expose_headers` (lowercased), keeping the first of duplicates.
fn header_names(field: &'static str, entries: &[String]) -> Result<Vec<HeaderName>, CorsError> {
    let mut names: Vec<HeaderName> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let error = |reason| CorsError::Header {
            field,
            index,
            name: entry.clone(),
            reason,
        };
        if entry == "*" {
            return Err(error("wildcards are not supported; list the headers"));
        }
        let name = HeaderName::from_bytes(entry.as_bytes())
            .map_err(|_| error("not a header name (a token such as `x-request-id`)"))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `a, b, c`, or `None` for no items.
fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let joined = items.collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        return None;
    }
    HeaderValue::from_maybe_shared(Bytes::from(joined)).ok()
}

/// Builds a [`CorsPolicy`] in code; the same checks as [`CorsConfig::build`] apply when
/// [`build`](Self::build) is called.
#[derive(Clone, Debug, Default)]
pub struct CorsPolicyBuilder {
    origins: Vec<String>,
    methods: Option<Vec<String>>,
    headers: Vec<String>,
    exposed: Vec<String>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl CorsPolicyBuilder {
    /// Allows an origin or wildcard-subdomain pattern (`https://*.example.com`).
    #[must_use]
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Allows any origin (`*`).
    #[must_use]
    pub fn allow_any_origin(self) -> Self {
        self.allow_origin("*")
    }

    /// Allows a method; the first call replaces the default GET, HEAD, POST.
    #[must_use]
    pub fn allow_method(mut self, method: impl Into<String>) -> Self {
        self.methods
            .get_or_insert_with(Vec::new)
            .push(method.into());
        self
    }

    /// Allows these methods (replacing the default GET, HEAD, POST).
    #[must_use]
    pub fn allow_methods<I, T>(self, methods: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        methods
            .into_iter()
            .fold(self, |builder, method| builder.allow_method(method))
    }

    /// Allows a request header in preflights.
    #[must_use]
    pub fn allow_header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(name.into());
        self
    }

    /// Lets scripts read a response header.
    #[must_use]
    pub fn expose_header(mut self, name: impl Into<String>) -> Self {
        self.exposed.push(name.into());
        self
    }

    /// Allows credentialed requests (not with [`allow_any_origin`](Self::allow_any_origin)).
    #[must_use]
    pub fn allow_credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// Lets browsers cache preflight answers this long (whole seconds, rounded down).
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Checks the settings and builds the policy.
    pub fn build(self) -> Result<CorsPolicy, CorsError> {
        CorsConfig {
            allow_origins: self.origins,
            allow_methods: self
                .methods
                .unwrap_or_else(|| DEFAULT_ALLOW_METHODS.map(String::from).to_vec()),
            allow_headers: self.headers,
            expose_headers: self.exposed,
            allow_credentials: self.credentials,
            max_age: self.max_age.map(HumanDuration),
        }
        .build()
    }
}
