//! Property tests of header templates: parsing arbitrary text, and rendering parsed templates
//! against arbitrary requests (header values, paths, methods, claims, addresses) through the
//! public layers.
//!
//! Failures are not persisted to files: a failing case found here is kept as a regular
//! `#[test]` instead.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use gateway_core::{ClientIp, Identity, PeerAddr, RequestId};
use gateway_headers::{HeaderRules, HeadersLayer, RequestHeadersLayer, Template, TemplateError};
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value};
use tower::{Layer, ServiceExt, service_fn};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes a header value may not hold: control characters other than HTAB, and DEL.
fn forbidden(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

/// `{{` and `}}` for literal braces.
fn escape(text: &str) -> String {
    text.replace('{', "{{").replace('}', "}}")
}

/// The request headers the inner service saw, returned in its response's extensions.
#[derive(Clone)]
struct Seen(HeaderMap);

/// Runs `request` through request and response rules (a `HeadersLayer`) over a service that
/// answers with `upstream` headers; returns the request headers the service saw and the
/// response headers.
fn exchange(
    request_rules: HeaderRules,
    response_rules: HeaderRules,
    request: Request<()>,
    upstream: HeaderMap,
) -> (HeaderMap, HeaderMap) {
    let service = HeadersLayer::new()
        .request(request_rules)
        .response(response_rules)
        .layer(service_fn(move |request: Request<()>| {
            let mut response = Response::new(());
            *response.headers_mut() = upstream.clone();
            response
                .extensions_mut()
                .insert(Seen(request.headers().clone()));
            std::future::ready(Ok::<_, Infallible>(response))
        }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let response = runtime.block_on(service.oneshot(request)).unwrap();
    let seen = response.extensions().get::<Seen>().unwrap().0.clone();
    (seen, response.headers().clone())
}

/// The request headers after request rules only (a `RequestHeadersLayer`).
fn forwarded(rules: HeaderRules, request: Request<()>) -> HeaderMap {
    let service = RequestHeadersLayer::new(rules).layer(service_fn(|request: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(request.headers().clone()))
    }));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(service.oneshot(request)).unwrap()
}

fn values(headers: &HeaderMap, name: &str) -> Vec<Vec<u8>> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Text heavy in braces, placeholder names and the odd control character.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 ._:/-]{0,6}",
        3 => prop::sample::select(vec!["{", "}", "{{", "}}"]).prop_map(str::to_owned),
        3 => prop::sample::select(vec![
            "{method}", "{path}", "{host}", "{client_ip}", "{request_id}", "{claim.sub}",
            "{claim.}", "{header.x-a}", "{header.}", "{header.a b}", "{nope}", "{claim.a{b}",
            "{header.X-Trace}", "{claim.https://e.x/roles}",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,3}",
        1 => prop::sample::select(vec!["\r", "\n", "\0", "\x7f", "\t", "é", "\u{85}"]).prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config())]

    /// No text panics the parser; a parsed template keeps its source; a text with a control
    /// character (other than HTAB) is refused, naming the first one.
    #[test]
    fn parsing_never_panics(text in prop_oneof![template_text(), any::<String>()]) {
        let parsed = Template::parse(&text);
        prop_assert_eq!(text.parse::<Template>(), parsed.clone());
        match &parsed {
            Ok(template) => {
                prop_assert_eq!(template.as_str(), text.as_str());
                prop_assert_eq!(template.to_string(), text.clone());
            }
            Err(err) => {
                // Every error explains itself without panicking.
                prop_assert!(!err.to_string().is_empty());
            }
        }
        match text.bytes().position(forbidden) {
            Some(position) => prop_assert_eq!(
                parsed.err(),
                Some(TemplateError::ControlCharacter { byte: text.as_bytes()[position], position })
            ),
            None => {
                let control = matches!(parsed, Err(TemplateError::ControlCharacter { .. }));
                prop_assert!(!control, "{:?}", parsed);
            }
        }
    }

    /// A text without `{` (and without control characters) is static: it parses when every
    /// run of `}` pairs up (`}}` is a literal brace) and renders to itself, braces unescaped;
    /// otherwise the first unpaired `}` is reported where it is.
    #[test]
    fn text_without_placeholders_renders_to_itself(text in "[^{\\x00-\\x08\\x0a-\\x1f\\x7f]{0,24}") {
        // The first `}` that has no partner: the last of a run of odd length.
        let mut unpaired = None;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'}' {
                let run = bytes[i..].iter().take_while(|b| **b == b'}').count();
                if run % 2 == 1 {
                    unpaired = Some(i + run - 1);
                    break;
                }
                i += run;
            } else {
                i += 1;
            }
        }
        let parsed = Template::parse(&text);
        match unpaired {
            Some(position) => prop_assert_eq!(parsed.err(), Some(TemplateError::UnmatchedClose(position))),
            None => {
                let template = parsed.unwrap();
                prop_assert!(template.is_static());
                let rules = HeaderRules::builder().set("x-out", &text).build().unwrap();
                prop_assert!(!rules.has_templates());
                let headers = forwarded(rules, Request::new(()));
                let expected = text.replace("}}", "}");
                prop_assert_eq!(values(&headers, "x-out"), vec![expected.into_bytes()]);
            }
        }
    }

    /// Any text written with `{{`/`}}` for its braces is a static template of that text.
    #[test]
    fn escaped_text_round_trips(text in "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,24}") {
        let template = Template::parse(&escape(&text)).unwrap();
        prop_assert!(template.is_static());
        let rules = HeaderRules::builder().set("x-out", &escape(&text)).build().unwrap();
        let mut request = Request::new(());
        rules.apply_to_request(&mut request);
        prop_assert_eq!(values(request.headers(), "x-out"), vec![text.into_bytes()]);
    }

    /// A `{` that nothing closes is reported where it is.
    #[test]
    fn unclosed_brace_is_reported_where_it_is(
        before in "[a-z ]{0,8}",
        after in "[a-z .]{0,8}",
    ) {
        let text = format!("{before}{{{after}");
        prop_assert_eq!(Template::parse(&text).err(), Some(TemplateError::Unclosed(before.len())));
    }

    /// A name in braces is a placeholder only if it is a known one: other names are refused,
    /// naming the placeholder.
    #[test]
    fn unknown_placeholders_are_refused(name in "[a-z_.]{1,12}") {
        let known = ["client_ip", "request_id", "method", "path", "host"].contains(&name.as_str())
            || (name.starts_with("claim.") && name.len() > "claim.".len())
            || (name.starts_with("header.") && name.len() > "header.".len());
        let parsed = Template::parse(&format!("x={{{name}}}"));
        if known {
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
        } else if name == "claim." || name == "header." {
            prop_assert_eq!(parsed.err(), Some(TemplateError::MissingName(name)));
        } else {
            prop_assert_eq!(parsed.err(), Some(TemplateError::UnknownPlaceholder(name)));
        }
    }

    /// `{header.NAME}` takes any valid header name, and refuses other text.
    #[test]
    fn header_placeholders_need_header_names(name in "[!-z|~]{1,10}") {
        prop_assume!(!name.contains(['{', '}']));
        let parsed = Template::parse(&format!("{{header.{name}}}"));
        if http::HeaderName::from_bytes(name.as_bytes()).is_ok() {
            prop_assert!(parsed.is_ok(), "{:?}", parsed);
        } else {
            prop_assert_eq!(parsed.err(), Some(TemplateError::InvalidHeaderName(name)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// What a placeholder reads.
#[derive(Clone, Debug)]
enum Placeholder {
    ClientIp,
    RequestId,
    Method,
    Path,
    Host,
    Claim(String),
    Header(&'static str),
}

impl Placeholder {
    fn source(&self) -> String {
        match self {
            Self::ClientIp => "{client_ip}".into(),
            Self::RequestId => "{request_id}".into(),
            Self::Method => "{method}".into(),
            Self::Path => "{path}".into(),
            Self::Host => "{host}".into(),
            Self::Claim(name) => format!("{{claim.{name}}}"),
            Self::Header(name) => format!("{{header.{name}}}"),
        }
    }
}

#[derive(Clone, Debug)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

/// Header names the requests carry and the templates read; `x-set`, `x-add` and
/// `x-default` are also the ones the rules write.
const HEADER_NAMES: [&str; 6] = ["x-a", "x-b", "cookie", "x-set", "x-add", "x-default"];
const CLAIM_NAMES: [&str; 6] = ["sub", "role", "n", "https://e.x/roles", "a.b", "ünï"];

fn placeholder() -> impl Strategy<Value = Placeholder> {
    prop_oneof![
        Just(Placeholder::ClientIp),
        Just(Placeholder::RequestId),
        Just(Placeholder::Method),
        Just(Placeholder::Path),
        Just(Placeholder::Host),
        prop::sample::select(CLAIM_NAMES.to_vec()).prop_map(|n| Placeholder::Claim(n.into())),
        prop::sample::select(HEADER_NAMES.to_vec()).prop_map(Placeholder::Header),
        Just(Placeholder::Header("host")),
    ]
}

fn segments() -> impl Strategy<Value = Vec<Segment>> {
    let segment = prop_oneof![
        "[^\\x00-\\x08\\x0a-\\x1f\\x7f]{0,8}".prop_map(Segment::Text),
        placeholder().prop_map(Segment::Value),
    ];
    prop::collection::vec(segment, 0..5)
}

fn source(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Text(text) => escape(text),
            Segment::Value(placeholder) => placeholder.source(),
        })
        .collect()
}

/// Bytes that make a valid header value (any but control characters and DEL).
fn value_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![8 => 0x20u8..0x7f, 1 => Just(b'\t'), 2 => 0x80u8..=0xff],
        0..12,
    )
}

/// A claim of any JSON type, strings with line breaks and other control characters included.
fn claim_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        2 => "[a-z\\r\\n\\x00\\t ]{0,8}".prop_map(Value::String),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ];
    scalar.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// The parts of a request that templates read.
