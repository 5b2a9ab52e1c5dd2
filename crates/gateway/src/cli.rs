//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "gatecast",
    version,
    about = "OpenAI-compatible LLM gateway that broadcasts every exchange as an OpenTelemetry GenAI trace",
    long_about = "Gatecast forwards OpenAI-compatible chat requests to your providers, streams answers back \
                  unchanged, and turns each exchange into an OpenTelemetry trace that it delivers to Sentry, \
                  OTLP endpoints, webhooks and files, each with its own privacy mode.\n\n\
                  With no arguments, `gatecast serve` reads config/gatecast.toml, which serves a built-in \
                  mock provider on 127.0.0.1:8080 and writes traces to data/traces.jsonl."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "GATECAST_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file [default: $GATECAST_CONFIG, else config/gatecast.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address; overrides `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and exit non-zero on any error.
    CheckConfig {
        /// Config file [default: $GATECAST_CONFIG, else config/gatecast.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}
