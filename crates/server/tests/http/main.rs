//! HTTP tests: the real router, a real SQLite file per test, nothing mocked.

mod common;

mod auth;
mod create;
mod lifecycle;
mod list_and_get;
mod operations;
mod secrets_at_rest;
mod verify;
