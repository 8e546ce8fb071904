//! Per-request rendering: what placeholders read from a request, the buffer values are
//! rendered into, and the slots that hold rendered values until the rules apply them.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use gateway_core::{ClientIp, Identity, PeerAddr, RequestId};
use http::header::HOST;
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri};
use serde_json::Value;

use crate::template::{Placeholder, RenderError};

/// The parts of a request that templates read.
pub(crate) struct RequestView<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestView<'a> {
    pub(crate) fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    fn client_ip(&self) -> Option<IpAddr> {
        let ip = self
            .extensions
            .get::<ClientIp>()
            .map(|ip| ip.0)
            .or_else(|| self.extensions.get::<PeerAddr>().map(|peer| peer.0.ip()))?;
        // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; show them as IPv4.
        Some(match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        })
    }

    /// The value of a template that is this one placeholder, made without the render buffer
    /// (cloned when it already is a header value); `None` when it has to be rendered as text.
    pub(crate) fn direct_value(
        &self,
        placeholder: &Placeholder,
    ) -> Option<Result<HeaderValue, RenderError>> {
        match placeholder {
            Placeholder::RequestId => Some(
                self.extensions
                    .get::<RequestId>()
                    .map(|id| id.0.clone())
                    .ok_or(RenderError::Missing),
            ),
            Placeholder::Header(name) => {
                let mut values = self.headers.get_all(name).iter();
                match (values.next(), values.next()) {
                    (None, _) => Some(Err(RenderError::Missing)),
                    (Some(value), None) => Some(Ok(value.clone())),
                    (Some(_), Some(_)) => None,
                }
            }
            Placeholder::Host => self.headers.get(HOST).cloned().map(Ok),
            Placeholder::ClientIp => match self.client_ip() {
                None => Some(Err(RenderError::Missing)),
                Some(IpAddr::V4(v4)) => {
                    let mut text = [0u8; 15];
                    let len = write_ipv4(v4.octets(), &mut text);
                    Some(HeaderValue::from_bytes(&text[..len]).map_err(|_| RenderError::Invalid))
                }
                Some(IpAddr::V6(_)) => None,
            },
            Placeholder::Method => Some(Ok(method_value(self.method))),
            Placeholder::Path => {
                Some(HeaderValue::from_str(self.uri.path()).map_err(|_| RenderError::Invalid))
            }
            Placeholder::Claim(_) => None,
        }
    }

    /// Writes the text of a placeholder.
    pub(crate) fn write(
        &self,
        placeholder: &Placeholder,
        buf: &mut ValueBuf,
    ) -> Result<(), RenderError> {
        match placeholder {
            Placeholder::ClientIp => match self.client_ip().ok_or(RenderError::Missing)? {
                // Most clients are IPv4: format it by hand, `fmt` costs several times more.
                IpAddr::V4(v4) => {
                    let mut text = [0u8; 15];
                    let len = write_ipv4(v4.octets(), &mut text);
                    buf.push(&text[..len]);
                    Ok(())
                }
                IpAddr::V6(v6) => write!(buf, "{v6}").map_err(|_| RenderError::Invalid),
            },
            Placeholder::RequestId => {
                let id = self
                    .extensions
                    .get::<RequestId>()
                    .ok_or(RenderError::Missing)?;
                buf.push(id.0.as_bytes());
                Ok(())
            }
            Placeholder::Method => {
                buf.push(self.method.as_str().as_bytes());
                Ok(())
            }
            Placeholder::Path => {
                buf.push(self.uri.path().as_bytes());
                Ok(())
            }
            Placeholder::Host => {
                if let Some(host) = self.headers.get(HOST) {
                    buf.push(host.as_bytes());
                } else {
                    let authority = self.uri.authority().ok_or(RenderError::Missing)?;
                    buf.push(authority.as_str().as_bytes());
                }
                Ok(())
            }
            Placeholder::Claim(name) => {
                let identity = self
                    .extensions
                    .get::<Identity>()
                    .ok_or(RenderError::Missing)?;
                match identity.claim(name) {
                    Some(Value::String(text)) => buf.push(text.as_bytes()),
                    Some(Value::Number(number)) => {
                        write!(buf, "{number}").map_err(|_| RenderError::Invalid)?;
                    }
                    Some(Value::Bool(flag)) => buf.push(if *flag { b"true" } else { b"false" }),
                    _ => return Err(RenderError::Missing),
                }
                Ok(())
            }
            Placeholder::Header(name) => {
                let mut values = self.headers.get_all(name).iter();
                let first = values.next().ok_or(RenderError::Missing)?;
                buf.push(first.as_bytes());
                for value in values {
                    buf.push(b", ");
                    buf.push(value.as_bytes());
                }
                Ok(())
            }
        }
    }
}

