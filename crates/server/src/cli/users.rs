//! `keyward users …`: user administration straight on the database.

use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::model::UserId;

use super::keys::open_engine;
use super::output::say;
use crate::flags::Flags;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Delete a user and all their keys (they fail verification at once).
    Delete {
        /// The user id (the JWT `sub`).
        user: String,
    },
}

pub async fn run(flags: &Flags, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let UsersCommand::Delete { user } = command;
    let user = UserId::parse(&user).map_err(|e| anyhow::anyhow!("user: {e}"))?;
    let engine = open_engine(flags).await?;
    let result = engine.delete_user(&user).await;
    engine.shutdown().await;
    let deleted = result?;
    say!("deleted user {user} and {deleted} key(s)");
    Ok(ExitCode::SUCCESS)
}
