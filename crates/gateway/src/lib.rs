//! The Gatecast gateway: CLI, start-up and shutdown wiring, and the HTTP surface.

pub mod admin;
pub mod api_error;
pub mod app;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod error;
pub mod guard;
pub mod logging;
pub mod routes;
pub mod serve;
pub mod spend;
pub mod turns;
pub mod upkeep;

pub use app::Gateway;
pub use config::Config;
pub use error::GatewayError;
