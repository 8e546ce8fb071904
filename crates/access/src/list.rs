//! The policy: allow and deny lists of networks, checked on one IP address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// IP allow and deny lists, checked on a client IP by [`permits`](Self::permits).
///
/// - A client in the deny list is refused, even when the allow list has it too.
/// - A non-empty allow list refuses every client not in it.
/// - An empty allow list allows every client not denied.
///
/// Addresses are compared in their canonical form: an IPv4-mapped IPv6 address
/// (`::ffff:10.1.2.3`) is the IPv4 address it maps (`10.1.2.3`), so IPv4 networks match
/// mapped clients. An IPv6 network inside `::ffff:0:0/96` (`::ffff:10.0.0.0/104`) is the IPv4
/// network it maps (`10.0.0.0/8`); other IPv6 networks match IPv6 clients only (`::/0` covers
/// no IPv4 client).
///
/// The networks are kept as integer (network, mask) pairs, IPv4 and IPv6 apart and overlapping
/// or adjacent networks merged, so a check is a short scan over integers that allocates
/// nothing. Cloning shares the lists (an [`Arc`]); the default list allows everyone.
///
/// ```
/// use gateway_access::AccessList;
///
/// let list = AccessList::new(
///     ["10.0.0.0/8".parse().unwrap(), "2001:db8::/32".parse().unwrap()],
///     ["10.6.6.0/24".parse().unwrap()],
/// );
/// assert!(list.permits("10.1.2.3".parse().unwrap()));
/// assert!(list.permits("::ffff:10.1.2.3".parse().unwrap()));
/// assert!(list.permits("2001:db8::1".parse().unwrap()));
/// assert!(!list.permits("10.6.6.6".parse().unwrap()));
/// assert!(!list.permits("192.0.2.1".parse().unwrap()));
/// assert!(!list.permits_unknown());
/// ```
#[derive(Clone, Default)]
pub struct AccessList {
    inner: Arc<Lists>,
}

#[derive(Default)]
struct Lists {
    allow: Networks,
    deny: Networks,
}

/// One list, by address family: `(network, mask)` with the host bits of `network` cleared.
#[derive(Default)]
struct Networks {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

impl AccessList {
    /// Allows the `allow` networks (all clients, when empty) except the `deny` networks.
    ///
    /// Host bits of a network are ignored (`10.1.2.3/8` is `10.0.0.0/8`); an address is
    /// [`IpNet::from`] it, a `/32` or `/128`.
    pub fn new(
        allow: impl IntoIterator<Item = IpNet>,
        deny: impl IntoIterator<Item = IpNet>,
    ) -> Self {
        Self {
            inner: Arc::new(Lists {
                allow: Networks::new(allow),
                deny: Networks::new(deny),
            }),
        }
    }

    /// Whether a client with this IP may pass: not denied, and allowed (or no allow list).
    #[inline]
    pub fn permits(&self, ip: IpAddr) -> bool {
        let lists = &*self.inner;
        match ip.to_canonical() {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                !contains(&lists.deny.v4, ip)
                    && (lists.allow.is_empty() || contains(&lists.allow.v4, ip))
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                !contains(&lists.deny.v6, ip)
                    && (lists.allow.is_empty() || contains(&lists.allow.v6, ip))
            }
        }
    }

    /// Whether a client whose IP is unknown may pass: only when the allow list is empty (a
    /// deny list alone cannot refuse what it cannot see, an allow list cannot admit it).
    #[inline]
    pub fn permits_unknown(&self) -> bool {
        self.inner.allow.is_empty()
    }
}

#[inline]
fn contains<T>(networks: &[(T, T)], ip: T) -> bool
where
    T: Copy + Eq + std::ops::BitAnd<Output = T>,
{
    networks.iter().any(|&(network, mask)| ip & mask == network)
}

