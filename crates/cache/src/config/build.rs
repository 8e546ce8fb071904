//! From the serde shapes to the runtime values: [`CacheStore`] and [`CachePolicy`].

use http::HeaderName;
use http::header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};

use super::{CacheConfig, RouteCacheConfig};
use crate::error::CacheError;
use crate::policy::CachePolicy;
use crate::store::CacheStore;

impl CacheConfig {
    /// Checks the sizes and builds the store.
    pub fn build(&self) -> Result<CacheStore, CacheError> {
        self.check()?;
        Ok(CacheStore::new(self.max_size.bytes(), self.max_object()))
    }

    /// Checks the sizes without building anything (for `gateway check`).
    pub fn check(&self) -> Result<(), CacheError> {
        let (max_size, max_object) = (self.max_size.bytes(), self.max_object());
        if max_size == 0 {
            return Err(CacheError::EmptyStore);
        }
        if max_object == 0 || max_object > max_size {
            return Err(CacheError::ObjectSize {
                max_object,
                max_size,
            });
        }
        if max_object > u64::from(u32::MAX) {
            return Err(CacheError::ObjectTooLarge(max_object));
        }
        Ok(())
    }
}

impl RouteCacheConfig {
    /// Checks the key headers and builds the route's policy.
    pub fn build(&self) -> Result<CachePolicy, CacheError> {
        let mut names: Vec<HeaderName> = Vec::with_capacity(self.key_headers.len());
        for (index, name) in self.key_headers.iter().enumerate() {
            let parsed =
                HeaderName::from_bytes(name.as_bytes()).map_err(|_| CacheError::KeyHeader {
                    index,
                    name: name.clone(),
                })?;
            if [AUTHORIZATION, PROXY_AUTHORIZATION, COOKIE].contains(&parsed) {
                return Err(CacheError::CredentialKeyHeader {
                    index,
                    name: name.clone(),
                });
            }
            if names.contains(&parsed) {
                return Err(CacheError::DuplicateKeyHeader {
                    index,
                    name: name.clone(),
                });
            }
            names.push(parsed);
        }
        Ok(CachePolicy::new()
            .default_ttl(self.default_ttl.get())
            .stale_while_revalidate(self.stale_while_revalidate.get())
            .stale_if_error(self.stale_if_error.get())
            .authorized(self.authorized)
            .key_headers(names))
    }
}
