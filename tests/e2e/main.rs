//! End-to-end tests: the gateway runs in-process on a random port, in front of the
//! `gatecast-mock` HTTP server, and writes its traces to a file destination that the tests
//! decode with the official `opentelemetry-proto` types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod bounds;
mod broadcast;
mod budgets;
mod cli;
mod connections;
mod cost;
mod dialects;
mod guard;
mod harness;
mod messages_api;
mod process;
mod proxy;
mod replicas;
mod responses_api;
mod shutdown;
mod slow_clients;
mod spool;
mod traces;
