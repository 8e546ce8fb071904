//! IP addresses as text, written on the stack.
//!
//! Every request writes its client address somewhere: a forwarding header, a header template,
//! an access log line. [`IpText`] is that text, written once into a fixed buffer without an
//! allocation; the caller copies the bytes where they go, or makes a header value of them.
//! IPv4 is written by hand: most clients are IPv4, and the formatting machinery costs several
//! times more.

use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use http::HeaderValue;

/// The text of an IP address, as [`Display`](fmt::Display) writes it, held on the stack.
///
/// ```
/// use std::net::IpAddr;
///
/// use gateway_core::IpText;
///
/// let ip: IpAddr = "192.0.2.7".parse().unwrap();
/// let text = IpText::new(ip);
/// assert_eq!(text.as_str(), "192.0.2.7");
///
/// // Into a buffer, such as a log line.
/// let mut line = b"client=".to_vec();
/// line.extend_from_slice(text.as_bytes());
/// assert_eq!(line, b"client=192.0.2.7");
///
/// // Or as a header value that owns the text.
/// assert_eq!(text.into_header_value(), "192.0.2.7");
/// ```
///
/// An IPv4-mapped IPv6 address stays IPv6 (`::ffff:192.0.2.7`); call
/// [`IpAddr::to_canonical`] first to write it as the IPv4 address it maps.
#[derive(Clone, Copy)]
pub struct IpText {
    buf: [u8; IpText::MAX_LEN],
    len: u8,
}

impl IpText {
    /// The longest text of an address, 45 bytes
    /// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`): the buffer holds any address.
    pub const MAX_LEN: usize = 45;

    /// Writes the text of `ip`.
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::from(v4),
            IpAddr::V6(v6) => Self::from(v6),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, colons and hex digits are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The text as a header value that owns it: one allocation, which the value's clones
    /// share (a forwarding header and a real-IP header holding the same address, say).
    pub fn into_header_value(self) -> HeaderValue {
        // Digits, dots, colons and hex digits: always a valid header value.
        HeaderValue::from_maybe_shared(Bytes::from_owner(self))
            .unwrap_or(HeaderValue::from_static("unknown"))
    }

    fn empty() -> Self {
        Self {
            buf: [0; Self::MAX_LEN],
            len: 0,
        }
    }
}

impl From<Ipv4Addr> for IpText {
    fn from(ip: Ipv4Addr) -> Self {
        let mut text = Self::empty();
        let (buf, mut len) = (&mut text.buf, 0);
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        // At most 15 bytes.
        text.len = len as u8;
        text
    }
}

impl From<Ipv6Addr> for IpText {
    fn from(ip: Ipv6Addr) -> Self {
        let mut text = Self::empty();
        let mut rest = &mut text.buf[..];
        // The buffer holds any address, so the write cannot fail.
        let _ = write!(rest, "{ip}");
        let len = Self::MAX_LEN - rest.len();
        text.len = len as u8;
        text
    }
}

impl From<IpAddr> for IpText {
    fn from(ip: IpAddr) -> Self {
        Self::new(ip)
    }
}

impl From<IpText> for HeaderValue {
    fn from(text: IpText) -> Self {
        text.into_header_value()
    }
}

impl AsRef<[u8]> for IpText {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl AsRef<str> for IpText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for IpText {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for IpText {}

impl fmt::Display for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IpText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IpText").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "1.20.255.3",
            "10.0.7.99",
            "10.100.200.255",
            "192.168.100.1",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::ff:1",
            "::ffff:192.0.2.7",
            "fe80::1:2:3:4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let text = IpText::new(ip);
            assert_eq!(text.as_str(), ip.to_string());
            assert_eq!(text.as_bytes(), ip.to_string().as_bytes());
            assert_eq!(text.to_string(), ip.to_string());
        }
    }

    #[test]
    fn every_ipv4_octet_is_written_like_display() {
        for octet in 0..=u8::MAX {
            let ip = Ipv4Addr::new(octet, 0, octet, 9);
            assert_eq!(IpText::from(ip).as_str(), ip.to_string());
        }
    }

    #[test]
    fn header_values_own_the_text_and_share_it_when_cloned() {
        let value = IpText::new("2001:db8::1".parse().unwrap()).into_header_value();
        assert_eq!(value, "2001:db8::1");
        let clone = value.clone();
        assert_eq!(clone.as_bytes().as_ptr(), value.as_bytes().as_ptr());
        let v4: HeaderValue = IpText::from(Ipv4Addr::LOCALHOST).into();
        assert_eq!(v4, "127.0.0.1");
    }

    #[test]
    fn equal_addresses_have_equal_texts() {
        let a = IpText::from(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(a, IpText::new("10.0.0.1".parse().unwrap()));
        assert_ne!(a, IpText::from(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(format!("{a:?}"), "IpText(\"10.0.0.1\")");
    }
}
