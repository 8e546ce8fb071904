//! The verified identity of a request's caller, shared between layers.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The verified claims of the caller, stored in request extensions by the auth layer.
///
/// Cloning is cheap (the claims are shared). The [`subject`](Identity::subject) is the claim
/// that names the user: `user_id` when present, else `sub`.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    claims: Arc<Map<String, Value>>,
    subject: Option<Arc<str>>,
}

impl Identity {
    /// An identity from a verified claim set.
    pub fn new(claims: Arc<Map<String, Value>>) -> Self {
        let subject = ["user_id", "sub"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(claim_to_string))
            .map(Arc::from);
        Self { claims, subject }
    }

    /// The user's id: the `user_id` claim, else `sub`.
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// One claim by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    /// A claim rendered as text: strings as they are, numbers and booleans in JSON form;
    /// arrays and objects are not text and give `None`.
    pub fn claim_text(&self, name: &str) -> Option<String> {
        self.claims.get(name).and_then(claim_to_string)
    }

    /// All claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

fn claim_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity(value: Value) -> Identity {
        let Value::Object(map) = value else {
            unreachable!()
        };
        Identity::new(Arc::new(map))
    }

    #[test]
    fn user_id_wins_over_sub() {
        assert_eq!(
            identity(json!({"sub": "s", "user_id": "u"})).subject(),
            Some("u")
        );
        assert_eq!(identity(json!({"sub": "s"})).subject(), Some("s"));
        assert_eq!(identity(json!({"user_id": 42})).subject(), Some("42"));
        assert_eq!(identity(json!({"role": "admin"})).subject(), None);
    }

    #[test]
    fn claim_text_renders_scalars_only() {
        let id = identity(json!({"n": 1.5, "b": true, "a": ["x"]}));
        assert_eq!(id.claim_text("n").as_deref(), Some("1.5"));
        assert_eq!(id.claim_text("b").as_deref(), Some("true"));
        assert_eq!(id.claim_text("a"), None);
    }
}
