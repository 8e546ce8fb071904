//! Why an access config is invalid.

/// Why an access config is invalid; the message starts with the list and the index of the
/// entry in it, as in ``deny[1]: `10.0.0.0/33` is not an IP address or CIDR``.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// An entry of `allow` or `deny` is neither an IP address nor a CIDR network.
    #[error(
        "{field}[{index}]: `{entry}` is not an IP address or CIDR \
         (e.g. 192.168.1.7, 10.0.0.0/8, 2001:db8::/32)"
    )]
    InvalidEntry {
        /// `allow` or `deny`.
        field: &'static str,
        /// The index of the entry in its list.
        index: usize,
        /// The entry as written.
        entry: String,
    },
}
