//! Switchyard's binary crate: the typed config, the control loop that wires
//! the other crates together, the admin API the CLI reads, the Prometheus
//! endpoint, and the CLI itself (`main.rs`).
//!
//! It is the only crate that sees all the others; none of them may depend
//! on it or read the admin API's state. Benches and tests use this library
//! directly.

#![deny(unsafe_code)]

pub mod admin;
pub mod config;
pub mod forwarding;
pub mod metrics_export;
pub mod runtime;
pub mod standalone_source;
