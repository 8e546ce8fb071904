//! The `[jwt]` section of the gateway config and the per-route `auth` mode.
//!
//! Values are checked while deserializing (so the loader reports file, line and field);
//! [`JwtConfig::validate`] checks what spans fields (exactly one key source, algorithms that
//! fit it) and [`Authenticator::from_config`](crate::Authenticator::from_config) what needs
//! the environment (secrets, key files).
//!
//! ```
//! use gateway_auth::config::JwtConfig;
//!
//! let config: JwtConfig = toml::from_str(r#"
//!     algorithms = ["RS256"]
//!     jwks_url = "http://keycloak.internal:8080/realms/main/protocol/openid-connect/certs"
//!     issuer = "https://sso.example.com/realms/main"
//!     audience = ["orders", "billing"]
//!     leeway = "30s"
//!     [forward]
//!     "X-User-ID" = ["user_id", "sub"]
//!     "X-Tenant" = "tenant"
//! "#).unwrap();
//! config.validate().unwrap();
//! assert_eq!(config.audience, ["orders", "billing"]);
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use gateway_core::config::HumanDuration;
use http::{HeaderName, Uri};
use jsonwebtoken::{Algorithm, AlgorithmFamily};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;

/// The `[jwt]` section: where keys come from and what a valid token looks like.
///
/// Exactly one key source must be set: `secret_env`, `secret_file` (HMAC), `public_key_file`
/// (a PEM RSA, EC or Ed25519 public key) or `jwks_url`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `alg` values (`HS256`, `RS256`, `PS256`, `ES256`, `EdDSA`, ...). Empty means:
    /// `HS256` for a secret, `RS256` for a JWKS URL, the key's own family for a PEM file
    /// (`RS256`, `ES256`/`ES384` by curve, `EdDSA`). `none` is never accepted.
    #[serde(default, deserialize_with = "de_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Name of the environment variable holding the HMAC secret (its raw bytes, >= 32).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the HMAC secret (its raw bytes, a trailing newline ignored, >= 32).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM file with the public key (`PUBLIC KEY`, or `RSA PUBLIC KEY`).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// JWKS endpoint (`http://` or `https://`), e.g. an IdP's `/.well-known/jwks.json`.
    #[serde(default, deserialize_with = "de_jwks_url")]
    pub jwks_url: Option<Uri>,
    /// How often the JWKS is fetched again in the background (default `5m`).
    #[serde(default = "defaults::jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Minimum time between two fetches triggered by tokens with an unknown `kid`, and the
    /// retry delay after a failed fetch (default `10s`): a flood of made-up `kid`s costs the
    /// JWKS endpoint at most one request per cooldown.
    #[serde(default = "defaults::jwks_cooldown")]
    pub jwks_cooldown: HumanDuration,
    /// Deadline of one JWKS fetch, connection included (default `5s`). A request waiting for
    /// a key never waits longer.
    #[serde(default = "defaults::jwks_timeout")]
    pub jwks_timeout: HumanDuration,
    /// Accepted `iss` values (a string or a list); empty: `iss` is not checked.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub issuer: Vec<String>,
    /// Accepted audiences (a string or a list); the token's `aud` (a string or a list) must
    /// name one. Empty: `aud` is not checked.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf` (default `30s`).
    #[serde(default = "defaults::leeway")]
    pub leeway: HumanDuration,
    /// Claims every token must carry (default `["exp"]`; `[]` accepts tokens that never
    /// expire).
    #[serde(default = "defaults::required_claims")]
    pub required_claims: Vec<String>,
    /// Also take the token from this cookie when there is no `Authorization: Bearer` header.
    #[serde(default, deserialize_with = "de_token_name")]
    pub from_cookie: Option<String>,
    /// Also take the token from this query parameter when there is no header or cookie.
    #[serde(default, deserialize_with = "de_token_name")]
    pub from_query: Option<String>,
    /// How many verified tokens are remembered (default 10000; 0 disables the cache).
    #[serde(default = "defaults::cache_size")]
    pub cache_size: usize,
    /// The claim holding the caller's role(s), a string or a list (default `role`); routes'
    /// `roles` are matched against it.
    #[serde(default = "defaults::roles_claim")]
    pub roles_claim: String,
    /// The `realm` of the `WWW-Authenticate` challenges (default `gateway`).
    #[serde(default = "defaults::realm", deserialize_with = "de_realm")]
    pub realm: String,
    /// Upstream request headers set from claims (`[jwt.forward]`); see [`Forward`].
    #[serde(default)]
    pub forward: Forward,
}

