//! What one destination sees of the shared spans: its privacy, its attribute limit and its
//! flavor. The spans are built once per record and shared by every destination; a view
//! copies them only when a destination changes more than privacy hides.

use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::SpanFlags;

use crate::deliver::pipeline::WorkerSettings;
use crate::span::flavor::apply_sentry_flavor;
use crate::span::limits;
use crate::span::model::{AttrValue, SpanKind, SpanModel, SpanStatus};
use crate::span::privacy::{self, apply_privacy};

/// W3C "sampled": every span that reaches an exporter was sampled in.
const TRACE_FLAG_SAMPLED: u32 = 0x01;

/// One span as one destination exports it: the shared model, seen through that
/// destination's privacy. The proto conversion and the direct body encoders read spans only
/// through this, so they cannot disagree on what a private destination receives.
#[derive(Debug, Clone, Copy)]
pub struct SpanView<'a> {
    span: &'a SpanModel,
    private: bool,
    /// For a private view, bit `i` is whether attribute `i` passes the allow-list, decided once
    /// here for the first [`KEPT_BITS`] attributes: the protobuf encoder reads the attributes
    /// twice (to size, then to write), and the check was a seventh of a batch's work.
    kept: u128,
}

/// Attributes whose privacy a view decides up front; any beyond are decided as they are read.
const KEPT_BITS: usize = u128::BITS as usize;

impl<'a> SpanView<'a> {
    /// `private` filters the attributes through the privacy allow-list and replaces an error
    /// status's message, as `privacy::apply_privacy` would.
    pub fn new(span: &'a SpanModel, private: bool) -> Self {
        let kept = if private {
            span.attributes
                .iter()
                .take(KEPT_BITS)
                .enumerate()
                .filter(|(_, (k, _))| privacy::is_allowed(k))
                .fold(0, |bits, (i, _)| bits | 1 << i)
        } else {
            0
        };
        Self {
            span,
            private,
            kept,
        }
    }

    pub fn span(&self) -> &'a SpanModel {
        self.span
    }

    /// The attributes this destination may see, in the model's order.
    pub fn attributes(&self) -> impl Iterator<Item = (&'a str, &'a AttrValue)> + 'a {
        let (private, kept) = (self.private, self.kept);
        self.span
            .attributes
            .iter()
            .enumerate()
            .filter(move |(i, (k, _))| {
                !private
                    || if *i < KEPT_BITS {
                        kept >> i & 1 == 1
                    } else {
                        privacy::is_allowed(k)
                    }
            })
            .map(|(_, (k, v))| (k.as_str(), v))
    }

    pub(crate) fn flags(&self) -> u32 {
        let mut flags = TRACE_FLAG_SAMPLED | SpanFlags::ContextHasIsRemoteMask as u32;
        if self.span.parent_span_id.is_some() && self.span.parent_is_remote {
            flags |= SpanFlags::ContextIsRemoteMask as u32;
        }
        flags
    }

    pub(crate) fn kind(&self) -> i32 {
        (match self.span.kind {
            SpanKind::Internal => ProtoKind::Internal,
            SpanKind::Server => ProtoKind::Server,
            SpanKind::Client => ProtoKind::Client,
        }) as i32
    }

    /// The status code and message. An explicit UNSET rather than no status: serde would
    /// write `"status": null`, which the protobuf JSON mapping allows but some OTLP/JSON
    /// readers refuse.
    pub(crate) fn status(&self) -> (i32, &'a str) {
        match &self.span.status {
            SpanStatus::Unset => (StatusCode::Unset as i32, ""),
            SpanStatus::Ok => (StatusCode::Ok as i32, ""),
            SpanStatus::Error(_) if self.private => {
                (StatusCode::Error as i32, privacy::error_message(self.span))
            }
            SpanStatus::Error(message) => (StatusCode::Error as i32, message),
        }
    }
}

/// One record's spans as one destination exports them.
pub(crate) enum View<'a> {
    /// The shared spans, seen through privacy alone: nothing is copied.
    Shared {
        spans: &'a [SpanModel],
        private: bool,
    },
    /// A copy the destination changed beyond privacy (attribute limit, flavor), with
    /// privacy already applied.
    Owned(Vec<SpanModel>),
}

impl View<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            View::Shared { spans, .. } => spans.len(),
            View::Owned(spans) => spans.len(),
        }
    }

    pub(crate) fn spans(&self) -> impl Iterator<Item = SpanView<'_>> {
        let (spans, private) = match self {
            View::Shared { spans, private } => (*spans, *private),
            View::Owned(spans) => (spans.as_slice(), false),
        };
        spans.iter().map(move |s| SpanView::new(s, private))
    }
}

/// This destination's view of a record: privacy (the destination's or the request's, as
/// decided by the caller), its own attribute limit, and its flavor. Shared with the test
/// trace, so what a user checks is what real traffic produces.
pub(crate) fn destination_view<'a>(
    settings: &WorkerSettings,
    shared: &'a [SpanModel],
    private: bool,
    built_with_max_attribute_bytes: usize,
) -> View<'a> {
    if settings.max_attribute_bytes >= built_with_max_attribute_bytes && !settings.sentry_flavor {
        return View::Shared {
            spans: shared,
            private,
        };
    }
    let mut spans = shared.to_vec();
    if private {
        apply_privacy(&mut spans);
    }
    if settings.max_attribute_bytes < built_with_max_attribute_bytes {
        for span in &mut spans {
            limits::enforce(span, settings.max_attribute_bytes);
        }
    }
    if settings.sentry_flavor {
        apply_sentry_flavor(&mut spans);
    }
    View::Owned(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::model::AttrKey;
    use crate::span::privacy::apply_privacy;

    #[test]
    fn a_private_view_keeps_what_privacy_keeps_past_the_attributes_it_decides_up_front() {
        let mut span = SpanModel {
            trace_id: [1; 16],
            span_id: [2; 8],
            parent_span_id: None,
            parent_is_remote: false,
            name: "chat".into(),
            kind: SpanKind::Client,
            role: crate::span::model::SpanRole::Generation,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: Vec::new(),
            status: SpanStatus::Unset,
        };
        for i in 0..3 * KEPT_BITS {
            let key = match i % 3 {
                0 => format!("trace.metadata.k{i}"),
                1 => format!("gen_ai.input.messages{i}"),
                _ => format!("x.k{i}"),
            };
            span.attributes
                .push((AttrKey::from(key), AttrValue::Int(i as i64)));
        }
        let seen: Vec<(String, AttrValue)> = SpanView::new(&span, true)
            .attributes()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect();
        apply_privacy(std::slice::from_mut(&mut span));
        let kept: Vec<(String, AttrValue)> = span
            .attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        assert_eq!(seen.len(), KEPT_BITS);
        assert_eq!(seen, kept);
    }
}
