//! Span views to export bodies: OTLP protobuf and OTLP/JSON, gzip, and the re-encoding of a
//! batch refused as too large.

pub(crate) mod gzip;
mod json;
pub(crate) mod json_string;
pub mod otlp;
mod protobuf;
pub(crate) mod view;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::destinations::Encoding;
use crate::error::TelemetryError;
use view::SpanView;

/// A batch's body, written straight from the destination's views.
pub(crate) fn body(
    spans: &[SpanView<'_>],
    resource: &Resource,
    encoding: Encoding,
) -> Result<Vec<u8>, TelemetryError> {
    match encoding {
        Encoding::Json => otlp::json_body(spans, resource),
        Encoding::Protobuf => Ok(otlp::protobuf_body(spans, resource)),
    }
}

/// The body of converted spans, as the test trace has them.
pub(crate) fn request(
    request: &ExportTraceServiceRequest,
    encoding: Encoding,
) -> Result<Vec<u8>, TelemetryError> {
    Ok(match encoding {
        Encoding::Json => otlp::to_json_bytes(request)?,
        Encoding::Protobuf => otlp::to_protobuf(request),
    })
}

/// A batch refused as too large, cut after its first `cut` spans and each half encoded
/// again. Rare, so the body is decoded and re-encoded by the libraries, which write exactly
/// what [`body`] writes.
pub(crate) fn split(
    body: &[u8],
    encoding: Encoding,
    cut: usize,
) -> Result<[Result<Vec<u8>, TelemetryError>; 2], TelemetryError> {
    let decoded = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    };
    let resource = decoded
        .resource_spans
        .first()
        .and_then(|r| r.resource.clone())
        .unwrap_or_default();
    let mut first = take_spans(decoded);
    let second = first.split_off(cut.min(first.len()));
    Ok([first, second]
        .map(|spans| request(&otlp::export_request(spans, resource.clone()), encoding)))
}

fn take_spans(mut request: ExportTraceServiceRequest) -> Vec<Span> {
    request
        .resource_spans
        .pop()
        .and_then(|mut r| r.scope_spans.pop())
        .map(|s| s.spans)
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encode::otlp::ResourceInfo;
    use crate::span::model::{SpanKind, SpanModel, SpanRole, SpanStatus};

    fn span(i: u8) -> SpanModel {
        SpanModel {
            trace_id: [i; 16],
            span_id: [i; 8],
            parent_span_id: (i > 0).then_some([0; 8]),
            parent_is_remote: false,
            name: format!("span {i}"),
            kind: SpanKind::Client,
            role: SpanRole::Generation,
            start_unix_nanos: 1_700_000_000_000_000_000 + u64::from(i),
            end_unix_nanos: 1_700_000_000_000_000_100,
            attributes: vec![
                ("gen_ai.usage.input_tokens".into(), i64::from(i).into()),
                ("gen_ai.input.messages".into(), "secret prompt".into()),
            ],
            status: SpanStatus::Error("provider said: secret".into()),
        }
    }

    #[test]
    fn a_split_body_is_each_half_encoded_on_its_own() {
        let spans: Vec<SpanModel> = (0..5).map(span).collect();
        let views: Vec<_> = spans.iter().map(|s| SpanView::new(s, true)).collect();
        let resource = ResourceInfo::default().to_proto();
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let whole = body(&views, &resource, encoding).unwrap();
            let [first, second] = split(&whole, encoding, 2).unwrap();
            assert_eq!(
                first.unwrap(),
                body(&views[..2], &resource, encoding).unwrap()
            );
            let second = second.unwrap();
            assert_eq!(second, body(&views[2..], &resource, encoding).unwrap());
            let text = String::from_utf8_lossy(&second);
            assert!(!text.contains("secret"), "privacy survives the split");
        }
    }

    #[test]
    fn a_body_that_does_not_decode_is_an_error_not_a_panic() {
        assert!(split(b"\xff\xff\xff", Encoding::Protobuf, 1).is_err());
        assert!(split(b"{not json", Encoding::Json, 1).is_err());
    }
}
