//! The `[cors]` and `[routes.cors]` tables, as written.
//!
//! ```toml
//! [cors]
//! allow_origins = ["https://app.example.com", "https://*.example.com"]  # or ["*"]
//! allow_methods = ["GET", "HEAD", "POST", "PUT"]   # default: GET, HEAD, POST
//! allow_headers = ["authorization", "content-type"]  # default: none
//! expose_headers = ["x-request-id"]                # default: none
//! allow_credentials = true                         # default: false
//! max_age = "10m"                                  # default: not sent
//! ```
//!
//! Deserializing checks only the shape; [`CorsConfig::build`] checks the values and names the
//! first bad one (`allow_origins[1]: ...`).

use gateway_core::config::HumanDuration;
use serde::Deserialize;

use crate::error::CorsError;
use crate::policy::CorsPolicy;

/// The methods allowed when `allow_methods` is left out.
pub const DEFAULT_ALLOW_METHODS: [&str; 3] = ["GET", "HEAD", "POST"];

/// A CORS policy as written in `[cors]` (every route) or `[routes.cors]` (one route, replacing
/// `[cors]` wholesale).
///
/// ```
/// use gateway_cors::config::CorsConfig;
///
/// let config: CorsConfig = toml::from_str(r#"
///     allow_origins = ["https://*.example.com"]
///     allow_headers = ["content-type"]
///     max_age = "1h"
/// "#).unwrap();
/// assert_eq!(config.allow_methods, ["GET", "HEAD", "POST"]);
/// let policy = config.build().unwrap();
/// assert!(policy.allows_origin("https://app.example.com"));
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// The origins allowed: exact (`https://app.example.com`, `http://localhost:3000`),
    /// every subdomain of a domain (`https://*.example.com`), or `["*"]` for any origin.
    pub allow_origins: Vec<String>,
    /// The methods a preflight may ask for (case-sensitive, as HTTP methods are).
    #[serde(default = "default_allow_methods")]
    pub allow_methods: Vec<String>,
    /// The request headers a preflight may ask for (case-insensitive). Every header the browser
    /// asks for must be listed, even ones the Fetch standard calls safelisted.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// The response headers, beyond the safelisted ones, that scripts may read.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Whether requests with cookies or HTTP authentication are allowed; not with `["*"]`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight's answer, sent in whole seconds (rounded down);
    /// left out, browsers use their default (5 seconds).
    #[serde(default)]
    pub max_age: Option<HumanDuration>,
}

fn default_allow_methods() -> Vec<String> {
    DEFAULT_ALLOW_METHODS.map(String::from).to_vec()
}

impl CorsConfig {
    /// A config allowing `allow_origins`, with every other field at its default.
    pub fn new<I, T>(allow_origins: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        Self {
            allow_origins: allow_origins.into_iter().map(Into::into).collect(),
            allow_methods: default_allow_methods(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age: None,
        }
    }

    /// Checks the values and builds the policy, with every header value computed up front.
    pub fn build(&self) -> Result<CorsPolicy, CorsError> {
        CorsPolicy::from_config(self)
    }
}
