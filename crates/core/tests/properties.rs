//! Property tests of the parsers of untrusted input: `X-Forwarded-For` walking through
//! trusted proxies, duration and byte-size config values, and IP addresses as text.
//!
//! Each property states the rule the code implements; proptest looks for inputs that break
//! it. Failures are not persisted to files: a failing case found here is kept as a regular
//! `#[test]` below instead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use gateway_core::config::{ByteSize, HumanDuration};
use gateway_core::{IpText, TrustedProxies};
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Trusted proxies and X-Forwarded-For
// ---------------------------------------------------------------------------------------------

/// Addresses drawn mostly from a few small ranges, so that trusted networks and chains meet
/// often, plus any address at all.
fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => (0u8..4, 0u8..4).prop_map(|(c, d)| IpAddr::V4(Ipv4Addr::new(10, 0, c, d))),
        2 => (0u8..4).prop_map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))),
        1 => (0u8..4).prop_map(|d| IpAddr::V4(Ipv4Addr::new(203, 0, 113, d))),
        2 => (0u16..4).prop_map(|d| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, d))),
        // The IPv4-mapped form of the small IPv4 range.
        2 => (0u8..4).prop_map(|d| IpAddr::V6(Ipv4Addr::new(10, 0, 0, d).to_ipv6_mapped())),
        1 => Just(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        2 => any::<IpAddr>(),
    ]
}

/// A trusted network as configured: `base/prefix`, or a bare address.
#[derive(Clone, Debug)]
struct Net {
    base: IpAddr,
    /// `None`: written as a bare address (a /32 or /128).
    prefix: Option<u8>,
}

impl Net {
    fn text(&self) -> String {
        match self.prefix {
            Some(prefix) => format!("{}/{prefix}", self.base),
            None => self.base.to_string(),
        }
    }

    /// Whether the network, as written, contains `ip` (compared bit by bit here, not with
    /// `ipnet`).
    fn contains(&self, ip: IpAddr) -> bool {
        let (base, ip, bits) = match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => {
                (u128::from(base.to_bits()), u128::from(ip.to_bits()), 32u32)
            }
            (IpAddr::V6(base), IpAddr::V6(ip)) => (base.to_bits(), ip.to_bits(), 128u32),
            _ => return false,
        };
        let prefix = self.prefix.map_or(bits, u32::from);
        prefix == 0 || (base ^ ip) >> (bits - prefix) == 0
    }
}

fn network() -> impl Strategy<Value = Net> {
    let near = prop_oneof![
        Just((IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8u8)),
        Just((IpAddr::V4(Ipv4Addr::new(10, 0, 1, 0)), 24)),
        Just((IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0)), 24)),
        Just((IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 31)),
        Just((
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
            32
        )),
        Just((
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0)),
            127
        )),
    ]
    .prop_map(|(base, prefix)| Net {
        base,
        prefix: Some(prefix),
    });
    let any_net = (address(), any::<u8>(), any::<bool>()).prop_map(|(base, prefix, bare)| {
        let max = if base.is_ipv4() { 32 } else { 128 };
        Net {
            base,
            prefix: (!bare).then_some(prefix % (max + 1)),
        }
    });
    prop_oneof![3 => near, 2 => any_net]
}

fn trusted_set() -> impl Strategy<Value = (Vec<Net>, TrustedProxies)> {
    prop::collection::vec(network(), 0..4).prop_map(|nets| {
        let texts: Vec<String> = nets.iter().map(Net::text).collect();
        let trusted = TrustedProxies::parse(&texts).expect("generated networks are valid");
        (nets, trusted)
    })
}

/// One comma-separated `X-Forwarded-For` entry and what it means: the address it names
/// (IPv4-mapped addresses are their IPv4 address), or `None` for text that is no address.
#[derive(Clone, Debug)]
struct Entry {
    text: String,
    ip: Option<IpAddr>,
}

fn padding() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 2 => Just(" "), 1 => Just("  "), 1 => Just("\t")]
}

