//! Runtime control: the store as the shared truth, live reload of destinations and keys,
//! and client authentication with virtual keys.

pub mod bridge;
mod guard;
pub mod heartbeat;
pub mod keys;
mod runtime;

pub use guard::Guard;
pub use keys::{AuthFailure, KeyRing};
pub use runtime::{open_existing_store, open_store, Control};
