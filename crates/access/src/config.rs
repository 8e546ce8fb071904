//! The `[access]` and `[routes.access]` tables, as written.
//!
//! ```toml
//! [access]
//! allow = ["192.168.1.0/24", "2001:db8:1::7"]   # default: empty, every address allowed
//! deny = ["10.1.2.0/24", "2001:db8:bad::/48"]  # default: empty
//! ```
//!
//! Deserializing checks only the shape; [`AccessConfig::build`] checks the entries and names
//! the first bad one (``deny[1]: `10.0.0.0/33` is not an IP address or CIDR ...``).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::AccessError;
use crate::list::AccessList;

/// IP access lists as written in `[access]` (every route) or `[routes.access]` (one route,
/// replacing `[access]` wholesale).
///
/// Each entry is an IP address (`192.168.1.7`, `2001:db8::1`, the same as a `/32` or `/128`)
/// or a CIDR network (`10.0.0.0/8`, `2001:db8::/32`); see [`AccessList`] for how the lists
/// decide.
///
/// ```
/// use gateway_access::config::AccessConfig;
///
/// let config: AccessConfig = toml::from_str(r#"
///     allow = ["192.168.1.0/24", "2001:db8::1"]
///     deny = ["192.168.1.13"]
/// "#).unwrap();
/// let list = config.build().unwrap();
/// assert!(list.permits("192.168.1.7".parse().unwrap()));
/// assert!(!list.permits("192.168.1.13".parse().unwrap()));
/// assert!(!list.permits("10.0.0.1".parse().unwrap()));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// The addresses and networks allowed; when non-empty, every other client is refused.
    /// Empty (the default), every client not denied is allowed.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The addresses and networks refused, even when `allow` lists them too.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl AccessConfig {
    /// Parses the entries and builds the list, naming the first bad entry
    /// (`allow` entries before `deny` entries).
    pub fn build(&self) -> Result<AccessList, AccessError> {
        let allow = parse_entries("allow", &self.allow)?;
        let deny = parse_entries("deny", &self.deny)?;
        Ok(AccessList::new(allow, deny))
    }
}

fn parse_entries(field: &'static str, entries: &[String]) -> Result<Vec<IpNet>, AccessError> {
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            parse_entry(entry).ok_or_else(|| AccessError::InvalidEntry {
                field,
                index,
                entry: entry.clone(),
            })
        })
        .collect()
}

/// A CIDR network (host bits may be set: `10.1.2.3/8` is `10.0.0.0/8`) or a bare address.
fn parse_entry(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_as_networks_or_addresses() {
        assert_eq!(
            parse_entry("10.0.0.0/8"),
            Some("10.0.0.0/8".parse().unwrap())
        );
        assert_eq!(
            parse_entry(" 192.0.2.7 "),
            Some("192.0.2.7/32".parse().unwrap())
        );
        assert_eq!(
            parse_entry("2001:db8::1"),
            Some("2001:db8::1/128".parse().unwrap())
        );
        assert_eq!(parse_entry("10.0.0.0/33"), None);
        assert_eq!(parse_entry("10.0.0"), None);
        assert_eq!(parse_entry(""), None);
        assert_eq!(parse_entry("example.com"), None);
    }
}