#[derive(Clone, Debug)]
struct RequestSpec {
    method: Method,
    authority: Option<String>,
    path: String,
    query: Option<String>,
    host: Vec<Vec<u8>>,
    headers: Vec<(&'static str, Vec<u8>)>,
    peer: Option<SocketAddr>,
    client_ip: Option<IpAddr>,
    request_id: Option<Vec<u8>>,
    claims: Option<Map<String, Value>>,
}

impl RequestSpec {
    fn request(&self) -> Request<()> {
        let uri = match &self.authority {
            Some(authority) => format!("http://{authority}{}", self.path),
            None => self.path.clone(),
        };
        let uri = match &self.query {
            Some(query) => format!("{uri}?{query}"),
            None => uri,
        };
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .body(())
            .expect("generated requests are valid");
        let headers = request.headers_mut();
        for value in &self.host {
            headers.append("host", HeaderValue::from_bytes(value).unwrap());
        }
        for (name, value) in &self.headers {
            headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let extensions = request.extensions_mut();
        if let Some(peer) = self.peer {
            extensions.insert(PeerAddr(peer));
        }
        if let Some(ip) = self.client_ip {
            extensions.insert(ClientIp(ip));
        }
        if let Some(id) = &self.request_id {
            extensions.insert(RequestId(HeaderValue::from_bytes(id).unwrap()));
        }
        if let Some(claims) = &self.claims {
            extensions.insert(Identity::new(Arc::new(claims.clone())));
        }
        request
    }

    /// What a placeholder renders for this request, as the module documentation says;
    /// `None` when it has no value.
    fn render(&self, placeholder: &Placeholder) -> Option<Vec<u8>> {
        match placeholder {
            Placeholder::ClientIp => {
                let ip = self.client_ip.or(self.peer.map(|peer| peer.ip()))?;
                Some(ip.to_canonical().to_string().into_bytes())
            }
            Placeholder::RequestId => self.request_id.clone(),
            Placeholder::Method => Some(self.method.as_str().as_bytes().to_vec()),
            Placeholder::Path => Some(self.path.clone().into_bytes()),
            Placeholder::Host => match self.host.first() {
                Some(host) => Some(host.clone()),
                None => self.authority.clone().map(String::into_bytes),
            },
            Placeholder::Claim(name) => match self.claims.as_ref()?.get(name)? {
                Value::String(text) => Some(text.clone().into_bytes()),
                Value::Number(number) => Some(number.to_string().into_bytes()),
                Value::Bool(flag) => Some(flag.to_string().into_bytes()),
                _ => None,
            },
            Placeholder::Header(name) => {
                let found: Vec<&[u8]> = if *name == "host" {
                    self.host.iter().map(Vec::as_slice).collect()
                } else {
                    self.headers
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, v)| v.as_slice())
                        .collect()
                };
                (!found.is_empty()).then(|| found.join(&b", "[..]))
            }
        }
    }

