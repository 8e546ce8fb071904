//! Each algorithm family with keys generated at test time, from PEM files and the builder.

mod common;

use std::str::FromStr;

use common::*;
use gateway_auth::config::JwtConfig;
use gateway_auth::{Algorithm, AuthFailure, Authenticator, BuildError};
use serde_json::json;

fn alg(name: &str) -> Algorithm {
    Algorithm::from_str(name).unwrap()
}

#[tokio::test]
async fn hmac_family() {
    for name in ["HS256", "HS384", "HS512"] {
        let auth = Authenticator::builder()
            .hmac_secret(SECRET)
            .algorithms([alg(name)])
            .build()
            .unwrap();
        let token = hmac_token(
            name,
            SECRET,
            json!({}),
            &claims(json!({"user_id": "alice"})),
        );
        assert_eq!(
            auth.authenticate(&token).await.unwrap().subject(),
            Some("alice"),
            "{name}"
        );

        let forged = hmac_token(
            name,
            b"another-secret-another-secret-32",
            json!({}),
            &claims(json!({})),
        );
        assert_eq!(
            auth.authenticate(&forged).await,
            Err(AuthFailure::BadSignature),
            "{name}"
        );
    }
}

#[tokio::test]
async fn rsa_family_pkcs1_and_pss() {
    let key = TestKey::Rsa(rsa());
    let names = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
    let auth = Authenticator::builder()
        .public_key_pem(key.public_pem())
        .algorithms(names.map(alg))
        .build()
        .unwrap();
    let other = TestKey::Rsa(rsa2());
    for name in names {
        let token = key.sign(name, json!({}), &claims(json!({"sub": name})));
        assert_eq!(
            auth.authenticate(&token).await.unwrap().subject(),
            Some(name)
        );
        let forged = other.sign(name, json!({}), &claims(json!({})));
        assert_eq!(
            auth.authenticate(&forged).await,
            Err(AuthFailure::BadSignature),
            "{name}"
        );
    }
}

#[tokio::test]
async fn ecdsa_and_eddsa_families_infer_their_algorithm() {
    for (key, name) in [(p256(), "ES256"), (p384(), "ES384"), (ed25519(), "EdDSA")] {
        let auth = Authenticator::builder()
            .public_key_pem(key.public_pem())
            .build()
            .unwrap();
        assert_eq!(auth.algorithms(), [alg(name)]);
        let token = key.sign(name, json!({}), &claims(json!({})));
        assert!(auth.authenticate(&token).await.is_ok(), "{name}");

        // Same algorithm, another key of the same kind.
        let stranger = match name {
            "ES256" => p256(),
            "ES384" => p384(),
            _ => ed25519(),
        };
        let forged = stranger.sign(name, json!({}), &claims(json!({})));
        assert_eq!(
            auth.authenticate(&forged).await,
            Err(AuthFailure::BadSignature),
            "{name}"
        );
    }
}

#[tokio::test]
async fn rsa_key_without_configured_algorithms_accepts_rs256_only() {
    let key = TestKey::Rsa(rsa());
    let auth = Authenticator::builder()
        .public_key_pem(key.public_pem())
        .build()
        .unwrap();
    assert_eq!(auth.algorithms(), [Algorithm::RS256]);
    let pss = key.sign("PS256", json!({}), &claims(json!({})));
    assert_eq!(
        auth.authenticate(&pss).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
}

#[test]
fn key_that_cannot_serve_the_algorithms_is_refused_at_build() {
    let err = Authenticator::builder()
        .public_key_pem(p256().public_pem())
        .algorithms([Algorithm::RS256])
        .build()
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::PublicKey(_)), "{err}");
    let err = Authenticator::builder()
        .public_key_pem(p256().public_pem())
        .algorithms([Algorithm::ES384])
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("ES384"), "{err}");
    let err = Authenticator::builder()
        .public_key_pem("not a pem")
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a PEM"), "{err}");
    let err = Authenticator::builder()
        .hmac_secret(*b"short")
        .build()
        .err()
        .unwrap();
    assert!(
        matches!(err, BuildError::SecretTooShort { len: 5, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn public_key_file_and_secret_file_from_config() {
    let key = p256();
    let pem = TempFile::new("key.pem", key.public_pem().as_bytes());
    let config: JwtConfig = toml::from_str(&format!(
        "public_key_file = {:?}\nissuer = \"idp\"",
        pem.0.display().to_string()
    ))
    .unwrap();
    let auth = Authenticator::from_config(&config).unwrap();
    let token = key.sign("ES256", json!({}), &claims(json!({"iss": "idp"})));
    assert!(auth.authenticate(&token).await.is_ok());

    // A trailing newline in the secret file is not part of the secret.
    let mut contents = SECRET.to_vec();
    contents.push(b'\n');
    let secret = TempFile::new("secret", &contents);
    let config: JwtConfig = toml::from_str(&format!(
        "secret_file = {:?}",
        secret.0.display().to_string()
    ))
    .unwrap();
    let auth = Authenticator::from_config(&config).unwrap();
    assert!(auth.authenticate(&hs256(&claims(json!({})))).await.is_ok());
}

#[test]
fn missing_files_name_the_field() {
    let config: JwtConfig = toml::from_str("public_key_file = \"/nonexistent/key.pem\"").unwrap();
    let err = Authenticator::from_config(&config).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("`jwt.public_key_file`: cannot read"),
        "{err}"
    );
    let config: JwtConfig = toml::from_str("secret_file = \"/nonexistent/secret\"").unwrap();
    let err = Authenticator::from_config(&config).err().unwrap();
    assert!(err.to_string().starts_with("`jwt.secret_file`"), "{err}");
    let config: JwtConfig =
        toml::from_str("secret_env = \"GATEWAY_AUTH_TEST_UNSET_VARIABLE\"").unwrap();
    let err = Authenticator::from_config(&config).err().unwrap();
    assert!(
        err.to_string().contains("GATEWAY_AUTH_TEST_UNSET_VARIABLE"),
        "{err}"
    );
}

#[tokio::test]
async fn tokens_minted_by_the_crate_verify() {
    let claims = json!({"user_id": "bob", "role": "admin"})
        .as_object()
        .unwrap()
        .clone();
    let token = gateway_auth::mint_hs256(
        SECRET,
        claims,
        std::time::Duration::from_secs(60),
        Some("gw"),
        Some("api"),
    )
    .unwrap();
    let auth = Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer("gw")
        .audience("api")
        .build()
        .unwrap();
    let identity = auth.authenticate(&token).await.unwrap();
    assert_eq!(identity.subject(), Some("bob"));
    assert_eq!(identity.claim_text("role").as_deref(), Some("admin"));
    assert!(identity.claim("exp").and_then(|v| v.as_u64()).unwrap() > now());
}
