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
//!
//! The types live in small modules: the `[jwt]` struct and its defaults, the forwarding
//! rules, the route mode, the value parsers the deserializers (and the builder) share, and
//! the checks across fields. None of them depends on the runtime.

mod forward;
mod jwt;
mod mode;
mod parse;
mod validate;

#[cfg(test)]
mod tests;

pub use forward::{Forward, ForwardRule};
pub use jwt::JwtConfig;
pub use mode::AuthMode;

pub(crate) use forward::forward_rule;
pub(crate) use parse::{check_realm, parse_jwks_url};
pub(crate) use validate::SourceKind;
