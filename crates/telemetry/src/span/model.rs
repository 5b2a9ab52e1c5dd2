//! The span tree as plain data: what the mapping produces and what privacy, flavor and the
//! OTLP encoder transform. Kept free of proto types so golden tests read naturally.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;

/// An attribute's name. Nearly every name is a constant of the conventions, so it is borrowed
/// rather than allocated for every span; names made at run time (custom metadata, truncation
/// markers) own their text. Reads as the `str` it holds.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrKey(Cow<'static, str>);

impl AttrKey {
    pub const fn from_static(key: &'static str) -> Self {
        AttrKey(Cow::Borrowed(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for AttrKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&'static str> for AttrKey {
    fn from(key: &'static str) -> Self {
        AttrKey::from_static(key)
    }
}

impl From<String> for AttrKey {
    fn from(key: String) -> Self {
        AttrKey(Cow::Owned(key))
    }
}

impl PartialEq<str> for AttrKey {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for AttrKey {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for AttrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for AttrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attribute value. Only the shapes the mapping needs; OTLP has no null.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    StringArray(Vec<String>),
}

impl From<&str> for AttrValue {
    fn from(v: &str) -> Self {
        AttrValue::String(v.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(v: String) -> Self {
        AttrValue::String(v)
    }
}

impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}

impl From<u64> for AttrValue {
    /// Counts beyond `i64::MAX` cannot occur in practice; saturating keeps the type an int.
    fn from(v: u64) -> Self {
        AttrValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for AttrValue {
    fn from(v: f64) -> Self {
        AttrValue::Double(v)
    }
}

impl AttrValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttrValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AttrValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal,
    Server,
    Client,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SpanStatus {
    #[default]
    Unset,
    Ok,
    Error(String),
}

/// Which rule of the tree produced a span; flavors and privacy decide by role, not by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanRole {
    /// Named by `trace_name`, emitted only without a parent.
    Root,
    /// Named by `span_name`.
    Span,
    Generation,
    Attempt,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpanModel {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The parent lives in the caller's process; exported through the OTLP span flags.
    pub parent_is_remote: bool,
    pub name: String,
    pub kind: SpanKind,
    pub role: SpanRole,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Ordered so exports and golden tests are deterministic.
    pub attributes: Vec<(AttrKey, AttrValue)>,
    pub status: SpanStatus,
}

impl SpanModel {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Replaces an existing value in place, so attribute order stays stable.
    pub fn set_attr(&mut self, key: impl Into<AttrKey>, value: impl Into<AttrValue>) {
        let (key, value) = (key.into(), value.into());
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    pub fn remove_attr(&mut self, key: &str) -> Option<AttrValue> {
        let pos = self.attributes.iter().position(|(k, _)| k == key)?;
        Some(self.attributes.remove(pos).1)
    }
}
