//! JWT authentication and role authorization as a tower layer.
//!
//! An [`Authenticator`] (built once, from the `[jwt]` config or a builder) verifies tokens:
//! HMAC secrets, PEM public keys (RSA, RSA-PSS, ECDSA, Ed25519) or a JWKS endpoint, an
//! allow-list of algorithms, `exp`/`nbf` with leeway, `iss`, `aud` and required claims, and
//! a bounded cache of verified tokens (a repeated token costs a lookup, not a signature
//! check). A [`JwtAuthLayer`] per route applies it
//! with a mode ([`AuthMode`]) and optional roles; the service
//!
//! - always strips client-sent copies of the forwarded identity headers,
//! - takes the token from `Authorization: Bearer`, or a configured cookie or query parameter
//!   (from exactly one of them: a token in two places is refused as ambiguous),
//! - on success inserts [`gateway_core::Identity`] into the request extensions and sets the
//!   forwarded headers (default `X-User-ID` <- `user_id` or `sub`, `X-User-Role` <- `role`),
//! - otherwise answers 401/403 (RFC 6750 `WWW-Authenticate`) or 503 with a problem+json
//!   body, and an [`AuthFailure`] in the response extensions for metrics.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use gateway_auth::{AuthFailure, Authenticator, JwtAuthLayer, mint_hs256};
//! use gateway_core::Identity;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let secret = b"an-example-secret-of-32-bytes!!!";
//! let auth = Authenticator::builder().hmac_secret(*secret).issuer("api-gateway").build().unwrap();
//!
//! let app = ServiceBuilder::new()
//!     .layer(JwtAuthLayer::new(auth).roles(["admin"]))
//!     .service_fn(|request: Request<String>| async move {
//!         let user = request.extensions().get::<Identity>().and_then(|id| id.subject().map(str::to_owned));
//!         let header = request.headers()["x-user-id"].to_str().unwrap().to_owned();
//!         assert_eq!(user.as_deref(), Some(header.as_str()));
//!         Ok::<_, Infallible>(Response::new(format!("hello {header}")))
//!     });
//!
//! let claims = serde_json::json!({"user_id": "alice", "role": "admin"});
//! let token = mint_hs256(secret, claims.as_object().unwrap().clone(), Duration::from_secs(60), Some("api-gateway"), None).unwrap();
//! let request = Request::get("/").header("authorization", format!("Bearer {token}"))
//!     .header("x-user-id", "mallory") // spoofed: replaced by the verified claim
//!     .body(String::new()).unwrap();
//! let response = app.clone().oneshot(request).await.unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! let response = app.oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"gateway\"");
//! assert_eq!(response.extensions().get::<AuthFailure>(), Some(&AuthFailure::MissingToken));
//! # });
//! ```

mod assemble;
mod authenticator;
mod builder;
mod cache;
pub mod config;
pub mod error;
mod failure;
mod from_config;
mod future;
mod jwks;
mod keys;
mod layer;
mod mint;
mod rejection;
mod service;
mod token;
mod verify;

pub use authenticator::Authenticator;
pub use builder::AuthenticatorBuilder;
pub use config::{AuthMode, JwtConfig};
pub use error::{BuildError, ConfigError, JwksError, MintError};
pub use failure::AuthFailure;
pub use future::ResponseFuture;
pub use jsonwebtoken::Algorithm;
pub use layer::JwtAuthLayer;
pub use mint::{mint_for_config, mint_hs256, parse_claim};
pub use service::JwtAuth;
