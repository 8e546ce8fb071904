//! The HS256 secret the end-to-end tests sign with, its `[jwt]` section, and tokens.

use std::time::Duration;

use super::TempDir;

/// The secret of every test gateway's `[jwt]` section.
pub const SECRET: &str = "end-to-end-test-secret-0123456789abcdef";

/// A `[jwt]` section (issuer `api-gateway`) reading `SECRET` from a file in `dir`.
pub fn jwt_section(dir: &TempDir) -> String {
    let secret = dir.path.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    format!(
        "[jwt]\nalgorithms = [\"HS256\"]\nsecret_file = \"{}\"\nissuer = \"api-gateway\"\n\n",
        secret.display()
    )
}

/// A token for `claims` (a JSON object), valid for ten minutes.
pub fn token(claims: serde_json::Value) -> String {
    let serde_json::Value::Object(claims) = claims else {
        panic!("claims are a JSON object");
    };
    gateway::auth::mint_hs256(
        SECRET.as_bytes(),
        claims,
        Duration::from_secs(600),
        Some("api-gateway"),
        None,
    )
    .unwrap()
}
