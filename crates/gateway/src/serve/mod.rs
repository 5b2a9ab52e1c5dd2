//! The thread-per-core runtime: request threads that each accept, serve and time out their
//! own connections.

pub mod balance;
pub mod busy_poll;
pub mod conn;
pub mod fd_limit;
pub mod request_body;
pub mod thread;

pub use thread::{thread, Phase, Settings};
