//! `keyward users …`: user administration straight on the database: a user deleted,
//! and the limits all of a user's keys share.

use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::credits::{CreditGrant, UserLimits};
use keyward_core::model::UserId;
use keyward_core::rate::RateLimit;
use keyward_engine::{EngineError, UserLimitsView};

use super::keys::open_engine;
use super::output::{field_lines, or_dash, say, say_raw};
use crate::flags::Flags;
use crate::wire::users::UserLimitsResponse;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Delete a user and all their keys (they fail verification at once).
    Delete {
        /// The user id (the JWT `sub`).
        user: String,
    },
    /// Show the limits all of a user's keys share (theirs, or the defaults).
    Limits { user: String },
    /// Set the limits all of a user's keys share, in place of the defaults (a limit
    /// not given is none).
    SetLimits {
        user: String,
        /// One pool for all the user's keys, REQUESTS/SECONDS (e.g. 100/60).
        #[arg(long)]
        rate_limit: Option<RateLimit>,
        /// One balance all the user's keys draw on: AMOUNT, or AMOUNT/INTERVAL
        /// (minute, hour, day, week, month; UTC) or AMOUNT/month@DAY to renew it.
        #[arg(long)]
        credits: Option<CreditGrant>,
    },
    /// Remove a user's own limits: the defaults apply again.
    ClearLimits { user: String },
}

pub async fn run(flags: &Flags, command: UsersCommand, json: bool) -> anyhow::Result<ExitCode> {
    let engine = open_engine(flags).await?;
    let result = execute(&engine, command, json).await;
    engine.shutdown().await;
    result
}

async fn execute(
    engine: &keyward_engine::Engine<keyward_store::AnyStore>,
    command: UsersCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let parse = |user: &str| UserId::parse(user).map_err(|e| anyhow::anyhow!("user: {e}"));
    match command {
        UsersCommand::Delete { user } => {
            let user = parse(&user)?;
            let deleted = engine.delete_user(&user).await?;
            say!("deleted user {user} and {deleted} key(s)");
        }
        UsersCommand::Limits { user } => {
            print_limits(engine.user_limits(&parse(&user)?).await?, json)?;
        }
        UsersCommand::SetLimits {
            user,
            rate_limit,
            credits,
        } => {
            let limits = UserLimits {
                rate_limit,
                credits,
            };
            print_limits(engine.set_user_limits(&parse(&user)?, limits).await?, json)?;
        }
        UsersCommand::ClearLimits { user } => match engine.delete_user_limits(&parse(&user)?).await
        {
            Ok(view) => print_limits(view, json)?,
            Err(EngineError::NotFound) => {
                anyhow::bail!("{user} has no limits of their own; the defaults apply")
            }
            Err(err) => return Err(err.into()),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn print_limits(view: UserLimitsView, json: bool) -> anyhow::Result<()> {
    if json {
        let body = UserLimitsResponse::from(view);
        say!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let credits = view.credits;
    let fields = [
        ("user", view.user_id.to_string()),
        (
            "source",
            match view.source {
                keyward_engine::LimitsSource::User => "set for this user".to_owned(),
                keyward_engine::LimitsSource::Default => "the deployment's defaults".to_owned(),
            },
        ),
        (
            "rate limit",
            or_dash(view.rate_limit.map(|l| l.to_string())),
        ),
        ("credits", or_dash(credits.map(|c| c.remaining.to_string()))),
        (
            "refill",
            or_dash(credits.and_then(|c| {
                c.refill
                    .zip(c.next_refill_at)
                    .map(|(refill, next)| format!("{refill} (next {next})"))
            })),
        ),
    ];
    say_raw!("{}", field_lines(&fields));
    Ok(())
}
