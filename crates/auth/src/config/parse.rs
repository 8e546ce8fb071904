//! Parsers of single values: the `deserialize_with` functions of [`JwtConfig`]'s fields
//! and the checks the builder shares with them, each failing with the message the config
//! loader shows.
//!
//! [`JwtConfig`]: super::JwtConfig

use std::fmt;
use std::str::FromStr;

use http::Uri;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A string or a list of strings.
pub(super) struct OneOrMany(pub(super) Vec<String>);

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

pub(super) fn de_one_or_many<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    OneOrMany::deserialize(deserializer).map(|OneOrMany(items)| items)
}

/// Parses an algorithm name as written in a JWT header.
fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
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

pub(super) fn de_algorithms<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Algorithm>, D::Error> {
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

pub(super) fn de_jwks_url<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Uri>, D::Error> {
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

pub(super) fn de_token_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
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

pub(super) fn de_realm<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
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
