//! Verifying one compact JWS: header, algorithm policy, key, signature, claims.
//!
//! The claims are parsed once, into the map the [`Identity`] shares; the registered claims
//! are checked on that map, so each failure gets its own precise reason.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway_core::Identity;
use http::HeaderValue;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::config::ForwardRule;
use crate::failure::AuthFailure;
use crate::keys::{KeySet, Lookup};
use crate::token::is_compact_jws;

/// What a valid token must look like, beyond its signature.
pub(crate) struct Policy {
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) issuers: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: u64,
    pub(crate) required_claims: Vec<String>,
    pub(crate) roles_claim: String,
    pub(crate) forward: Vec<ForwardRule>,
}

/// A verified token, as cached and shared by every request that presents it.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) identity: Identity,
    /// The role claim's values, for the routes' `roles` checks.
    pub(crate) roles: Box<[Box<str>]>,
    /// One value per forward rule, in rule order (`None`: the token has no such claim).
    pub(crate) forwarded: Box<[Option<HeaderValue>]>,
    /// `exp` in whole seconds (`u64::MAX` without `exp`): the cache never serves the token
    /// at or after it.
    pub(crate) expires_at: u64,
}

impl Verified {
    /// Whether the caller may use a route restricted to `roles` (empty: any caller).
    pub(crate) fn has_role(&self, roles: &[Box<str>]) -> bool {
        roles.is_empty() || self.roles.iter().any(|role| roles.contains(role))
    }
}

/// The result of checking a token against the current keys.
pub(crate) enum Outcome {
    Valid(Verified),
    Invalid(AuthFailure),
    /// No key matches the token: a JWKS refresh may bring it.
    UnknownKey,
}

/// Seconds since the Unix epoch (the unit of `exp` and `nbf`).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
    /// Critical extensions: none is understood, so any presence means reject (RFC 7515
    /// section 4.1.11).
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Decodes base64url into `stack` when it fits, else into `heap`.
fn decode<'b>(input: &str, stack: &'b mut [u8], heap: &'b mut Vec<u8>) -> Option<&'b [u8]> {
    if input.len() / 4 * 3 + 3 <= stack.len() {
        let len = URL_SAFE_NO_PAD.decode_slice(input, stack).ok()?;
        Some(&stack[..len])
    } else {
        URL_SAFE_NO_PAD.decode_vec(input, heap).ok()?;
        Some(heap.as_slice())
    }
}

/// Verifies `token` with `keys` under `policy` at time `now`.
pub(crate) fn verify(token: &str, keys: &KeySet, policy: &Policy, now: u64) -> Outcome {
    if !is_compact_jws(token) {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    }
    // Three segments are guaranteed by the syntax check.
    let Some((signing_input, signature_b64)) = token.rsplit_once('.') else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };
    let Some((header_b64, payload_b64)) = signing_input.split_once('.') else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };

    let (mut stack, mut heap) = ([0u8; 512], Vec::new());
    let Some(header_json) = decode(header_b64, &mut stack, &mut heap) else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };
    let Ok(header) = serde_json::from_slice::<Header<'_>>(header_json) else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };
    if header.crit.is_some() {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    }
    // `none`, unknown names and algorithms outside the list all end here.
    let alg = match header.alg.parse::<Algorithm>() {
        Ok(alg) if policy.algorithms.contains(&alg) => alg,
        _ => return Outcome::Invalid(AuthFailure::AlgorithmNotAllowed),
    };
    let verifier = match keys.select(header.kid.as_deref(), alg) {
        Lookup::Found(verifier) => verifier,
        Lookup::WrongAlgorithm => return Outcome::Invalid(AuthFailure::AlgorithmNotAllowed),
        Lookup::Unknown => return Outcome::UnknownKey,
    };

    let (mut stack, mut heap) = ([0u8; 1024], Vec::new());
    let Some(signature) = decode(signature_b64, &mut stack, &mut heap) else {
        return Outcome::Invalid(AuthFailure::BadSignature);
    };
    if !verifier.verify(signing_input.as_bytes(), signature) {
        return Outcome::Invalid(AuthFailure::BadSignature);
    }

    let (mut stack, mut heap) = ([0u8; 2048], Vec::new());
    let Some(payload) = decode(payload_b64, &mut stack, &mut heap) else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(payload) else {
        return Outcome::Invalid(AuthFailure::MalformedToken);
    };
    match validate_claims(&claims, policy, now) {
        Ok(expires_at) => Outcome::Valid(verified(claims, policy, expires_at)),
        Err(failure) => Outcome::Invalid(failure),
    }
}