mod defaults {
    use super::*;

    pub(super) fn jwks_refresh() -> HumanDuration {
        Duration::from_secs(300).into()
    }
    pub(super) fn jwks_cooldown() -> HumanDuration {
        Duration::from_secs(10).into()
    }
    pub(super) fn jwks_timeout() -> HumanDuration {
        Duration::from_secs(5).into()
    }
    pub(super) fn leeway() -> HumanDuration {
        Duration::from_secs(30).into()
    }
    pub(super) fn required_claims() -> Vec<String> {
        vec!["exp".to_owned()]
    }
    pub(super) fn cache_size() -> usize {
        10_000
    }
    pub(super) fn roles_claim() -> String {
        "role".to_owned()
    }
    pub(super) fn realm() -> String {
        "gateway".to_owned()
    }
}

impl Default for JwtConfig {
    /// Every field at its default and no key source (set one before use).
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            secret_env: None,
            secret_file: None,
            public_key_file: None,
            jwks_url: None,
            jwks_refresh: defaults::jwks_refresh(),
            jwks_cooldown: defaults::jwks_cooldown(),
            jwks_timeout: defaults::jwks_timeout(),
            issuer: Vec::new(),
            audience: Vec::new(),
            leeway: defaults::leeway(),
            required_claims: defaults::required_claims(),
            from_cookie: None,
            from_query: None,
            cache_size: defaults::cache_size(),
            roles_claim: defaults::roles_claim(),
            realm: defaults::realm(),
            forward: Forward::default(),
        }
    }
}

/// Which kind of key source a config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Secret,
    PublicKey,
    Jwks,
}

impl JwtConfig {
    /// Checks what spans several fields: exactly one key source, algorithms that fit it,
    /// usable JWKS timings. Cheap and free of I/O, so the config loader can call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.source_kind()?;
        for &alg in &self.algorithms {
            let hmac = alg.family() == AlgorithmFamily::Hmac;
            if hmac != (kind == SourceKind::Secret) {
                return Err(ConfigError::AlgorithmMismatch {
                    algorithm: alg,
                    source_field: self.source_field(),
                });
            }
        }
        if kind == SourceKind::Jwks {
            if self.jwks_refresh.get() < Duration::from_secs(1) {
                return Err(ConfigError::invalid("jwks_refresh", "must be at least 1s"));
            }
            if self.jwks_timeout.get().is_zero() {
                return Err(ConfigError::invalid("jwks_timeout", "must be more than 0s"));
            }
            #[cfg(not(feature = "jwks-https"))]
            if self.jwks_url.as_ref().and_then(Uri::scheme_str) == Some("https") {
                return Err(ConfigError::invalid(
                    "jwks_url",
                    "https needs gateway-auth's `jwks-https` feature",
                ));
            }
        }
        if self.roles_claim.is_empty() {
            return Err(ConfigError::invalid("roles_claim", "must not be empty"));
        }
        if self.required_claims.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "required_claims",
                "claim names must not be empty",
            ));
        }
        Ok(())
    }

    pub(crate) fn source_kind(&self) -> Result<SourceKind, ConfigError> {
        let set: Vec<&'static str> = [
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("jwks_url", self.jwks_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match set.as_slice() {
            ["secret_env" | "secret_file"] => Ok(SourceKind::Secret),
            ["public_key_file"] => Ok(SourceKind::PublicKey),
            ["jwks_url"] => Ok(SourceKind::Jwks),
            _ => Err(ConfigError::KeySource { found: set }),
        }
    }

    fn source_field(&self) -> &'static str {
        if self.secret_env.is_some() {
            "secret_env"
        } else if self.secret_file.is_some() {
            "secret_file"
        } else if self.public_key_file.is_some() {
            "public_key_file"
        } else {
            "jwks_url"
        }
    }
}

/// How a route uses authentication (the route's `auth` key).
///
/// The default, for a route without `auth`, is [`AuthMode::None`] (the layer alone defaults
/// to [`AuthMode::Required`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A valid token is required: 401 without one.
    Required,
    /// A valid token is used when present; no token passes anonymously; an invalid one
    /// gets 401 (a client that sends a token expects it to count).
    Optional,
    /// Tokens are ignored (forwarded identity headers are still stripped).
    #[default]
    None,
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown auth mode `{s}`; expected `required`, `optional` or `none`"
            )),
        }
    }
}

