//! OTLP over gRPC through the generated tonic client.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::host_policy::HostPolicy;
use super::http::excerpt;
use super::resolve::{refusal, GuardedConnector, GuardedResolver};
use super::{EncodedBatch, Encoding, ExportError, Sink};

pub struct GrpcSink {
    client: TraceServiceClient<Channel>,
    metadata: MetadataMap,
}

impl GrpcSink {
    /// Connects lazily: a destination that is down at start-up must not stop the gateway.
    /// Connections go only to addresses `hosts` allows (see `resolve`).
    pub fn new(
        endpoint: &str,
        headers: &[(String, String)],
        gzip: bool,
        timeout: Duration,
        hosts: &Arc<HostPolicy>,
    ) -> Result<Self, String> {
        let url = url::Url::parse(endpoint).map_err(|e| format!("invalid URL: {e}"))?;
        hosts.check_url(&url).map_err(|e| e.to_string())?;
        let connector = GuardedConnector::new(GuardedResolver::new(hosts.clone(), &url));
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| format!("invalid URL: {e}"))?
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .connect_with_connector_lazy(connector);
        let mut client = TraceServiceClient::new(channel);
        if gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let mut metadata = MetadataMap::new();
        for (k, v) in headers {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("headers: invalid name `{k}`"))?;
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| format!("headers: invalid value for `{k}`"))?;
            metadata.insert(key, value);
        }
        Ok(Self { client, metadata })
    }
}

impl GrpcSink {
    /// One export with the destination's metadata plus `extra`, which the connection test
    /// uses to mark its probe.
    pub(crate) async fn call(
        &self,
        request: ExportTraceServiceRequest,
        extra: MetadataMap,
    ) -> Result<(), tonic::Status> {
        let mut req = tonic::Request::new(request);
        let mut headers = self.metadata.clone().into_headers();
        headers.extend(extra.into_headers());
        *req.metadata_mut() = MetadataMap::from_headers(headers);
        let mut client = self.client.clone();
        client.export(req).await.map(|_| ())
    }
}

impl Sink for GrpcSink {
    fn encoding(&self) -> Encoding {
        Encoding::Protobuf
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let request = ExportTraceServiceRequest::decode(&batch.body[..])
            .map_err(|e| ExportError::permanent(format!("cannot decode batch: {e}")))?;
        match self.call(request, MetadataMap::new()).await {
            Ok(_) => Ok(()),
            Err(status) => {
                if let Some(refused) = refusal(&status) {
                    return Err(ExportError::permanent(format!(
                        "refused by the destination host policy: {refused}"
                    )));
                }
                let message = format!(
                    "gRPC {:?}: {}",
                    status.code(),
                    excerpt(status.message().as_bytes())
                );
                // The OTLP specification's retryable codes.
                Err(match status.code() {
                    Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
                    | Code::ResourceExhausted => ExportError::retryable(message),
                    _ => ExportError::permanent(message),
                })
            }
        }
    }
}
