//! `gatecast-bench`: a load generator written for one job, measuring what Gatecast adds on
//! top of a direct call to the same upstream, in the same run, on the same machine.
//!
//! The binary drives the scenarios; the modules are a library so the criterion bench and the
//! unit tests reach the same code.

pub mod api_path;
pub mod client;
pub mod gwconfig;
pub mod hist;
pub mod load;
pub mod path_report;
pub mod path_runs;
pub mod procs;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod side_thread;
pub mod sink;
pub mod telemetry_work;
