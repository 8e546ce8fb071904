//! Reading a config file: parsing, and errors that name the file, line, column and field.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::Config;

/// A config error, located in its file.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the offending field (`routes[1].rate_limit.limit`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Builds located errors for one config text.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    source: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        Self { file, source }
    }

    /// An error at a span of the source.
    pub(crate) fn at(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<Option<String>>,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: span.map(|span| line_column(self.source, span.start)),
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// An error of a table that a layer crate checked as a whole: at the entry its message
    /// names (`deny[0]: `10.0.0.0/33` ...` points at that address in the `deny` list), else
    /// at the key, else at the table.
    pub(crate) fn in_table(
        &self,
        table: Range<usize>,
        field: impl Into<Option<String>>,
        message: impl fmt::Display,
    ) -> ConfigError {
        let message = message.to_string();
        let start = table.start.min(self.source.len());
        // The span of a `[table]` covers its header only: its keys follow, up to the next
        // header.
        let next_header = self
            .source
            .get(start..)
            .unwrap_or_default()
            .match_indices("\n[")
            .map(|(at, _)| start + at)
            .find(|&at| at >= table.end);
        let end = next_header
            .unwrap_or(self.source.len())
            .max(table.end.min(self.source.len()));
        let offset = self
            .source
            .get(start..end)
            .and_then(|text| entry_offset(text, &message))
            .map_or(start, |offset| start + offset);
        self.at(Some(offset..offset), field, message)
    }

    /// Where `text` first appears inside `span` of the source.
    pub(crate) fn offset_of(&self, span: Range<usize>, text: &str) -> Option<usize> {
        let start = span.start;
        self.source
            .get(span)
            .and_then(|within| within.find(text))
            .map(|at| start + at)
    }
}

/// Where in a table's text the entry named by a layer's error message is: the message starts
/// with the key (`deny[0]: ...`) and quotes the value in backticks.
fn entry_offset(table: &str, message: &str) -> Option<usize> {
    let key = message.split(['[', ':', ' ']).next()?.trim_matches('`');
    if key.is_empty() {
        return None;
    }
    let mut line_start = 0;
    let key_at = table.split_inclusive('\n').find_map(|line| {
        let at = line_start;
        line_start += line.len();
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix(key)?;
        rest.trim_start()
            .starts_with('=')
            .then_some(at + line.len() - trimmed.len())
    })?;
    let value = message.split('`').nth(1).filter(|value| !value.is_empty());
    let value_at = value.and_then(|value| table[key_at..].find(value).map(|at| key_at + at));
    Some(value_at.unwrap_or(key_at))
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            field: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, &source)
    }

    /// Parses and validates a config text; `path` only names it in errors.
    pub fn parse(path: &Path, source: &str) -> Result<Self, ConfigError> {
        let locator = Locator::new(path, source);
        let deserializer = toml::Deserializer::parse(source)
            .map_err(|e| locator.at(e.span(), None, e.message()))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = field_path(&e.path().to_string());
            let inner = e.into_inner();
            let field = (field != ".").then_some(field);
            match inner.span() {
                // A table refused as a whole (a layer's own check): at the key it names.
                Some(span) if source.get(span.start..).is_some_and(|t| t.starts_with('[')) => {
                    locator.in_table(span, field, inner.message())
                }
                span => locator.at(span, field, inner.message()),
            }
        })?;
        config.validate(&locator)?;
        Ok(config)
    }
}

/// A field's dotted path as the user wrote it: a `Spanned` section is deserialized through a
/// private wrapper field of `toml`'s, whose name would otherwise show in the path.
fn field_path(path: &str) -> String {
    path.replace(".$__serde_spanned_private_value", "")
}
