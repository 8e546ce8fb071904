//! Static storage for the names and values of static rules.
//!
//! A `HeaderName` or `HeaderValue` built from a runtime string is reference counted: every
//! clone and drop is an atomic operation on a shared counter, and a static rule clones its
//! name and value on every request. Built from a `&'static` string instead, both are copied
//! like plain pointers. Config strings are interned once, at start-up and on reloads, and
//! never freed; interning keeps reloads of the same config from growing memory.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

static INTERNED: Mutex<Option<HashSet<&'static [u8]>>> = Mutex::new(None);

fn intern(bytes: &[u8]) -> &'static [u8] {
    // Only config loading takes this lock, never a request.
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    let set = interned.get_or_insert_with(HashSet::new);
    if let Some(stored) = set.get(bytes) {
        return stored;
    }
    let stored: &'static [u8] = Box::leak(bytes.into());
    set.insert(stored);
    stored
}

/// The same value, backed by static storage.
pub(crate) fn static_value(value: &HeaderValue) -> HeaderValue {
    let mut stored = HeaderValue::from_maybe_shared(Bytes::from_static(intern(value.as_bytes())))
        .unwrap_or_else(|_| value.clone());
    stored.set_sensitive(value.is_sensitive());
    stored
}

/// The same name, backed by static storage (standard names already are).
pub(crate) fn static_name(name: &HeaderName) -> HeaderName {
    let stored = intern(name.as_str().as_bytes());
    match std::str::from_utf8(stored) {
        // A `HeaderName`'s text is lowercase and valid, so `from_static` accepts it.
        Ok(text) => HeaderName::from_static(text),
        Err(_) => name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_copies_are_equal_and_shared() {
        let value = HeaderValue::from_str("max-age=31536000; includeSubDomains").unwrap();
        let a = static_value(&value);
        let b = static_value(&value);
        assert_eq!(a, value);
        assert_eq!(a.as_bytes().as_ptr(), b.as_bytes().as_ptr());

        let name = HeaderName::from_bytes(b"X-Custom-Name").unwrap();
        assert_eq!(static_name(&name), name);
        assert_eq!(static_name(&http::header::COOKIE), http::header::COOKIE);
    }

    #[test]
    fn non_ascii_values_survive() {
        let value = HeaderValue::from_bytes("café".as_bytes()).unwrap();
        assert_eq!(static_value(&value).as_bytes(), "café".as_bytes());
    }
}
