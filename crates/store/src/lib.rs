//! Database: runtime destinations, virtual keys, config version.