impl Networks {
    fn new(networks: impl IntoIterator<Item = IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for network in networks {
            match network {
                IpNet::V4(network) => v4.push(network),
                IpNet::V6(network) => match mapped_v4(network) {
                    Some(network) => v4.push(network),
                    None => v6.push(network),
                },
            }
        }
        Self {
            v4: Ipv4Net::aggregate(&v4)
                .into_iter()
                .map(|net| (u32::from(net.network()), u32::from(net.netmask())))
                .collect(),
            v6: Ipv6Net::aggregate(&v6)
                .into_iter()
                .map(|net| (u128::from(net.network()), u128::from(net.netmask())))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The networks, IPv4 first (ipnet's `Debug` is the CIDR notation).
    fn nets(&self) -> impl Iterator<Item = IpNet> + '_ {
        let v4 = self.v4.iter().map(|&(network, mask)| {
            IpNet::V4(Ipv4Net::new_assert(
                Ipv4Addr::from(network),
                mask.count_ones() as u8,
            ))
        });
        let v6 = self.v6.iter().map(|&(network, mask)| {
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::from(network),
                mask.count_ones() as u8,
            ))
        });
        v4.chain(v6)
    }
}

/// The IPv4 network an IPv6 network inside `::ffff:0:0/96` maps, if it is one.
fn mapped_v4(network: Ipv6Net) -> Option<Ipv4Net> {
    let prefix = network.prefix_len().checked_sub(96)?;
    let address = network.network().to_ipv4_mapped()?;
    Ipv4Net::new(address, prefix).ok()
}

impl fmt::Debug for AccessList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<'a>(&'a Networks);
        impl fmt::Debug for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.nets()).finish()
            }
        }
        f.debug_struct("AccessList")
            .field("allow", &List(&self.inner.allow))
            .field("deny", &List(&self.inner.deny))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|net| {
                net.parse()
                    .unwrap_or_else(|_| ipnet::IpNet::from(net.parse::<IpAddr>().unwrap()))
            })
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_bits_are_ignored() {
        let list = AccessList::new(nets(&["10.1.2.3/8", "2001:db8::1/32"]), []);
        assert!(list.permits(ip("10.200.0.1")));
        assert!(list.permits(ip("2001:db8:ffff::1")));
        assert!(!list.permits(ip("11.0.0.1")));
    }

    #[test]
    fn zero_prefix_matches_its_whole_family() {
        let list = AccessList::new([], nets(&["0.0.0.0/0"]));
        assert!(!list.permits(ip("203.0.113.1")));
        assert!(!list.permits(ip("::ffff:203.0.113.1")));
        assert!(list.permits(ip("2001:db8::1")));
        let list = AccessList::new([], nets(&["::/0"]));
        assert!(list.permits(ip("203.0.113.1")));
        assert!(list.permits(ip("::ffff:203.0.113.1")));
        assert!(!list.permits(ip("::1")));
    }

    #[test]
    fn mapped_networks_are_ipv4_networks() {
        let list = AccessList::new([], nets(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.7"]));
        assert!(!list.permits(ip("10.9.9.9")));
        assert!(!list.permits(ip("192.0.2.7")));
        assert!(!list.permits(ip("::ffff:192.0.2.7")));
        assert!(list.permits(ip("192.0.2.8")));
        assert_eq!(
            format!("{list:?}"),
            "AccessList { allow: [], deny: [10.0.0.0/8, 192.0.2.7/32] }"
        );
    }

    #[test]
    fn adjacent_networks_are_merged_and_debug_shows_them() {
        let list = AccessList::new(
            nets(&["10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "2001:db8::/32"]),
            nets(&["192.0.2.1"]),
        );
        assert_eq!(list.inner.allow.v4.len(), 1);
        assert_eq!(
            format!("{list:?}"),
            "AccessList { allow: [10.0.0.0/8, 2001:db8::/32], deny: [192.0.2.1/32] }"
        );
    }

    #[test]
    fn the_default_list_permits_everyone() {
        let list = AccessList::default();
        assert!(list.permits(ip("192.0.2.1")));
        assert!(list.permits(ip("::1")));
        assert!(list.permits_unknown());
    }
}
