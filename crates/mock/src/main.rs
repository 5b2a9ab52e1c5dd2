//! `gatecast-mock`: the deterministic mock LLM as a standalone HTTP server.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;

/// A deterministic mock LLM provider (OpenAI chat, Anthropic Messages, Azure OpenAI, Responses,
/// embeddings), for tests and benchmarks.
#[derive(Debug, Parser)]
#[command(
    name = "gatecast-mock",
    version,
    long_about = "A deterministic mock LLM provider, for tests and benchmarks.\n\n\
Routes: POST /v1/chat/completions (and /chat/completions), POST /v1/messages and\n\
/v1/messages/count_tokens (Anthropic), POST /openai/deployments/{d}/chat/completions?api-version=...\n\
and /openai/v1/chat/completions (Azure), POST /v1/responses, POST /v1/embeddings, GET /v1/models,\n\
GET /health, GET|DELETE /__mock/requests (the requests received so far, credentials redacted).\n\n\
The same request always gets the same bytes back. Faults are injected per request with a\n\
`#mock:k=v,k=v` token in the last user message or an `x-mock: k=v;k=v` header:\n  \
error=STATUS        answer with this HTTP error (400-599)\n  \
retry_after=SECS    retry-after header on the error (429 defaults to 1)\n  \
latency_ms=MS       wait before sending the headers\n  \
chunk_delay_ms=MS   wait between streamed events\n  \
abort_after=N       break the connection after N events\n  \
chunks=N            stream the text in N pieces instead of one per word\n  \
fail_times=N        the error applies to the first N identical requests only\n  \
stream_error_after=N  a `data: {\"error\":...}` event after N streamed events, then the end\n  \
truncate_after=N    end the stream after N events, with no finish reason or [DONE]\n  \
answer_bytes=N      a non-streamed answer of N bytes, made as it is sent\n  \
event_bytes=N       one streamed event of N bytes that never ends, made as it is sent\n  \
cache_read=N        Anthropic: N cache-read input tokens in the usage\n  \
cache_write=N       Anthropic: N cache-creation input tokens in the usage\n  \
content_filter=1    Azure: content-filter annotations; with error=400, Azure's filter error\n  \
stop_reason=R       Anthropic: a text answer stops with R (max_tokens, stop_sequence, refusal, ...)\n\n\
See docs/mock.md for each dialect's shapes and validation."
)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long,
        env = "GATECAST_MOCK_LISTEN",
        default_value = "127.0.0.1:18080",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let server = match gatecast_mock::start(cli.listen).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("gatecast-mock: cannot listen on {}: {err}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("gatecast-mock listening on http://{}", server.addr);
    stop_requested().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Ctrl-C, or SIGTERM from a supervisor or `docker stop`.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
