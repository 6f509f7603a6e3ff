//! The wire contract: the JSON shapes of the HTTP API, converted from the core's
//! model, and shared by the CLI (`keyward keys --json` prints the same shapes).
//!
//! One module per resource. The OpenAPI document is generated from these types'
//! annotations, so a change here is a change of the published API.
//!
//! - [`keys`]: a key as shown, and the requests that create, change and rotate it.
//! - [`leaks`]: a leak report; [`secret_scanning`]: GitHub's partner messages.
//! - [`verify`]: the verify API's request and verdict.
//! - [`credentials`]: a service credential as shown, and the requests that create
//!   and rotate it.
//! - [`webhooks`]: a webhook endpoint, its delivery log, and the requests that
//!   create and change it.
//! - [`events`]: the audit trail's events, their pages and the queries for them.
//! - [`usage`]: usage history (verifications per hour or day) and its queries.
//! - [`users`]: what deleting a user answers.
//! - [`permissions`]: permission names and the catalogue.
//! - [`health`]: the liveness and readiness answer.
//! - [`validate`]: wire values into the core's types (the rules stay the core's).
//!
//! Error bodies are not here: `http::error::ErrorBody` is built only by the HTTP
//! layer's one error type, beside it.

pub mod credentials;
pub mod events;
pub mod health;
pub mod keys;
pub mod leaks;
pub mod permissions;
pub mod secret_scanning;
pub mod usage;
pub mod users;
pub mod validate;
pub mod verify;
pub mod webhooks;
