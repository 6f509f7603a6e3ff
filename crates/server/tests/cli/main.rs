//! The `keyward` binary: admin commands against the database a server uses, token
//! minting, setup commands, and `serve` started with no configuration at all.

mod common;

mod admin;
mod backup;
mod browser;
mod caddy;
mod cluster;
mod connections;
mod console;
mod crash;
mod credentials;
mod deploy;
mod full_disk;
mod healthcheck;
mod import;
mod load;
mod messages;
mod nginx;
mod peppers;
mod proxy;
mod python_client;
mod scan;
mod secret_scanning_rules;
mod serve;
mod setup;
mod shared_limits;
mod typescript_client;
mod unix_socket;
mod webhooks;
