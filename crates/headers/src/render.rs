//! Per-request rendering: what placeholders read from a request, and the buffer values are
//! rendered into.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use gateway_core::{ClientIp, Identity, IpText, PeerAddr, RequestId};
use http::header::HOST;
use http::{Extensions, HeaderMap, HeaderValue, Method, Request, Uri};
use serde_json::Value;

use crate::template::{Kind, Placeholder, Segment, Template};

/// Why a template rendered no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RenderError {
    /// A placeholder has no value for this request.
    Missing,
    /// The rendered text is not a valid header value.
    Invalid,
}

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

    /// Renders `template` against this request.
    pub(crate) fn render(&self, template: &Template) -> Result<HeaderValue, RenderError> {
        match template.kind() {
            Kind::Static(value) => Ok(value.clone()),
            Kind::Single(placeholder) => {
                if let Some(value) = self.direct_value(placeholder) {
                    return value;
                }
                let mut buf = ValueBuf::new();
                self.write(placeholder, &mut buf)?;
                buf.to_header_value()
            }
            Kind::Mixed(segments) => {
                let mut buf = ValueBuf::new();
                for segment in segments {
                    match segment {
                        Segment::Text(text) => buf.push(text.as_bytes()),
                        Segment::Value(placeholder) => self.write(placeholder, &mut buf)?,
                    }
                }
                buf.to_header_value()
            }
        }
    }

    fn client_ip(&self) -> Option<IpAddr> {
        let ip = self
            .extensions
            .get::<ClientIp>()
            .map(|ip| ip.0)
            .or_else(|| self.extensions.get::<PeerAddr>().map(|peer| peer.0.ip()))?;
        // A dual-stack listener reports IPv4 clients as `::ffff:a.b.c.d`; show them as IPv4.
        Some(ip.to_canonical())
    }

    /// The value of a template that is this one placeholder, made without the render buffer
    /// (cloned when it already is a header value); `None` when it has to be rendered as text.
    fn direct_value(&self, placeholder: &Placeholder) -> Option<Result<HeaderValue, RenderError>> {
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
            Placeholder::ClientIp => Some(match self.client_ip() {
                None => Err(RenderError::Missing),
                Some(ip) => HeaderValue::from_bytes(IpText::new(ip).as_bytes())
                    .map_err(|_| RenderError::Invalid),
            }),
            Placeholder::Method => Some(Ok(method_value(self.method))),
            Placeholder::Path => {
                Some(HeaderValue::from_str(self.uri.path()).map_err(|_| RenderError::Invalid))
            }
            Placeholder::Claim(_) => None,
        }
    }

    /// Writes the text of a placeholder.
    fn write(&self, placeholder: &Placeholder, buf: &mut ValueBuf) -> Result<(), RenderError> {
        match placeholder {
            Placeholder::ClientIp => {
                let ip = self.client_ip().ok_or(RenderError::Missing)?;
                buf.push(IpText::new(ip).as_bytes());
                Ok(())
            }
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

/// Where a value is rendered: on the stack while it is short, on the heap beyond.
struct ValueBuf {
    stack: [u8; STACK_LEN],
    len: usize,
    heap: Vec<u8>,
}

const STACK_LEN: usize = 128;

impl ValueBuf {
    fn new() -> Self {
        Self {
            stack: [0; STACK_LEN],
            len: 0,
            heap: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
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
    fn to_header_value(&self) -> Result<HeaderValue, RenderError> {
        HeaderValue::from_bytes(self.as_bytes()).map_err(|_| RenderError::Invalid)
    }
}

impl fmt::Write for ValueBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
