//! The keyward service: configuration, the HTTP API and the admin CLI, on top of
//! `keyward-engine`. The JSON shapes both transports speak are the [`wire`] contract.
//!
//! `main.rs` only parses the command line; everything lives here so tests and other
//! binaries can build the same router.
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod flags;
pub mod http;
pub mod secret_scanning;
pub mod secrets;
pub mod settings;
pub mod telemetry;
pub mod webhooks;
pub mod wire;