/// The method as a header value; the standard ones are static, so cloning them is free.
fn method_value(method: &Method) -> HeaderValue {
    let text = match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        // An extension method is a token, always a valid header value.
        other => return HeaderValue::from_str(other).unwrap_or(HeaderValue::from_static("")),
    };
    HeaderValue::from_static(text)
}

/// Writes `a.b.c.d` into `out` and returns its length.
fn write_ipv4(octets: [u8; 4], out: &mut [u8; 15]) -> usize {
    let mut len = 0;
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            out[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            out[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            out[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        out[len] = b'0' + octet % 10;
        len += 1;
    }
    len
}

/// Where a value is rendered: on the stack while it is short, on the heap beyond.
pub(crate) struct ValueBuf {
    stack: [u8; STACK_LEN],
    len: usize,
    heap: Vec<u8>,
}

const STACK_LEN: usize = 128;

impl ValueBuf {
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; STACK_LEN],
            len: 0,
            heap: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.heap.is_empty() {
            if let Some(dest) = self.stack.get_mut(self.len..self.len + bytes.len()) {
                dest.copy_from_slice(bytes);
                self.len += bytes.len();
                return;
            }
            self.heap.reserve(self.len + bytes.len());
            self.heap.extend_from_slice(&self.stack[..self.len]);
        }
        self.heap.extend_from_slice(bytes);
    }

    fn as_bytes(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }

    /// The rendered value; text that is not a valid header value (a line break from a claim)
    /// is rejected here, so it never reaches the wire.
    pub(crate) fn to_header_value(&self) -> Result<HeaderValue, RenderError> {
        HeaderValue::from_bytes(self.as_bytes()).map_err(|_| RenderError::Invalid)
    }
}

impl fmt::Write for ValueBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Where the rendered values of one request's templated rules wait until the rules apply
/// them, by slot; `None` means the rule's template rendered nothing. Slots are filled in
/// increasing order.
pub(crate) trait Slots {
    /// Stores slot `slot`'s value.
    fn put(&mut self, slot: usize, value: Option<HeaderValue>);
    /// Takes slot `slot`'s value out.
    fn take(&mut self, slot: usize) -> Option<HeaderValue>;
}

/// Slots on the stack, for rules applied right away (requests): the first few live inline,
/// so a request neither allocates nor moves them.
pub(crate) struct InlineSlots {
    inline: [Option<HeaderValue>; INLINE],
    spill: Vec<Option<HeaderValue>>,
}

const INLINE: usize = 4;

impl InlineSlots {
    pub(crate) fn new() -> Self {
        Self {
            inline: Default::default(),
            spill: Vec::new(),
        }
    }
}

impl Slots for InlineSlots {
    fn put(&mut self, slot: usize, value: Option<HeaderValue>) {
        if let Some(cell) = self.inline.get_mut(slot) {
            *cell = value;
        } else {
            self.spill.push(value);
        }
    }

    fn take(&mut self, slot: usize) -> Option<HeaderValue> {
        match slot.checked_sub(INLINE) {
            None => self.inline.get_mut(slot)?.take(),
            Some(spilled) => self.spill.get_mut(spilled)?.take(),
        }
    }
}

/// Slots that travel in a response future: small to move, and without an allocation unless
/// the rules have templates.
impl Slots for Vec<Option<HeaderValue>> {
    fn put(&mut self, slot: usize, value: Option<HeaderValue>) {
        debug_assert_eq!(slot, self.len(), "slots are filled in order");
        self.push(value);
    }

    fn take(&mut self, slot: usize) -> Option<HeaderValue> {
        self.get_mut(slot)?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_written_like_display() {
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.7.99",
            "192.168.100.1",
            "1.20.255.3",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = [0u8; 15];
            let len = write_ipv4(ip.octets(), &mut out);
            assert_eq!(&out[..len], ip.to_string().as_bytes());
        }
    }

    #[test]
    fn buffer_spills_to_the_heap_and_keeps_the_bytes() {
        let mut buf = ValueBuf::new();
        let chunk = [b'a'; 100];
        buf.push(&chunk);
        buf.push(&chunk);
        buf.push(b"z");
        let value = buf.to_header_value().unwrap();
        assert_eq!(value.len(), 201);
        assert!(value.as_bytes()[..200].iter().all(|b| *b == b'a'));
        assert_eq!(value.as_bytes()[200], b'z');
    }

    #[test]
    fn slots_beyond_the_inline_ones_are_kept() {
        let mut rendered = InlineSlots::new();
        for slot in 0..7 {
            rendered.put(slot, Some(HeaderValue::from(slot)));
        }
        for slot in (0..7).rev() {
            assert_eq!(rendered.take(slot), Some(HeaderValue::from(slot)));
            assert_eq!(rendered.take(slot), None);
        }
    }
}
