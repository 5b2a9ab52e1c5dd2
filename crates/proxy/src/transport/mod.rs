//! The HTTP call to a provider's upstream: `http://` through the per-thread plain pools,
//! `https://` through the TLS-capable client.

pub mod lane;
mod plain;
mod tls;

pub(crate) use tls::{PoolSettings, Transport};
