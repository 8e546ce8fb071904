//! Claim validation and the classic JWT attacks.

mod common;

use std::time::Duration;

use common::*;
use gateway_auth::{Algorithm, AuthFailure, Authenticator};
use serde_json::json;

fn authenticator() -> Authenticator {
    Authenticator::builder()
        .hmac_secret(SECRET)
        .issuer("iss-1")
        .audience("aud-1")
        .leeway(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn valid(extra: serde_json::Value) -> serde_json::Value {
    let mut c = claims(json!({"iss": "iss-1", "aud": "aud-1"}));
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

async fn result(auth: &Authenticator, token: &str) -> Result<(), AuthFailure> {
    auth.authenticate(token).await.map(|_| ())
}

#[tokio::test]
async fn exp_and_nbf_honour_the_leeway() {
    let auth = authenticator();
    // Margins of a few seconds keep the test clear of second boundaries.
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"exp": now() - 25})))).await,
        Ok(())
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"exp": now() - 35})))).await,
        Err(AuthFailure::Expired)
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"nbf": now() + 25})))).await,
        Ok(())
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"nbf": now() + 35})))).await,
        Err(AuthFailure::NotYetValid)
    );

    let strict = Authenticator::builder()
        .hmac_secret(SECRET)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(
        result(&strict, &hs256(&claims(json!({"exp": now() - 3})))).await,
        Err(AuthFailure::Expired)
    );
    assert_eq!(
        result(&strict, &hs256(&claims(json!({"nbf": now() + 3})))).await,
        Err(AuthFailure::NotYetValid)
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let auth = authenticator();
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"iss": "evil"})))).await,
        Err(AuthFailure::WrongIssuer)
    );
    let mut no_iss = valid(json!({}));
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(
        result(&auth, &hs256(&no_iss)).await,
        Err(AuthFailure::WrongIssuer)
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"aud": "aud-2"})))).await,
        Err(AuthFailure::WrongAudience)
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"aud": ["x", "aud-1"]})))).await,
        Ok(())
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"aud": 7})))).await,
        Err(AuthFailure::WrongAudience)
    );
}

#[tokio::test]
async fn required_claims() {
    let auth = authenticator();
    let mut no_exp = valid(json!({}));
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        result(&auth, &hs256(&no_exp)).await,
        Err(AuthFailure::MissingClaim)
    );
    assert_eq!(
        result(&auth, &hs256(&valid(json!({"exp": "tomorrow"})))).await,
        Err(AuthFailure::InvalidClaim)
    );

    let needs_user = Authenticator::builder()
        .hmac_secret(SECRET)
        .required_claims(["exp", "user_id"])
        .build()
        .unwrap();
    assert_eq!(
        result(&needs_user, &hs256(&claims(json!({})))).await,
        Err(AuthFailure::MissingClaim)
    );
    assert_eq!(
        result(&needs_user, &hs256(&claims(json!({"user_id": null})))).await,
        Err(AuthFailure::MissingClaim)
    );
    assert_eq!(
        result(&needs_user, &hs256(&claims(json!({"user_id": "u"})))).await,
        Ok(())
    );

    let never_expires = Authenticator::builder()
        .hmac_secret(SECRET)
        .required_claims::<_, String>([])
        .build()
        .unwrap();
    assert_eq!(
        result(&never_expires, &hs256(&json!({"sub": "svc"}))).await,
        Ok(())
    );
}

#[tokio::test]
async fn tampered_payload_and_signature() {
    let auth = authenticator();
    let token = hs256(&valid(json!({"role": "user"})));
    let parts: Vec<&str> = token.split('.').collect();

    let forged_payload = b64(valid(json!({"role": "admin"})).to_string().as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        result(&auth, &tampered).await,
        Err(AuthFailure::BadSignature)
    );

    let mut signature = parts[2].as_bytes().to_vec();
    signature[3] = if signature[3] == b'A' { b'B' } else { b'A' };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(signature).unwrap()
    );
    assert_eq!(
        result(&auth, &tampered).await,
        Err(AuthFailure::BadSignature)
    );

    let truncated = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
    assert_eq!(
        result(&auth, &truncated).await,
        Err(AuthFailure::BadSignature)
    );
    assert_eq!(result(&auth, &token).await, Ok(()));
}

