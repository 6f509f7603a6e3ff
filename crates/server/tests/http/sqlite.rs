//! The HTTP suites on a fresh SQLite file per test.

pub type TestApp = crate::common::TestApp<crate::common::Sqlite>;

#[path = "suites/admin.rs"]
mod admin;
#[path = "suites/audit.rs"]
mod audit;
#[path = "suites/auth.rs"]
mod auth;
#[path = "suites/bad_input.rs"]
mod bad_input;
#[path = "suites/console.rs"]
mod console;
#[path = "suites/create.rs"]
mod create;
#[path = "suites/credentials.rs"]
mod credentials;
#[path = "suites/edit.rs"]
mod edit;
#[path = "suites/forward_auth.rs"]
mod forward_auth;
#[path = "suites/hostile.rs"]
mod hostile;
#[path = "suites/leaks.rs"]
mod leaks;
#[path = "suites/lifecycle.rs"]
mod lifecycle;
#[path = "suites/list_and_get.rs"]
mod list_and_get;
#[path = "suites/networks.rs"]
mod networks;
#[path = "suites/operations.rs"]
mod operations;
#[path = "suites/peppers.rs"]
mod peppers;
#[path = "suites/rate_limits.rs"]
mod rate_limits;
#[path = "suites/rotation.rs"]
mod rotation;
#[path = "suites/secret_scanning.rs"]
mod secret_scanning;
#[path = "suites/secrets_at_rest.rs"]
mod secrets_at_rest;
#[path = "suites/usage_credits.rs"]
mod usage_credits;
#[path = "suites/usage_history.rs"]
mod usage_history;
#[path = "suites/user_limits.rs"]
mod user_limits;
#[path = "suites/verify.rs"]
mod verify;
#[path = "suites/webhooks.rs"]
mod webhooks;
