//! `secret_env` and `mint_for_config` (the `gateway token` subcommand's API). A test binary of
//! its own with a single test: it sets an environment variable, which must not race with
//! other threads reading the environment.

use std::time::Duration;

use gateway_auth::config::JwtConfig;
use gateway_auth::{Authenticator, mint_for_config, parse_claim};

#[tokio::test]
async fn secret_from_environment_and_minting_for_the_config() {
    const VAR: &str = "GATEWAY_AUTH_TEST_SECRET";
    // SAFETY: this test binary runs this one test, before any other thread is started
    // that could read the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(VAR, "env-secret-env-secret-env-secret");
    }
    let config: JwtConfig = toml::from_str(&format!(
        "secret_env = \"{VAR}\"\nalgorithms = [\"HS384\"]\nissuer = \"api-gateway\"\naudience = [\"my-api\", \"other\"]"
    ))
    .unwrap();
    let auth = Authenticator::from_config(&config).unwrap();

    let claims = ["user_id=alice", "role=admin", "level:=3"]
        .into_iter()
        .map(|arg| parse_claim(arg).unwrap())
        .collect();
    let token = mint_for_config(&config, claims, Duration::from_secs(3600)).unwrap();
    let identity = auth.authenticate(&token).await.unwrap();
    assert_eq!(identity.subject(), Some("alice"));
    assert_eq!(identity.claim("level"), Some(&serde_json::json!(3)));
    assert_eq!(identity.claim_text("iss").as_deref(), Some("api-gateway"));
    assert_eq!(identity.claim_text("aud").as_deref(), Some("my-api"));

    // A public-key config cannot mint.
    let config: JwtConfig = toml::from_str("public_key_file = \"k.pem\"").unwrap();
    assert!(mint_for_config(&config, serde_json::Map::new(), Duration::from_secs(60)).is_err());
}
