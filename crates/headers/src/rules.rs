//! Compiled header rules and how they edit a header map.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue, Request};

use crate::error::HeaderRulesError;
use crate::intern;
use crate::render::{RenderError, RequestView};
use crate::slots::{InlineSlots, Slots};
use crate::spec::RuleSpec;
use crate::template::Template;

/// A compiled set of header operations, cheap to clone (shared behind an `Arc`).
///
/// # Order of operations
///
/// 1. **Templates render** against the request as this rule set receives it, before any edit:
///    `{header.Cookie}` still sees a `Cookie` that `remove` deletes.
/// 2. **`remove`**: every value of each header is deleted.
/// 3. **`rename`**: when the old header is present, all its values move to the new name,
///    replacing whatever the new name held; when absent, nothing changes.
/// 4. **`set`**: the header is replaced by the value.
/// 5. **`set_if_absent`**: the value is set only if the header is still absent after the
///    steps above (so it fills a default for what neither the client nor `set` provided).
/// 6. **`add`**: the value is appended after any existing values.
///
/// # Templates without a value
///
/// A template renders nothing when a placeholder has no value (an anonymous request's
/// `{claim.sub}`, a header the client did not send) or when the result is not a valid header
/// value (a claim with a line break). Then **`set` removes the header** (so a client can never
/// supply a header the gateway was told to set, say `X-User`), and `set_if_absent` and `add`
/// leave the headers as they are. An invalid result is also counted
/// ([`invalid_values`](Self::invalid_values)) and logged (the first at `warn`, the rest at
/// `debug`); it never panics and never reaches the wire.
///
/// ```
/// use gateway_headers::HeaderRules;
/// use http::Request;
///
/// let rules = HeaderRules::builder()
///     .remove("Cookie")
///     .set("X-Source", "gateway")
///     .set("X-Method", "{method}")
///     .build()
///     .unwrap();
/// let mut request = Request::post("/orders").header("cookie", "a=1").body(()).unwrap();
/// rules.apply_to_request(&mut request);
/// assert!(request.headers().get("cookie").is_none());
/// assert_eq!(request.headers()["x-source"], "gateway");
/// assert_eq!(request.headers()["x-method"], "POST");
/// ```
#[derive(Clone, Debug)]
pub struct HeaderRules {
    inner: Arc<Compiled>,
}

#[derive(Debug)]
struct Compiled {
    remove: Box<[HeaderName]>,
    rename: Box<[(HeaderName, HeaderName)]>,
    set: Box<[Rule]>,
    set_if_absent: Box<[Rule]>,
    add: Box<[Rule]>,
    /// How many rules have a template to render per request.
    templated: usize,
    invalid: AtomicU64,
    warned: AtomicBool,
}

#[derive(Debug)]
struct Rule {
    name: HeaderName,
    template: Template,
    /// Where the rendered value waits, for templates that are not static.
    slot: Option<usize>,
}

impl Default for HeaderRules {
    fn default() -> Self {
        Self::compile(&RuleSpec::default())
    }
}

impl HeaderRules {
    /// No operation at all: a layer with these rules changes nothing.
    pub fn is_empty(&self) -> bool {
        let c = &self.inner;
        c.remove.is_empty()
            && c.rename.is_empty()
            && c.set.is_empty()
            && c.set_if_absent.is_empty()
            && c.add.is_empty()
    }

    /// Whether any value must be rendered per request (the rest is built once).
    pub fn has_templates(&self) -> bool {
        self.inner.templated > 0
    }

    /// How many rendered values were dropped because they were not valid header values
    /// (a metric: a non-zero value means a claim or header carries control characters).
    pub fn invalid_values(&self) -> u64 {
        self.inner.invalid.load(Ordering::Relaxed)
    }

    /// Applies the rules to a request's headers, templates reading the request itself.
    pub fn apply_to_request<B>(&self, request: &mut Request<B>) {
        if self.is_empty() {
            return;
        }
        let mut slots = InlineSlots::new();
        self.render(&RequestView::of(request), &mut slots);
        self.apply(request.headers_mut(), &mut slots);
    }

    /// Checks and compiles `spec`: what the config and the builder both end with.
    pub(crate) fn from_spec(spec: &RuleSpec) -> Result<Self, HeaderRulesError> {
        spec.validate()?;
        Ok(Self::compile(spec))
    }

