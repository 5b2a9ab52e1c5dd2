//! Records to destinations: the broadcaster, one pipeline and worker per destination, the
//! spool, the counters, and where batch work runs (pacing, the idle threads).

pub mod background;
pub mod broadcaster;
mod export;
pub mod pace;
pub mod pipeline;
mod replay;
pub mod retry;
pub mod spool;
pub mod stats;
mod worker;
