//! The errors of building header rules.

use crate::template::TemplateError;

/// Why a set of header rules is rejected. Each variant names the operation (`set`, `add`,
/// `set_if_absent`, `remove`, `rename`) and the header, so the config loader can point at it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderRulesError {
    /// A header name that is not a valid HTTP field name.
    #[error("`{field}`: `{name}` is not a valid header name")]
    InvalidName {
        /// The operation.
        field: &'static str,
        /// The name as written.
        name: String,
    },
    /// A value template that does not parse.
    #[error("`{field}.{header}`: {source}")]
    InvalidTemplate {
        /// The operation.
        field: &'static str,
        /// The header the template is for.
        header: String,
        /// What is wrong with it.
        source: TemplateError,
    },
    /// A header that the HTTP connection manages (message framing, hop-by-hop headers).
    #[error(
        "`{field}`: `{name}` is managed by the HTTP connection (framing or hop-by-hop) and \
         cannot be changed by header rules"
    )]
    Protected {
        /// The operation.
        field: &'static str,
        /// The header.
        name: String,
    },
    /// The same header twice in one operation (names are case-insensitive).
    #[error("`{field}`: header `{name}` is listed twice (header names are case-insensitive)")]
    Duplicate {
        /// The operation.
        field: &'static str,
        /// The header.
        name: String,
    },
    /// One header in two operations whose combination is ambiguous.
    #[error("header `{name}` is in both `{first}` and `{second}`; keep one")]
    Conflict {
        /// The header.
        name: String,
        /// One operation.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// A rename whose source is another rename's target, or its own target.
    #[error(
        "`rename`: `{name}` is both renamed and a rename target; chained renames are ambiguous"
    )]
    RenameChain {
        /// The header.
        name: String,
    },
    /// A request id setting out of range.
    #[error("`request_id.max_length` must be between 1 and {max}, not {value}")]
    RequestIdLength {
        /// The configured length.
        value: usize,
        /// The largest accepted length.
        max: usize,
    },
}
