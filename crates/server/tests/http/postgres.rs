//! The HTTP suites on a fresh PostgreSQL database per test (the at-rest file scan is
//! SQLite's: PostgreSQL's storage is not a file the tests read).

pub type TestApp = crate::common::TestApp<crate::common::Postgres>;

#[path = "suites/admin.rs"]
mod admin;
#[path = "suites/auth.rs"]
mod auth;
#[path = "suites/create.rs"]
mod create;
#[path = "suites/lifecycle.rs"]
mod lifecycle;
#[path = "suites/list_and_get.rs"]
mod list_and_get;
#[path = "suites/operations.rs"]
mod operations;
#[path = "suites/verify.rs"]
mod verify;
