//! Verification keys, parsed once.
//!
//! jsonwebtoken loads keys (PEM, JWK) into `DecodingKey`s; verifying through its `decode`
//! would parse the public key again (and clone it) on every token. Here each key is parsed
//! once per allowed algorithm into aws-lc-rs objects (the same backend jsonwebtoken's
//! `aws_lc_rs` feature uses), which is what keeps a signature check near the raw
//! primitive's cost.

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

/// Where the keys come from, loaded (read from the environment or a file, not parsed yet).
pub(crate) enum KeyMaterial {
    /// An HMAC secret and the field it came from (for error messages).
    Secret(Vec<u8>, &'static str),
    /// A PEM public key.
    Pem(Vec<u8>),
    /// A JWKS endpoint (fetched later).
    Jwks(http::Uri),
}

/// One algorithm's verifier for one key.
pub(crate) enum Verifier {
    /// Boxed: an HMAC key holds precomputed hash states (over 1 KiB).
    Hmac(Box<hmac::Key>),
    Public(ParsedPublicKey),
}

impl Verifier {
    /// Checks `signature` over `message` (constant time for HMAC).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }

    fn new(key: &DecodingKey, alg: Algorithm) -> Option<Self> {
        if key.family() != alg.family() {
            return None;
        }
        if alg.family() == AlgorithmFamily::Hmac {
            let hmac_alg = match alg {
                Algorithm::HS256 => hmac::HMAC_SHA256,
                Algorithm::HS384 => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            return Some(Self::Hmac(Box::new(hmac::Key::new(
                hmac_alg,
                key.try_get_as_bytes().ok()?,
            ))));
        }
        let parsed = match (key.kind(), rsa_parameters(alg)) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, Some(params)) => {
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .to_parsed_public_key(params)
                .ok()?
            }
            (DecodingKeyKind::SecretOrDer(der), Some(params)) => {
                ParsedPublicKey::new(params, der).ok()?
            }
            (DecodingKeyKind::SecretOrDer(bytes), None) => {
                let verification: &'static dyn signature::VerificationAlgorithm = match alg {
                    Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    Algorithm::EdDSA => &signature::ED25519,
                    _ => return None,
                };
                ParsedPublicKey::new(verification, bytes).ok()?
            }
            (DecodingKeyKind::RsaModulusExponent { .. }, None) => return None,
        };
        Some(Self::Public(parsed))
    }
}

fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// A key with a verifier for each allowed algorithm it can serve.
pub(crate) struct VerifyingKey {
    kid: Option<Box<str>>,
    verifiers: Vec<(Algorithm, Verifier)>,
}

impl VerifyingKey {
    /// Parses `key` for each of `algorithms` it fits; `None` if it fits none.
    pub(crate) fn new(
        kid: Option<&str>,
        key: &DecodingKey,
        algorithms: &[Algorithm],
    ) -> Option<Self> {
        let verifiers: Vec<_> = algorithms
            .iter()
            .filter_map(|&alg| Verifier::new(key, alg).map(|v| (alg, v)))
            .collect();
        (!verifiers.is_empty()).then(|| Self {
            kid: kid.map(Into::into),
            verifiers,
        })
    }

    pub(crate) fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.verifiers.iter().map(|(alg, _)| *alg)
    }

    fn verifier(&self, alg: Algorithm) -> Option<&Verifier> {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
    }
}

/// The outcome of looking up the key for a token.
pub(crate) enum Lookup<'a> {
    Found(&'a Verifier),
    /// The key named by `kid` exists but cannot verify this algorithm.
    WrongAlgorithm,
    Unknown,
}

/// The keys currently trusted.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// No keys (before the first JWKS fetch).
    pub(crate) const EMPTY: KeySet = KeySet { keys: Vec::new() };

    pub(crate) fn new(keys: Vec<VerifyingKey>) -> Self {
        Self { keys }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key for a token: the one whose `kid` matches, else the only key without a `kid`
    /// (a single configured key ignores the token's `kid`) or, for a token without `kid`,
    /// the only key that serves its algorithm. Several candidates never get tried in turn:
    /// that would multiply the cost of every forged token.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let named = kid.and_then(|kid| self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)));
        if let Some(key) = named {
            return key
                .verifier(alg)
                .map_or(Lookup::WrongAlgorithm, Lookup::Found);
        }
        let mut candidates = self
            .keys
            .iter()
            .filter(|k| k.kid.is_none() || kid.is_none())
            .filter_map(|k| k.verifier(alg));
        match (candidates.next(), candidates.next()) {
            (Some(verifier), None) => Lookup::Found(verifier),
            _ => Lookup::Unknown,
        }
    }
}

/// Loads a PEM public key; `algorithms` empty means: the key's usual algorithm.
pub(crate) fn from_pem(pem: &[u8], algorithms: &[Algorithm]) -> Result<VerifyingKey, String> {
    let (key, default_alg) = if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        (key, Algorithm::RS256)
    } else if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        let alg = match key.try_get_as_bytes().map(<[u8]>::len) {
            Ok(97) => Algorithm::ES384,
            _ => Algorithm::ES256,
        };
        (key, alg)
    } else if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        (key, Algorithm::EdDSA)
    } else {
        return Err("not a PEM RSA, EC (P-256, P-384) or Ed25519 public key".to_owned());
    };
    let wanted = if algorithms.is_empty() {
        &[default_alg][..]
    } else {
        algorithms
    };
    let key = VerifyingKey::new(None, &key, wanted).ok_or_else(|| {
        format!("the key cannot verify {wanted:?} (is it a public key of that type?)")
    })?;
    if let Some(unfit) = wanted.iter().find(|alg| key.verifier(**alg).is_none()) {
        return Err(format!("the key cannot verify {unfit:?}"));
    }
    Ok(key)
}