    /// The value a template renders: every placeholder's value with the text between, or
    /// `None` when a placeholder has none. `Err` holds text that is no header value.
    fn render_all(&self, segments: &[Segment]) -> Option<Result<Vec<u8>, Vec<u8>>> {
        let mut out = Vec::new();
        for segment in segments {
            match segment {
                Segment::Text(text) => out.extend_from_slice(text.as_bytes()),
                Segment::Value(placeholder) => out.extend(self.render(placeholder)?),
            }
        }
        Some(if out.iter().copied().any(forbidden) {
            Err(out)
        } else {
            Ok(out)
        })
    }

    fn original(&self, name: &str) -> Vec<Vec<u8>> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        3 => prop::sample::select(vec![
            Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD,
            Method::OPTIONS, Method::TRACE, Method::CONNECT,
        ]),
        1 => "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    let addresses = (
        prop::option::weighted(0.7, any::<SocketAddr>()),
        prop::option::weighted(0.3, any::<IpAddr>()),
    );
    let uri = (
        method(),
        prop::option::weighted(0.3, "[a-z]{1,8}\\.example(:[0-9]{1,4})?"),
        "/[a-zA-Z0-9._~!$&'()*+,;=:@/-]{0,16}",
        prop::option::weighted(0.3, "[a-z0-9=&]{0,8}"),
    );
    let headers = (
        prop::collection::vec(value_bytes(), 0..3),
        prop::collection::vec(
            (prop::sample::select(HEADER_NAMES.to_vec()), value_bytes()),
            0..6,
        ),
    );
    let extensions = (
        prop::option::weighted(0.5, value_bytes()),
        prop::option::weighted(
            0.7,
            prop::collection::vec(
                (prop::sample::select(CLAIM_NAMES.to_vec()), claim_value()),
                0..6,
            ),
        ),
    );
    (uri, headers, addresses, extensions).prop_map(
        |(
            (method, authority, path, query),
            (host, headers),
            (peer, client_ip),
            (request_id, claims),
        )| {
            RequestSpec {
                method,
                authority,
                path,
                query,
                host,
                headers,
                peer,
                client_ip,
                request_id,
                claims: claims.map(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), value))
                        .collect()
                }),
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    /// Through `HeadersLayer`, on the request and on the response: `set` leaves exactly the
    /// rendered value (replacing what the client or the upstream sent), or removes the
    /// header when the template renders nothing or text that is no header value (which is
    /// counted); `add` appends the value to what was there; `set_if_absent` fills it only
    /// where the header is absent. Templates read the request as it arrived.
    #[test]
    fn rendering_follows_the_documented_rules(
        set in segments(),
        add in segments(),
        default in segments(),
        spec in request_spec(),
        upstream in prop::collection::vec((prop::sample::select(vec!["x-set", "x-add", "x-default"]), value_bytes()), 0..4),
    ) {
        let rules = || {
            HeaderRules::builder()
                .set("X-Set", &source(&set))
                .add("x-add", &source(&add))
                .set_if_absent("x-default", &source(&default))
                .build()
                .expect("generated templates parse")
        };
        let (request_rules, response_rules) = (rules(), rules());
        let mut upstream_headers = HeaderMap::new();
        for (name, value) in &upstream {
            upstream_headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        let (seen, response) = exchange(
            request_rules.clone(),
            response_rules.clone(),
            spec.request(),
            upstream_headers,
        );

        let rendered = [&set, &add, &default].map(|segments| spec.render_all(segments));
        let invalid = rendered.iter().filter(|r| matches!(r, Some(Err(_)))).count() as u64;
        prop_assert_eq!(request_rules.invalid_values(), invalid);
        prop_assert_eq!(response_rules.invalid_values(), invalid);
        let [set_value, add_value, default_value] = rendered.map(|r| r.and_then(Result::ok));

        let upstream_of = |name: &str| -> Vec<Vec<u8>> {
            upstream.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.clone()).collect()
        };
        for (side, headers, before) in [
            ("request", &seen, [spec.original("x-set"), spec.original("x-add"), spec.original("x-default")]),
            ("response", &response, [upstream_of("x-set"), upstream_of("x-add"), upstream_of("x-default")]),
        ] {
            let [_, add_before, default_before] = before;
            prop_assert_eq!(values(headers, "x-set"), set_value.clone().into_iter().collect::<Vec<_>>(), "{} x-set", side);
            let mut added = add_before;
            added.extend(add_value.clone());
            prop_assert_eq!(values(headers, "x-add"), added, "{} x-add", side);
            let defaulted = if default_before.is_empty() {
                default_value.clone().into_iter().collect()
            } else {
                default_before
            };
            prop_assert_eq!(values(headers, "x-default"), defaulted, "{} x-default", side);
        }
        // The rest of the request is untouched.
        for name in ["x-a", "x-b", "cookie"] {
            prop_assert_eq!(values(&seen, name), spec.original(name));
        }
    }

    /// Any template that parses, from any text, renders against any request without a panic
    /// and leaves at most one value for `set`; a static one is always its text.
    #[test]
    fn any_parsed_template_renders_safely(text in template_text(), spec in request_spec()) {
        let Ok(template) = Template::parse(&text) else {
            return Ok(());
        };
        let rules = HeaderRules::builder().set("x-set", &text).build().unwrap();
        let headers = forwarded(rules, spec.request());
        let set = values(&headers, "x-set");
        prop_assert!(set.len() <= 1);
        if template.is_static() {
            let expected = text.replace("{{", "{").replace("}}", "}");
            prop_assert_eq!(set, vec![expected.into_bytes()]);
        }
        for value in headers.get_all("x-set") {
            prop_assert!(!value.as_bytes().iter().copied().any(forbidden));
        }
    }
}
