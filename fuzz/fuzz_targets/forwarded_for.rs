//! `X-Forwarded-For` walking: any header bytes from any peer resolve to the peer or to an
//! address the chain names, never to a trusted proxy unless every hop is one.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use gateway_core::TrustedProxies;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn trusted() -> &'static TrustedProxies {
    static TRUSTED: OnceLock<TrustedProxies> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        TrustedProxies::parse(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"]).unwrap()
    })
}

fuzz_target!(|input: (bool, [u8; 4], Vec<Vec<u8>>)| {
    let (trusted_peer, octets, lines) = input;
    let peer: IpAddr = if trusted_peer {
        IpAddr::from([10, octets[1], octets[2], octets[3]])
    } else {
        IpAddr::from(octets)
    };
    let mut headers = HeaderMap::new();
    for line in &lines {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", value);
        }
    }
    let client = trusted().resolve(peer, &headers);
    if !trusted().is_trusted(peer) {
        assert_eq!(client, peer, "an untrusted peer is the client");
    } else if client != peer {
        let text: Vec<u8> = lines.concat();
        let named = String::from_utf8_lossy(&text);
        let canonical = client.to_string();
        let mapped = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(|v4| v4.to_string()),
            IpAddr::V4(_) => None,
        };
        assert!(
            named.contains(&canonical)
                || mapped.is_some_and(|v4| named.contains(&v4))
                || named.to_ascii_lowercase().contains(&canonical),
            "{client} is not in the chain {named:?}"
        );
    }
});
