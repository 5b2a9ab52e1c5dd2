//! Load generator and benchmark scenarios.
