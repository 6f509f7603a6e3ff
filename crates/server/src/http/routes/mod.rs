//! The handlers, by resource. Each renders: it parses its request with the extractors
//! of `http/` (who is calling, the body, the path), asks the engine, and turns the
//! answer into its JSON shape (`crate::wire`).
//!
//! - [`api_keys`]: the management API (users, JWT): a user's keys, their audit
//!   trail and usage history.
//! - [`verify`]: the verify API (services, `keys.verify`).
//! - [`forward_auth`]: `/api/auth`, for reverse proxies.
//! - [`admin`]: the platform's own routes: any user's keys, the audit trail and
//!   usage history across keys, user deletion (services, service token).
//! - [`credentials`]: the platform's services' scoped credentials
//!   (`credentials.manage`).
//! - [`webhooks`]: webhook endpoints and their delivery log (`webhooks.manage`).
//! - [`leaks`]: a key reported found in public (no authentication);
//!   [`secret_scanning`]: GitHub's secret scanning partner endpoint (GitHub's signature).
//! - [`catalogue`]: the permission names.
//! - [`ops`]: health, readiness, metrics, `/openapi.json`, `/docs`.
//! - [`console`]: the web console at `/console` (a page on top of the JSON API).

pub mod admin;
pub mod api_keys;
pub mod catalogue;
pub mod console;
pub mod credentials;
pub mod forward_auth;
pub mod leaks;
pub mod ops;
pub mod secret_scanning;
pub mod verify;
pub mod webhooks;