/// One forwarded header: set from the first of `claims` the token has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRule {
    /// The upstream request header.
    pub header: HeaderName,
    /// Claims tried in order; strings are sent as they are, numbers and booleans in JSON
    /// form, arrays of those joined with `,`; objects are never forwarded.
    pub claims: Vec<String>,
}

/// `[jwt.forward]`: upstream request headers set from the verified claims, as
/// `"Header" = "claim"` or `"Header" = ["claim", "fallback"]`.
///
/// Client-sent copies of these headers are removed from every request, on every route, so
/// an upstream can trust them. Writing the table replaces the default, which is
/// `"X-User-ID" = ["user_id", "sub"]` and `"X-User-Role" = "role"`; an empty table forwards
/// (and strips) nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward(pub Vec<ForwardRule>);

impl Default for Forward {
    fn default() -> Self {
        Self(vec![
            ForwardRule {
                header: HeaderName::from_static("x-user-id"),
                claims: vec!["user_id".into(), "sub".into()],
            },
            ForwardRule {
                header: HeaderName::from_static("x-user-role"),
                claims: vec!["role".into()],
            },
        ])
    }
}

/// Headers a claim may never be forwarded into: stripping the client's copy would break the
/// request (or hide the client's credentials from the upstream).
const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "keep-alive",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Checks one forwarding rule (also used by the builder).
pub(crate) fn forward_rule(header: &str, claims: Vec<String>) -> Result<ForwardRule, String> {
    let name = HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| format!("`{header}` is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!("`{header}` cannot carry a claim"));
    }
    if claims.is_empty() || claims.iter().any(String::is_empty) {
        return Err(format!("`{header}` needs a claim name"));
    }
    Ok(ForwardRule {
        header: name,
        claims,
    })
}

impl<'de> Deserialize<'de> for Forward {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ForwardVisitor;
        impl<'de> Visitor<'de> for ForwardVisitor {
            type Value = Forward;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of header = claim (or [claims])")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Forward, A::Error> {
                let mut rules: Vec<ForwardRule> = Vec::new();
                while let Some(header) = map.next_key::<String>()? {
                    let OneOrMany(claims) = map.next_value()?;
                    let rule = forward_rule(&header, claims).map_err(de::Error::custom)?;
                    if rules.iter().any(|r| r.header == rule.header) {
                        return Err(de::Error::custom(format!(
                            "header `{header}` is listed twice"
                        )));
                    }
                    rules.push(rule);
                }
                Ok(Forward(rules))
            }
        }
        deserializer.deserialize_map(ForwardVisitor)
    }
}

/// A string or a list of strings.
struct OneOrMany(Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

fn de_one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(deserializer).map(|OneOrMany(items)| items)
}

/// Parses an algorithm name as written in a JWT header.
pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if name.eq_ignore_ascii_case("none") {
        return Err("`none` is never allowed: unsigned tokens would let anyone in".to_owned());
    }
    Algorithm::from_str(name).map_err(|_| {
        format!(
            "unknown algorithm `{name}`; expected one of HS256, HS384, HS512, RS256, RS384, \
             RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
        )
    })
}

fn de_algorithms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Algorithm>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let mut algorithms = Vec::with_capacity(names.len());
    for name in names {
        let alg = parse_algorithm(&name).map_err(de::Error::custom)?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    Ok(algorithms)
}

fn de_jwks_url<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Uri>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_jwks_url(&text).map(Some).map_err(de::Error::custom)
}

pub(crate) fn parse_jwks_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("`{text}` is not a valid URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!(
            "`{text}` must be an http:// or https:// URL with a host"
        )),
    }
}

fn de_token_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(deserializer)?;
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$%'*+^`|".contains(&b));
    if valid {
        Ok(Some(name))
    } else {
        Err(de::Error::custom(format!(
            "`{name}` is not a valid cookie or parameter name"
        )))
    }
}

fn de_realm<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let realm = String::deserialize(deserializer)?;
    check_realm(&realm).map_err(de::Error::custom)?;
    Ok(realm)
}