/// Checks the registered claims; returns the cache deadline (`exp` in whole seconds).
fn validate_claims(
    claims: &Map<String, Value>,
    policy: &Policy,
    now: u64,
) -> Result<u64, AuthFailure> {
    let present = |name: &str| claims.get(name).filter(|v| !v.is_null());
    if policy
        .required_claims
        .iter()
        .any(|name| present(name).is_none())
    {
        return Err(AuthFailure::MissingClaim);
    }
    let (now_f, leeway) = (now as f64, policy.leeway as f64);
    let expires_at = match present("exp") {
        None => u64::MAX,
        Some(exp) => {
            let exp = exp.as_f64().ok_or(AuthFailure::InvalidClaim)?;
            if exp + leeway < now_f {
                return Err(AuthFailure::Expired);
            }
            // Saturating: a negative `exp` gives 0 (never cached).
            exp as u64
        }
    };
    if let Some(nbf) = present("nbf") {
        let nbf = nbf.as_f64().ok_or(AuthFailure::InvalidClaim)?;
        if nbf > now_f + leeway {
            return Err(AuthFailure::NotYetValid);
        }
    }
    if !policy.issuers.is_empty() {
        let issuer = claims.get("iss").and_then(Value::as_str);
        if !issuer.is_some_and(|iss| policy.issuers.iter().any(|i| i == iss)) {
            return Err(AuthFailure::WrongIssuer);
        }
    }
    if !policy.audiences.is_empty() {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|a| policy.audiences.iter().any(|x| x == a))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(auds)) => auds.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => false,
        };
        if !ok {
            return Err(AuthFailure::WrongAudience);
        }
    }
    Ok(expires_at)
}

fn verified(claims: Map<String, Value>, policy: &Policy, expires_at: u64) -> Verified {
    let roles = match claims.get(&policy.roles_claim) {
        Some(Value::String(role)) => vec![role.as_str().into()],
        Some(Value::Array(roles)) => roles
            .iter()
            .filter_map(Value::as_str)
            .map(Into::into)
            .collect(),
        _ => Vec::new(),
    };
    let forwarded = policy
        .forward
        .iter()
        .map(|rule| {
            let value = rule
                .claims
                .iter()
                .find_map(|name| claim_text(claims.get(name)?))?;
            HeaderValue::try_from(value).ok()
        })
        .collect();
    Verified {
        identity: Identity::new(Arc::new(claims)),
        roles: roles.into_boxed_slice(),
        forwarded,
        expires_at,
    }
}

/// A claim as header text: scalars as text, arrays of scalars joined with `,`.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|item| match item {
                    Value::Array(_) => None,
                    other => claim_text(other),
                })
                .collect();
            Some(parts?.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy {
            algorithms: vec![Algorithm::HS256],
            issuers: vec!["iss".into()],
            audiences: vec!["a".into(), "b".into()],
            leeway: 10,
            required_claims: vec!["exp".into()],
            roles_claim: "role".into(),
            forward: crate::config::Forward::default().0,
        }
    }

    fn check(claims: Value, now: u64) -> Result<u64, AuthFailure> {
        let Value::Object(map) = claims else {
            unreachable!()
        };
        validate_claims(&map, &policy(), now)
    }

    #[test]
    fn exp_and_nbf_with_leeway_edges() {
        let base = json!({"iss": "iss", "aud": "a"});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            c["exp"] = c.get("exp").cloned().unwrap_or(json!(2000));
            c
        };
        assert_eq!(check(with("exp", json!(1000)), 1010), Ok(1000));
        assert_eq!(
            check(with("exp", json!(1000)), 1011),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            check(with("exp", json!(999.5)), 1010),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            check(with("exp", json!("1000")), 0),
            Err(AuthFailure::InvalidClaim)
        );
        assert_eq!(check(with("nbf", json!(1010)), 1000), Ok(2000));
        assert_eq!(
            check(with("nbf", json!(1011)), 1000),
            Err(AuthFailure::NotYetValid)
        );
        assert_eq!(check(base.clone(), 1000), Err(AuthFailure::MissingClaim));
    }

    #[test]
    fn issuer_and_audience() {
        let ok = json!({"exp": 2000, "iss": "iss", "aud": ["x", "b"]});
        assert!(check(ok, 1000).is_ok());
        let c = json!({"exp": 2000, "iss": "other", "aud": "a"});
        assert_eq!(check(c, 1000), Err(AuthFailure::WrongIssuer));
        let c = json!({"exp": 2000, "aud": "a"});
        assert_eq!(check(c, 1000), Err(AuthFailure::WrongIssuer));
        let c = json!({"exp": 2000, "iss": "iss", "aud": ["x"]});
        assert_eq!(check(c, 1000), Err(AuthFailure::WrongAudience));
        let c = json!({"exp": 2000, "iss": "iss"});
        assert_eq!(check(c, 1000), Err(AuthFailure::WrongAudience));
    }

    #[test]
    fn forwarded_values_and_roles() {
        let Value::Object(claims) = json!({"sub": "s-1", "role": ["admin", "dev"], "exp": 5})
        else {
            unreachable!()
        };
        let v = verified(claims, &policy(), 5);
        assert_eq!(v.forwarded[0].as_ref().unwrap(), "s-1");
        assert_eq!(v.forwarded[1].as_ref().unwrap(), "admin,dev");
        assert_eq!(&*v.roles, [Box::from("admin"), Box::from("dev")]);

        let Value::Object(claims) = json!({"user_id": 42, "sub": "s", "role": {"x": 1}}) else {
            unreachable!()
        };
        let v = verified(claims, &policy(), 5);
        assert_eq!(v.forwarded[0].as_ref().unwrap(), "42");
        assert!(v.forwarded[1].is_none());
        assert!(v.roles.is_empty());
    }

    #[test]
    fn header_values_that_would_split_a_header_are_not_forwarded() {
        let Value::Object(claims) = json!({"user_id": "a\r\nX-Admin: 1"}) else {
            unreachable!()
        };
        let v = verified(claims, &policy(), 5);
        assert!(v.forwarded[0].is_none());
    }
}
