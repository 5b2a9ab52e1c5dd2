//! What a receiver's answer says, as text for a destination's last error and the connection
//! test. OTLP/HTTP receivers and Sentry answer a failed protobuf export with a protobuf
//! `google.rpc.Status`, which read as text is a few words among binary bytes.

use prost::Message;

/// `google.rpc.Status` (google/rpc/status.proto). Defined here: neither tonic nor
/// opentelemetry-proto exports the message type.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`, of which only the type is shown.
#[derive(Clone, PartialEq, Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// Details named at most, so a receiver cannot make the message long.
const MAX_DETAILS: usize = 3;

/// The answer as one readable text: a protobuf answer's decoded status
/// (`PermissionDenied (code 7): invalid key`), otherwise the body with bytes that are not
/// printable text replaced.
pub fn text(content_type: Option<&str>, body: &[u8]) -> String {
    if is_protobuf(content_type) {
        if let Some(status) = decode_status(body) {
            return status;
        }
    }
    printable(body)
}

fn is_protobuf(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or_default().trim();
    [
        "application/x-protobuf",
        "application/protobuf",
        "application/grpc",
    ]
    .iter()
    .any(|t| essence.eq_ignore_ascii_case(t))
}

fn decode_status(body: &[u8]) -> Option<String> {
    let status = RpcStatus::decode(body).ok()?;
    let message = printable(status.message.as_bytes());
    // An empty message is what a success (`ExportTraceServiceResponse`) decodes to as well.
    if status.code == 0 && message.trim().is_empty() && status.details.is_empty() {
        return None;
    }
    let mut out = format!(
        "{:?} (code {})",
        tonic::Code::from(status.code),
        status.code
    );
    if !message.trim().is_empty() {
        out.push_str(": ");
        out.push_str(message.trim());
    }
    if !status.details.is_empty() {
        let kinds: Vec<String> = status
            .details
            .iter()
            .take(MAX_DETAILS)
            .map(|d| printable(d.type_url.rsplit('/').next().unwrap_or_default().as_bytes()))
            .collect();
        let more = status.details.len().saturating_sub(MAX_DETAILS);
        out.push_str(&format!(" [details: {}", kinds.join(", ")));
        if more > 0 {
            out.push_str(&format!(" and {more} more"));
        }
        out.push(']');
    }
    Some(out)
}

/// The body as text, with invalid UTF-8 and control characters but line breaks and tabs
/// replaced by U+FFFD, so an excerpt never carries raw binary into a terminal or a log.
pub fn printable(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .map(|c| {
            if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(code: i32, message: &str, details: &[&str]) -> Vec<u8> {
        RpcStatus {
            code,
            message: message.into(),
            details: details
                .iter()
                .map(|t| ProtoAny {
                    type_url: format!("type.googleapis.com/{t}"),
                    value: vec![1, 2, 3],
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_protobuf_status_is_decoded() {
        let body = status(7, "invalid project key", &[]);
        assert_eq!(
            text(Some("application/x-protobuf"), &body),
            "PermissionDenied (code 7): invalid project key"
        );
        let body = status(
            3,
            "bad span",
            &["google.rpc.BadRequest", "a.B", "c.D", "e.F"],
        );
        assert_eq!(
            text(Some("Application/Protobuf; charset=binary"), &body),
            "InvalidArgument (code 3): bad span [details: google.rpc.BadRequest, a.B, c.D and 1 more]"
        );
        assert_eq!(
            text(Some("application/x-protobuf"), &status(99, "", &[])),
            "Unknown (code 99)"
        );
    }

    #[test]
    fn other_answers_are_shown_as_printable_text() {
        let body = status(7, "invalid project key", &[]);
        let shown = text(Some("text/plain"), &body);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(shown.contains("invalid project key"));
        // An empty protobuf answer is no status; a body that is not protobuf stays text.
        assert_eq!(text(Some("application/x-protobuf"), b""), "");
        assert_eq!(
            text(Some("application/x-protobuf"), b"\xff\xffdenied"),
            "\u{fffd}\u{fffd}denied"
        );
        assert_eq!(
            text(None, b"line one\nline\ttwo\x07"),
            "line one\nline\ttwo\u{fffd}"
        );
    }
}