#[tokio::test]
async fn alg_none_is_never_accepted() {
    let auth = authenticator();
    for none in ["none", "None", "NONE"] {
        let header = b64(json!({"alg": none, "typ": "JWT"}).to_string().as_bytes());
        let payload = b64(valid(json!({})).to_string().as_bytes());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            assert_eq!(
                result(&auth, &token).await,
                Err(AuthFailure::AlgorithmNotAllowed),
                "{token}"
            );
        }
    }
}

#[tokio::test]
async fn algorithms_outside_the_list_are_refused() {
    let auth = authenticator();
    let token = hmac_token("HS512", SECRET, json!({}), &valid(json!({})));
    assert_eq!(
        result(&auth, &token).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
    let token = TestKey::Rsa(rsa()).sign("RS256", json!({}), &valid(json!({})));
    assert_eq!(
        result(&auth, &token).await,
        Err(AuthFailure::AlgorithmNotAllowed)
    );
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let key = TestKey::Rsa(rsa());
    let pem = key.public_pem();
    let auth = Authenticator::builder()
        .public_key_pem(pem.clone())
        .build()
        .unwrap();
    // The classic confusion: the attacker HMACs with the public key text as the secret.
    for secret in [pem.as_bytes(), pem.trim_end().as_bytes()] {
        let token = hmac_token(
            "HS256",
            secret,
            json!({}),
            &claims(json!({"role": "admin"})),
        );
        assert_eq!(
            result(&auth, &token).await,
            Err(AuthFailure::AlgorithmNotAllowed)
        );
    }
    // And the configuration that would allow it is refused up front.
    let err = Authenticator::builder()
        .public_key_pem(pem)
        .algorithms([Algorithm::RS256, Algorithm::HS256])
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("HS256"), "{err}");
}

#[tokio::test]
async fn header_oddities() {
    let auth = authenticator();
    let payload = valid(json!({}));
    // A `kid` does not matter with a single configured key.
    assert_eq!(
        result(
            &auth,
            &hmac_token("HS256", SECRET, json!({"kid": "k9"}), &payload)
        )
        .await,
        Ok(())
    );
    // Critical extensions are not understood, so they are refused.
    let crit = hmac_token(
        "HS256",
        SECRET,
        json!({"crit": ["exp"], "exp": 1}),
        &payload,
    );
    assert_eq!(result(&auth, &crit).await, Err(AuthFailure::MalformedToken));

    // A header naming `alg` twice (parsers disagree on which wins) is malformed.
    let header = b64(br#"{"alg":"HS256","alg":"none"}"#);
    let input = format!("{header}.{}", b64(payload.to_string().as_bytes()));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", b64(tag.as_ref()));
    assert_eq!(
        result(&auth, &token).await,
        Err(AuthFailure::MalformedToken)
    );
}

#[tokio::test]
async fn malformed_tokens() {
    let auth = authenticator();
    let header = b64(json!({"alg": "HS256"}).to_string().as_bytes());
    let not_an_object = hmac_token("HS256", SECRET, json!({}), &json!(["a"]));
    for token in [
        "abc".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "e30.e30.x+y".to_owned(),
        format!("{}.e30.sig", header.replace('J', "+")),
        format!("{header}=.e30.sig"),
        format!("{}.e30.", b64(b"not json")),
        "é.é.é".to_owned(),
        not_an_object,
        "a".repeat(9000),
    ] {
        assert_eq!(
            result(&auth, &token).await,
            Err(AuthFailure::MalformedToken),
            "{token}"
        );
    }
    // Outside the base64url alphabet (or padded) after a valid header: the signature, checked
    // before the payload is decoded, cannot match.
    let good = hs256(&claims(json!({})));
    let (head, rest) = good.split_once('.').unwrap();
    let garbage_payload = format!("{head}.%%%.{}", rest.split_once('.').unwrap().1);
    for bad in [
        format!("{good}="),
        format!("{}+", &good[..good.len() - 1]),
        garbage_payload,
    ] {
        assert_eq!(
            result(&auth, &bad).await,
            Err(AuthFailure::BadSignature),
            "{bad}"
        );
    }
}