/// A realm goes into a quoted string of a header value.
pub(crate) fn check_realm(realm: &str) -> Result<(), String> {
    if realm
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        Ok(())
    } else {
        Err(format!(
            "realm `{realm}` may only hold printable ASCII without `\"` or `\\`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<JwtConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let config = parse("secret_env = \"GATEWAY_JWT_SECRET\"").unwrap();
        config.validate().unwrap();
        assert_eq!(config.leeway.get(), Duration::from_secs(30));
        assert_eq!(config.required_claims, ["exp"]);
        assert_eq!(config.forward, Forward::default());
        assert_eq!(config.forward.0[0].header, "x-user-id");
        assert_eq!(config.forward.0[0].claims, ["user_id", "sub"]);
        assert_eq!(config.forward.0[1].header, "x-user-role");
        assert_eq!(config.cache_size, 10_000);
    }

    #[test]
    fn contract_example_parses() {
        let config = parse(
            r#"
            algorithms = ["HS256"]
            secret_env = "GATEWAY_JWT_SECRET"
            issuer = "api-gateway"
            audience = "my-api"
            leeway = "30s"
            [forward]
            "X-User-ID" = "user_id"
            "X-User-Role" = "role"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.algorithms, [Algorithm::HS256]);
        assert_eq!(config.issuer, ["api-gateway"]);
        assert_eq!(config.forward.0.len(), 2);
        assert_eq!(config.forward.0[0].claims, ["user_id"]);
    }

    #[test]
    fn bad_values_name_the_problem() {
        let err = parse("algorithms = [\"none\"]\nsecret_env = \"S\"").unwrap_err();
        assert!(err.contains("`none` is never allowed"), "{err}");
        let err = parse("algorithms = [\"HS257\"]\nsecret_env = \"S\"").unwrap_err();
        assert!(err.contains("unknown algorithm `HS257`"), "{err}");
        let err = parse("jwks_url = \"ftp://x/keys\"").unwrap_err();
        assert!(err.contains("must be an http:// or https:// URL"), "{err}");
        let err = parse("secret_env = \"S\"\nsecrte_file = \"x\"").unwrap_err();
        assert!(err.contains("unknown field `secrte_file`"), "{err}");
        let err = parse("secret_env = \"S\"\n[forward]\n\"Host\" = \"sub\"").unwrap_err();
        assert!(err.contains("`Host` cannot carry a claim"), "{err}");
        let err =
            parse("secret_env = \"S\"\n[forward]\n\"X-A\" = \"a\"\n\"x-a\" = \"b\"").unwrap_err();
        assert!(err.contains("listed twice"), "{err}");
        let err = parse("secret_env = \"S\"\nfrom_cookie = \"a b\"").unwrap_err();
        assert!(
            err.contains("not a valid cookie or parameter name"),
            "{err}"
        );
        let err = parse("secret_env = \"S\"\nrealm = 'a\"b'").unwrap_err();
        assert!(err.contains("realm"), "{err}");
    }

    #[test]
    fn exactly_one_key_source() {
        let none = parse("issuer = \"x\"").unwrap().validate().unwrap_err();
        assert!(none.to_string().contains("found none"), "{none}");
        let two = parse("secret_env = \"S\"\njwks_url = \"http://127.0.0.1/k\"")
            .unwrap()
            .validate()
            .unwrap_err();
        let text = two.to_string();
        assert!(
            text.contains("`secret_env`") && text.contains("`jwks_url`"),
            "{text}"
        );
    }

    #[test]
    fn algorithms_must_fit_the_key_source() {
        let err = parse("algorithms = [\"RS256\"]\nsecret_env = \"S\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("RS256"), "{err}");
        assert!(err.to_string().contains("secret_env"), "{err}");
        let err = parse("algorithms = [\"RS256\", \"HS256\"]\npublic_key_file = \"k.pem\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("HS256"), "{err}");
        let err = parse("algorithms = [\"HS256\"]\njwks_url = \"http://127.0.0.1/k\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("jwks_url"), "{err}");
    }

    #[test]
    fn auth_mode_is_snake_case() {
        #[derive(Deserialize)]
        struct Route {
            auth: AuthMode,
        }
        let route: Route = toml::from_str("auth = \"optional\"").unwrap();
        assert_eq!(route.auth, AuthMode::Optional);
        assert!(toml::from_str::<Route>("auth = \"Required\"").is_err());
        assert_eq!("none".parse::<AuthMode>(), Ok(AuthMode::None));
    }
}