    fn compile(spec: &RuleSpec) -> Self {
        let mut templated = 0;
        let mut rules = |list: &[(HeaderName, Template)]| -> Box<[Rule]> {
            list.iter()
                .map(|(name, template)| {
                    let slot = (!template.is_static()).then(|| {
                        templated += 1;
                        templated - 1
                    });
                    Rule {
                        name: intern::static_name(name),
                        template: template.clone(),
                        slot,
                    }
                })
                .collect()
        };
        // Slots are numbered in the order `render` visits the lists.
        let set = rules(&spec.set);
        let set_if_absent = rules(&spec.set_if_absent);
        let add = rules(&spec.add);
        Self {
            inner: Arc::new(Compiled {
                remove: spec.remove.iter().map(intern::static_name).collect(),
                rename: spec
                    .rename
                    .iter()
                    .map(|(from, to)| (intern::static_name(from), intern::static_name(to)))
                    .collect(),
                set,
                set_if_absent,
                add,
                templated,
                invalid: AtomicU64::new(0),
                warned: AtomicBool::new(false),
            }),
        }
    }

    /// Renders every templated rule's value against the request, into `slots`.
    pub(crate) fn render(&self, request: &RequestView<'_>, slots: &mut impl Slots) {
        if self.inner.templated == 0 {
            return;
        }
        let c = &self.inner;
        for rule in c.set.iter().chain(&*c.set_if_absent).chain(&*c.add) {
            if let Some(slot) = rule.slot {
                slots.put(slot, self.render_rule(rule, request));
            }
        }
    }

    /// Renders the values a response will need, while the request is still at hand.
    pub(crate) fn render_for_response(
        &self,
        request: &RequestView<'_>,
    ) -> Vec<Option<HeaderValue>> {
        let mut slots = Vec::new();
        if self.inner.templated > 0 {
            slots.reserve_exact(self.inner.templated);
            self.render(request, &mut slots);
        }
        slots
    }

    fn render_rule(&self, rule: &Rule, request: &RequestView<'_>) -> Option<HeaderValue> {
        match request.render(&rule.template) {
            Ok(value) => Some(value),
            Err(RenderError::Missing) => None,
            Err(RenderError::Invalid) => {
                self.note_invalid(rule);
                None
            }
        }
    }

    fn note_invalid(&self, rule: &Rule) {
        let c = &self.inner;
        c.invalid.fetch_add(1, Ordering::Relaxed);
        // The value itself is never logged: it is attacker-controlled and may be a secret.
        // Warn once so the operator notices, then stay at debug so a client cannot flood logs.
        if !c.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                header = %rule.name,
                template = %rule.template,
                "header template rendered an invalid value (control characters); header dropped, \
                 further occurrences are logged at debug level"
            );
        } else {
            tracing::debug!(
                header = %rule.name,
                template = %rule.template,
                "header template rendered an invalid value; header dropped"
            );
        }
    }

    /// Edits `headers` in the documented order, taking templated values from `rendered`.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, rendered: &mut impl Slots) {
        let c = &self.inner;
        for name in &c.remove {
            headers.remove(name);
        }
        for (from, to) in &c.rename {
            rename(headers, from, to);
        }
        for rule in &c.set {
            match value(rule, rendered) {
                Some(value) => {
                    // `try_`: a map at its size limit keeps its headers rather than panicking.
                    let _ = headers.try_insert(&rule.name, value);
                }
                None => {
                    headers.remove(&rule.name);
                }
            }
        }
        for rule in &c.set_if_absent {
            if let Ok(Entry::Vacant(entry)) = headers.try_entry(&rule.name)
                && let Some(value) = value(rule, rendered)
            {
                let _ = entry.try_insert(value);
            }
        }
        for rule in &c.add {
            if let Some(value) = value(rule, rendered) {
                let _ = headers.try_append(&rule.name, value);
            }
        }
    }
}

fn value(rule: &Rule, rendered: &mut impl Slots) -> Option<HeaderValue> {
    match rule.slot {
        Some(slot) => rendered.take(slot),
        None => rule.template.static_value().cloned(),
    }
}

fn rename(headers: &mut HeaderMap, from: &HeaderName, to: &HeaderName) {
    let mut values = headers.get_all(from).iter();
    let several = match (values.next(), values.next()) {
        (None, _) => return,
        (Some(_), None) => false,
        (Some(_), Some(_)) => true,
    };
    if !several {
        if let Some(value) = headers.remove(from) {
            let _ = headers.try_insert(to, value);
        }
        return;
    }
    let moved: Vec<HeaderValue> = match headers.try_entry(from) {
        Ok(Entry::Occupied(entry)) => entry.remove_entry_mult().1.collect(),
        _ => return,
    };
    headers.remove(to);
    for value in moved {
        let _ = headers.try_append(to, value);
    }
}