/// Text that is not an address in any accepted form, and holds no comma.
fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("unknown".to_owned()),
        Just("_hidden".to_owned()),
        Just("1.2.3".to_owned()),
        Just("256.1.1.1".to_owned()),
        Just("1.2.3.4:99999".to_owned()),
        Just("[1.2.3.4]".to_owned()),
        Just("[::1".to_owned()),
        Just("fe80::1%eth0".to_owned()),
        Just("10.0.0.1 10.0.0.2".to_owned()),
        "[0-9a-fA-F:.\\[\\]% -]{1,16}",
        // Printable ASCII without a comma (other bytes would make the line opaque).
        "[\\x20-\\x2b\\x2d-\\x7e]{0,12}",
    ]
    .prop_filter("must not be an address", |text| {
        let t = text.trim();
        t.parse::<IpAddr>().is_err()
            && t.parse::<SocketAddr>().is_err()
            && t.strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .is_none_or(|inner| inner.parse::<Ipv6Addr>().is_err())
    })
}

fn entry() -> impl Strategy<Value = Entry> {
    let named = (address(), 0u8..4, any::<u16>(), padding(), padding()).prop_map(
        |(ip, form, port, before, after)| {
            let text = match (form, ip) {
                (1, IpAddr::V4(v4)) => format!("{v4}:{port}"),
                (1, IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
                // Bracketed without a port.
                (2, IpAddr::V6(v6)) => format!("[{v6}]"),
                // IPv4 written as the IPv4-mapped IPv6 address.
                (3, IpAddr::V4(v4)) => v4.to_ipv6_mapped().to_string(),
                _ => ip.to_string(),
            };
            Entry {
                text: format!("{before}{text}{after}"),
                ip: Some(ip.to_canonical()),
            }
        },
    );
    prop_oneof![5 => named, 1 => garbage().prop_map(|text| Entry { text, ip: None })]
}

/// One `X-Forwarded-For` header line. An `opaque` line holds a byte that is not visible
/// ASCII (obs-text): valid in a header value, but not text, so it stops the walk.
#[derive(Clone, Debug)]
struct Line {
    entries: Vec<Entry>,
    opaque: bool,
}

impl Line {
    fn value(&self) -> HeaderValue {
        let mut bytes = self
            .entries
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes();
        if self.opaque {
            bytes.push(0xff);
        }
        HeaderValue::from_bytes(&bytes).expect("generated lines are valid header values")
    }
}

fn lines() -> impl Strategy<Value = Vec<Line>> {
    let line = (
        prop::collection::vec(entry(), 1..5),
        prop::bool::weighted(0.05),
    )
        .prop_map(|(entries, opaque)| Line { entries, opaque });
    prop::collection::vec(line, 0..4)
}

fn xff_headers(lines: &[Line]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("x-real-ip", HeaderValue::from_static("198.51.100.1"));
    for line in lines {
        headers.append("X-Forwarded-For", line.value());
    }
    headers
}

/// The rule of `TrustedProxies::resolve`, over what the entries mean rather than their text:
/// an untrusted peer is the client; from a trusted peer the lines (last first) and their
/// entries (right to left) are walked, and the first untrusted address is the client; an
/// entry that is no address, or a line that is not text, stops the walk and the last address
/// walked (the peer, or a trusted hop) is the client; when every address is trusted, the
/// leftmost one is.
fn expected_client(trusted: &TrustedProxies, peer: IpAddr, lines: &[Line]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for line in lines.iter().rev() {
        if line.opaque {
            return client;
        }
        for entry in line.entries.iter().rev() {
            let Some(ip) = entry.ip else {
                return client;
            };
            client = ip;
            if !trusted.is_trusted(ip) {
                return ip;
            }
        }
    }
    client
}

proptest! {
    #![proptest_config(config())]

    /// `is_trusted` is membership in a configured network, after an IPv4-mapped address is
    /// made the IPv4 address it maps (checked against bit arithmetic here).
    #[test]
    fn trusted_means_inside_a_configured_network((nets, trusted) in trusted_set(), ip in address()) {
        let expected = nets.iter().any(|net| net.contains(ip.to_canonical()));
        prop_assert_eq!(trusted.is_trusted(ip), expected);
        prop_assert_eq!(trusted.is_empty(), nets.is_empty());
    }

    /// The comma-separated form parses to the same set as the list form.
    #[test]
    fn comma_separated_networks_parse_like_the_list((nets, trusted) in trusted_set()) {
        let text = nets.iter().map(Net::text).collect::<Vec<_>>().join(" , ");
        prop_assert_eq!(text.parse::<TrustedProxies>().unwrap(), trusted);
    }

    /// Arbitrary network text never panics, and what parses is an address or a CIDR network.
    #[test]
    fn network_text_never_panics(text in "\\PC{0,24}|[0-9a-f:./]{0,24}") {
        let parsed = TrustedProxies::parse([text.as_str()]);
        let t = text.trim();
        let valid = t.parse::<IpAddr>().is_ok() || t.parse::<ipnet::IpNet>().is_ok();
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", text);
        if let Err(err) = parsed {
            prop_assert!(err.to_string().contains(t));
        }
    }

    /// The client resolved from any chain is exactly what the documented rule gives.
    #[test]
    fn resolve_follows_the_documented_rule(
        (_, trusted) in trusted_set(),
        peer in address(),
        lines in lines(),
    ) {
        let headers = xff_headers(&lines);
        prop_assert_eq!(
            trusted.resolve(peer, &headers),
            expected_client(&trusted, peer, &lines)
        );
    }

    /// An untrusted peer is the client, whatever it sent.
    #[test]
    fn untrusted_peer_is_the_client(
        (_, trusted) in trusted_set(),
        peer in address(),
        lines in lines(),
    ) {
        let client = trusted.resolve(peer, &xff_headers(&lines));
        if !trusted.is_trusted(peer) {
            prop_assert_eq!(client, peer.to_canonical());
        }
    }

    /// The client is the peer or an address of the chain, never an invented one; and it is
    /// a trusted address only when the peer and every address walked are trusted: the whole
    /// chain, or the part right of the first entry that is no address (or line that is not
    /// text).
    #[test]
    fn a_trusted_client_needs_a_fully_trusted_walk(
        (_, trusted) in trusted_set(),
        peer in address(),
        lines in lines(),
    ) {
        let client = trusted.resolve(peer, &xff_headers(&lines));
        let peer = peer.to_canonical();
        let chain: Vec<IpAddr> = lines
            .iter()
            .flat_map(|line| &line.entries)
            .filter_map(|entry| entry.ip)
            .collect();
        prop_assert!(client == peer || chain.contains(&client));

        // The addresses before the walk stops, nearest first.
        let mut walked = Vec::new();
        'lines: for line in lines.iter().rev() {
            if line.opaque {
                break;
            }
            for entry in line.entries.iter().rev() {
                match entry.ip {
                    Some(ip) => walked.push(ip),
                    None => break 'lines,
                }
            }
        }
        if trusted.is_trusted(client) {
            prop_assert!(trusted.is_trusted(peer));
            prop_assert!(walked.iter().all(|ip| trusted.is_trusted(*ip)), "{:?}", walked);
            prop_assert_eq!(client, walked.last().copied().unwrap_or(peer));
        }
    }

    /// Any bytes in any number of `X-Forwarded-For` lines: no panic, and the client is the
    /// peer unless some line holds an address.
    #[test]
    fn arbitrary_header_bytes_never_panic(
        (_, trusted) in trusted_set(),
        peer in address(),
        raw in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
    ) {
        let mut headers = HeaderMap::new();
        let mut texts = Vec::new();
        for bytes in &raw {
            if let Ok(value) = HeaderValue::from_bytes(bytes) {
                texts.push(String::from_utf8_lossy(bytes).into_owned());
                headers.append("x-forwarded-for", value);
            }
        }
        let client = trusted.resolve(peer, &headers);
        if client != peer.to_canonical() {
            let named = |text: &String| {
                text.split(',').any(|entry| {
                    let entry = entry.trim();
                    let entry = entry
                        .strip_prefix('[')
                        .and_then(|e| e.strip_suffix(']'))
                        .unwrap_or(entry);
                    entry.parse::<IpAddr>().map(|ip| ip.to_canonical()) == Ok(client)
                        || entry.parse::<SocketAddr>().map(|a| a.ip().to_canonical()) == Ok(client)
                })
            };
            prop_assert!(texts.iter().any(named), "{:?} from {:?}", client, texts);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Durations and byte sizes
// ---------------------------------------------------------------------------------------------

/// The units `HumanDuration` documents and accepts, with their length in nanoseconds.
const DURATION_UNITS: [(&str, u128); 17] = [
    ("ns", 1),
    ("nsec", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("msec", 1_000_000),
    ("s", 1_000_000_000),
    ("sec", 1_000_000_000),
    ("seconds", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("hours", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
    ("M", 2_630_016_000_000_000),
    ("y", 31_557_600_000_000_000),
];

/// Numbers that reach the edges of the arithmetic, and plain ones.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..1_000,
        2 => any::<u64>(),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(1_000_000_000),
        1 => Just(999_999_999),
        1 => (0u32..64).prop_map(|shift| 1u64 << shift),
    ]
}

fn duration_parts() -> impl Strategy<Value = Vec<(u64, usize, &'static str)>> {
    prop::collection::vec(
        (
            count(),
            0..DURATION_UNITS.len(),
            prop_oneof![Just(""), Just(" ")],
        ),
        1..5,
    )
}

fn duration_text(parts: &[(u64, usize, &str)]) -> String {
    parts
        .iter()
        .map(|(n, unit, gap)| format!("{n}{gap}{}", DURATION_UNITS[*unit].0))
        .collect::<Vec<_>>()
        .join(" ")
}

fn nanos(duration: Duration) -> u128 {
    duration.as_nanos()
}

proptest! {
    #![proptest_config(config())]

    /// No text panics the duration parser; `Deserialize` agrees with `FromStr`.
    #[test]
    fn duration_text_never_panics(text in "\\PC{0,32}|[0-9 .]{0,24}[a-zµM]{0,6}") {
        let parsed = text.parse::<HumanDuration>();
        let deserialized = serde_json::from_value::<HumanDuration>(serde_json::Value::String(text.clone()));
        match (&parsed, &deserialized) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => prop_assert!(false, "FromStr {:?} but Deserialize {:?}", parsed, deserialized),
        }
    }

    /// `N unit ...` is the sum of `N * unit`, computed exactly here: a total that fits a
    /// `Duration` (when the numbers are small) is that total, and no total, however large,
    /// panics; an accepted value is always the exact sum.
    #[test]
    fn durations_add_up_without_overflow_panics(parts in duration_parts()) {
        let text = duration_text(&parts);
        let exact: u128 = parts
            .iter()
            .map(|(n, unit, _)| u128::from(*n) * DURATION_UNITS[*unit].1)
            .sum();
        match text.parse::<HumanDuration>() {
            Ok(parsed) => prop_assert_eq!(nanos(parsed.get()), exact, "{}", text),
            Err(err) => {
                prop_assert!(err.contains(&text), "{}", err);
                let small = parts.iter().all(|(n, _, _)| *n < 1 << 32);
                prop_assert!(!small || exact > nanos(Duration::MAX), "{} rejected: {}", text, err);
            }
        }
    }

    /// Totals at the very top of the range: seconds near `u64::MAX` and sub-second parts that
    /// carry into them. What fits is exact; what does not is an error, never a panic.
    #[test]
    fn durations_at_the_edge_of_the_range(
        secs in (0u64..3).prop_map(|k| u64::MAX - k),
        sub in prop::collection::vec((prop_oneof![Just(0u64), Just(1), Just(500), Just(999), Just(1_000)], 0usize..3), 0..4),
        split in any::<bool>(),
    ) {
        // Sub-second parts in ms, us or ns; the seconds first (in two parts, or one).
        let sub_units = [("ms", 1_000_000u128), ("us", 1_000), ("ns", 1)];
        let mut text = if split {
            format!("{}s {}s", secs / 2, secs - secs / 2)
        } else {
            format!("{secs}s")
        };
        let mut exact = u128::from(secs) * 1_000_000_000;
        for (n, unit) in &sub {
            text.push_str(&format!(" {n}{}", sub_units[*unit].0));
            exact += u128::from(*n) * sub_units[*unit].1;
        }
        match text.parse::<HumanDuration>() {
            Ok(parsed) => prop_assert_eq!(nanos(parsed.get()), exact, "{}", text),
            Err(_) => prop_assert!(exact > nanos(Duration::MAX), "{} fits but was rejected", text),
        }
    }

    /// Formatting a duration and parsing the text gives the same duration, over the whole
    /// range.
    #[test]
    fn durations_round_trip_through_their_text(
        secs in prop_oneof![0u64..100_000, any::<u64>(), (0u64..3).prop_map(|k| u64::MAX - k)],
        subsec in prop_oneof![Just(0u32), 0u32..1_000_000_000, Just(999_999_999)],
    ) {
        let duration = HumanDuration(Duration::new(secs, subsec));
        let text = duration.to_string();
        prop_assert_eq!(text.parse::<HumanDuration>(), Ok(duration), "{}", text);
    }
}

/// The units `ByteSize` accepts, with their size.
const SIZE_UNITS: [(&str, u64); 11] = [
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("kib", 1 << 10),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("mib", 1 << 20),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("gib", 1 << 30),
];

/// `unit` with each letter upper- or lowercase as `mask` says.
fn with_case(unit: &str, mask: u8) -> String {
    unit.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> i & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// `N unit` (any case, any spacing) is `N * unit` when that fits a `u64`, an error (not a
    /// panic, not a wrapped value) when it does not.
    #[test]
    fn sizes_multiply_without_overflow_panics(
        n in count(),
        unit in 0..SIZE_UNITS.len(),
        mask in any::<u8>(),
        before in padding(),
        gap in padding(),
        after in padding(),
    ) {
        let (name, multiplier) = SIZE_UNITS[unit];
        let text = format!("{before}{n}{gap}{}{after}", with_case(name, mask));
        let parsed = text.parse::<ByteSize>();
        match n.checked_mul(multiplier) {
            Some(bytes) => prop_assert_eq!(parsed, Ok(ByteSize(bytes)), "{:?}", text),
            None => prop_assert!(parsed.unwrap_err().contains("too large"), "{:?}", text),
        }
    }

    /// No text panics the size parser; an accepted text is digits and a known unit, and
    /// `Deserialize` of the text agrees with `FromStr`.
    #[test]
    fn size_text_never_panics(text in "\\PC{0,24}|[0-9]{0,22} ?[kKmMgGiIbB]{0,3}") {
        let parsed = text.parse::<ByteSize>();
        if let Ok(size) = &parsed {
            let t = text.trim();
            let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (number, unit) = t.split_at(digits);
            let unit = unit.trim().to_ascii_lowercase();
            let (_, multiplier) = SIZE_UNITS
                .iter()
                .find(|(name, _)| *name == unit)
                .expect("accepted with a known unit");
            prop_assert_eq!(number.parse::<u64>().unwrap() * multiplier, size.bytes());
        }
        let deserialized = serde_json::from_value::<ByteSize>(serde_json::Value::String(text.clone()));
        prop_assert_eq!(parsed.ok(), deserialized.ok());
    }

    /// JSON numbers: non-negative integers are byte counts, negative ones and fractions are
    /// errors.
    #[test]
    fn size_numbers_deserialize_as_byte_counts(n in any::<i64>(), u in any::<u64>(), f in any::<f64>()) {
        prop_assert_eq!(serde_json::from_value::<ByteSize>(u.into()).unwrap(), ByteSize(u));
        let signed = serde_json::from_value::<ByteSize>(n.into());
        match u64::try_from(n) {
            Ok(n) => prop_assert_eq!(signed.unwrap(), ByteSize(n)),
            Err(_) => prop_assert!(signed.is_err()),
        }
        if f.fract() != 0.0 || !f.is_finite() {
            prop_assert!(serde_json::from_value::<ByteSize>(serde_json::json!(f)).is_err());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IP addresses as text
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    /// `IpText` writes exactly what `Display` writes, for every address, through every way
    /// out (text, bytes, header value).
    #[test]
    fn ip_text_is_display(ip in any::<IpAddr>()) {
        let text = IpText::new(ip);
        let display = ip.to_string();
        prop_assert_eq!(text.as_str(), display.as_str());
        prop_assert_eq!(text.as_bytes(), display.as_bytes());
        prop_assert!(text.as_bytes().len() <= IpText::MAX_LEN);
        prop_assert_eq!(text.to_string(), display.clone());
        prop_assert_eq!(IpText::from(ip), text);
        prop_assert_eq!(text.into_header_value(), HeaderValue::from_str(&display).unwrap());
    }

    /// The IPv4 and IPv6 conversions agree with `Display` too, the IPv4-mapped addresses
    /// (written in dotted form by `Display`) included.
    #[test]
    fn ip_text_of_each_family_is_display(v4 in any::<Ipv4Addr>(), v6 in any::<Ipv6Addr>()) {
        prop_assert_eq!(IpText::from(v4).to_string(), v4.to_string());
        prop_assert_eq!(IpText::from(v6).to_string(), v6.to_string());
        let mapped = v4.to_ipv6_mapped();
        prop_assert_eq!(IpText::from(mapped).to_string(), mapped.to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: cases the properties found
// ---------------------------------------------------------------------------------------------

/// `humantime` 2.4 panics (`overflow in Duration::new`) when the seconds reach `u64::MAX` and
/// the nanoseconds carry exactly one second (chronotope/humantime#66); such a total is too
/// large, an error.
#[test]
fn duration_that_carries_past_the_maximum_is_an_error_not_a_panic() {
    for text in [
        "18446744073709551615s 1000000000ns",
        "18446744073709551615s 1000ms",
        "18446744073709551615s 999999999ns 1ns",
        "18446744073709551615s 500ms 500ms",
        "9223372036854775807s 9223372036854775808s 1000000us",
        "18446744073709551615s 0.5s 0.5s",
    ] {
        let err = text.parse::<HumanDuration>().unwrap_err();
        assert!(err.contains("too large"), "{text}: {err}");
    }
    // The largest duration still parses, written out in full or from its own text.
    let max = HumanDuration(Duration::MAX);
    assert_eq!(max.to_string().parse::<HumanDuration>(), Ok(max));
    assert_eq!(
        "18446744073709551615s 999999999ns".parse::<HumanDuration>(),
        Ok(max)
    );
}

/// A bracketed IPv6 entry without a port (`[2001:db8::1]`) names that address: it used to
/// stop the walk, so every IPv6 client behind a proxy writing that form was attributed to
/// the proxy.
#[test]
fn bracketed_ipv6_entry_without_a_port_is_the_address() {
    let trusted = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static(" [2001:db8::7] , 10.0.0.2"),
    );
    let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(
        trusted.resolve(peer, &headers),
        "2001:db8::7".parse::<IpAddr>().unwrap()
    );
    // Only IPv6 is bracketed: `[10.0.0.9]` is no address and stops the walk.
    headers.insert(
        "x-forwarded-for",
        HeaderValue::from_static("[10.0.0.9], 10.0.0.2"),
    );
    assert_eq!(
        trusted.resolve(peer, &headers),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))
    );
}
