//! Parsing and validating `[jwt]` sections, as the config loader does.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::{AuthMode, Forward, JwtConfig};

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
    let err = parse("secret_env = \"S\"\n[forward]\n\"X-A\" = \"a\"\n\"x-a\" = \"b\"").unwrap_err();
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
