//! `keyward keys …`: key administration straight on the database.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::credits::Refill;
use keyward_core::model::{ApiKey, KeyId, Scope, UserId};
use keyward_core::rate::RateLimit;
use keyward_engine::{Engine, EngineError};
use keyward_store::AnyStore;

use super::output;
use super::output::{say, say_raw};
use crate::flags::Flags;
use crate::settings::LocalTrial;
use crate::wire::keys::{
    ApiKeyResponse, CreateKeyRequest, CreateKeyResponse, PatchKeyRequest, RotateKeyResponse,
};
use crate::wire::verify::VerifyResponse;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for a user and print it (the only time it is shown).
    Create {
        /// Owner of the key (the user id, as in the JWT `sub`).
        #[arg(long)]
        user: String,
        /// A label for the key, shown in listings, the console and the audit trail
        /// (1 to 100 characters; need not be unique), e.g. "CI deploy".
        #[arg(long)]
        name: String,
        /// Permission to grant (repeat, or separate with commas).
        #[arg(long = "permission", short = 'p', value_delimiter = ',')]
        permissions: Vec<String>,
        /// A longer note for the key's owner: what it is for, where it is used (up to
        /// 1000 characters). Optional.
        #[arg(long)]
        description: Option<String>,
        /// RFC 3339 time from which the key verifies as EXPIRED.
        #[arg(long)]
        expires_at: Option<String>,
        /// Verifications allowed per period, as REQUESTS/SECONDS (e.g. 100/60).
        #[arg(long)]
        rate_limit: Option<RateLimit>,
        /// A JSON object returned with every verification, e.g. '{"team":"ci"}'.
        #[arg(long, value_parser = parse_metadata_arg)]
        metadata: Option<JsonObject>,
        /// Usage credits: each valid verification takes one (or its cost).
        #[arg(long)]
        remaining: Option<u64>,
        /// Credits that renew, as AMOUNT/INTERVAL (minute, hour, day, week, month;
        /// UTC) or AMOUNT/month@DAY, e.g. 1000/month: set back to AMOUNT at the first
        /// verification after each boundary. Without --remaining, starts at AMOUNT.
        #[arg(long)]
        refill: Option<Refill>,
        /// A network the key may be used from, in CIDR (repeat, or separate with
        /// commas): verifications for end clients outside all of them are refused.
        #[arg(long = "allowed-ip", value_delimiter = ',')]
        allowed_ips: Vec<String>,
    },
    /// Replace a key with a new one (printed once); the old key keeps working for
    /// the grace period.
    Rotate {
        id: String,
        /// Seconds the old key keeps working (0 to 604800).
        #[arg(long, default_value_t = keyward_core::lifecycle::DEFAULT_ROTATION_GRACE_SECONDS,
              value_parser = clap::value_parser!(u64).range(0..=604_800))]
        grace_seconds: u64,
    },
    /// Change a key's name, description, expiry, metadata, credits or networks (only
    /// what is given).
    Edit {
        id: String,
        /// A new label for the key (1 to 100 characters).
        #[arg(long)]
        name: Option<String>,
        /// A new note for the key's owner (up to 1000 characters).
        #[arg(long, conflicts_with = "clear_description")]
        description: Option<String>,
        /// Removes the key's description.
        #[arg(long)]
        clear_description: bool,
        /// RFC 3339 time, in the future.
        #[arg(long, conflicts_with = "no_expiry")]
        expires_at: Option<String>,
        /// The key never expires.
        #[arg(long)]
        no_expiry: bool,
        /// A JSON object, e.g. '{"team":"ci"}'.
        #[arg(long, value_parser = parse_metadata_arg, conflicts_with = "clear_metadata")]
        metadata: Option<JsonObject>,
        /// Removes the key's metadata.
        #[arg(long)]
        clear_metadata: bool,
        /// Sets the usage credits left (a top-up).
        #[arg(long, conflicts_with = "unlimited")]
        remaining: Option<u64>,
        /// Removes the usage credit limit (and its refill).
        #[arg(long, conflicts_with = "refill")]
        unlimited: bool,
        /// Credits that renew, as AMOUNT/INTERVAL or AMOUNT/month@DAY (see `keys
        /// create`), replacing any refill before.
        #[arg(long, conflicts_with = "no_refill")]
        refill: Option<Refill>,
        /// The credits stop renewing (what is left stays).
        #[arg(long)]
        no_refill: bool,
        /// Binds the key to these networks, in CIDR (repeat, or separate with
        /// commas), replacing any before.
        #[arg(long = "allowed-ip", value_delimiter = ',', conflicts_with = "any_ip")]
        allowed_ips: Vec<String>,
        /// The key may be used from any address.
        #[arg(long)]
        any_ip: bool,
    },
    /// List keys, newest first (every user's, or one user's).
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
    },
    /// Show one key.
    Show { id: String },
    /// Suspend a key (reversible).
    Suspend { id: String },
    /// Reactivate a suspended key.
    Reactivate { id: String },
    /// Revoke a key (final).
    Revoke { id: String },
    /// Replace a key's permissions (none given: the key only identifies its owner).
    SetPermissions {
        id: String,
        #[arg(value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// Set a key's verification rate limit as REQUESTS/SECONDS (e.g. 100/60), or
    /// remove it with `none`.
    SetRateLimit {
        id: String,
        #[arg(value_parser = parse_optional_rate_limit)]
        limit: OptionalRateLimit,
    },
    /// Verify a key. Give it as `-` (or not at all) to read it from stdin and keep
    /// it out of the shell history. Exits 0 if valid, 1 otherwise.
    Verify {
        key: Option<String>,
        /// Permission the key must hold (repeat, or separate with commas).
        #[arg(long = "permission", short = 'p', value_delimiter = ',')]
        permissions: Vec<String>,
    },
}

pub async fn run(flags: &Flags, command: KeysCommand, json: bool) -> anyhow::Result<ExitCode> {
    let engine = open_engine(flags).await?;
    let result = execute(&engine, command, json).await;
    // Writes recorded usage (from `verify`) and closes the database.
    engine.shutdown().await;
    result
}

/// The engine on an existing database, for admin commands.
pub(super) async fn open_engine(flags: &Flags) -> anyhow::Result<Engine<AnyStore>> {
    let mut settings = flags.resolve(LocalTrial::Existing)?;
    // Changes made here are the CLI's in the audit trail.
    settings.engine.admin_actor = "cli".to_owned();
    // An admin command in the wrong directory must not create an empty database
    // and report "no keys".
    if let Some(path) = settings.database_url.sqlite_path().filter(|p| !p.exists()) {
        anyhow::bail!(
            "no database at {}; start `keyward serve` (or run `keyward migrate`) first, \
             or set KEYWARD_DATABASE_URL to the server's database",
            path.display()
        );
    }
    crate::app::open_engine(&settings).await
}

/// A JSON object given on the command line (what metadata may be is checked with the
/// rest of the request).
fn parse_metadata_arg(text: &str) -> Result<JsonObject, String> {
    serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// `--flag VALUE` sets, `--clear-flag` clears, neither leaves as is.
fn change<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear { Some(None) } else { value.map(Some) }
}

/// A rate limit, or `none` to remove it (clap needs a type of its own for this).
#[derive(Clone, Debug)]
pub struct OptionalRateLimit(Option<RateLimit>);

fn parse_optional_rate_limit(text: &str) -> Result<OptionalRateLimit, String> {
    if text.eq_ignore_ascii_case("none") {
        Ok(OptionalRateLimit(None))
    } else {
        text.parse().map(|limit| OptionalRateLimit(Some(limit)))
    }
}

fn key_id(text: &str) -> anyhow::Result<KeyId> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a key id (expected a UUID)"))
}

fn user_id(text: &str) -> anyhow::Result<UserId> {
    UserId::parse(text).map_err(|e| anyhow::anyhow!("--user: {e}"))
}

fn describe(err: EngineError) -> anyhow::Error {
    match err {
        EngineError::Invalid(errors) => anyhow::anyhow!("invalid request: {errors}"),
        EngineError::NotFound => anyhow::anyhow!("no key with this id"),
        other => anyhow::Error::new(other),
    }
}

/// Runs `op` on the key `id` names, and prints the key as it then is.
async fn on_key<F>(id: &str, json: bool, op: impl FnOnce(KeyId) -> F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = Result<ApiKey, EngineError>>,
{
    let key = op(key_id(id)?).await.map_err(describe)?;
    print_key(key, json)
}

fn print_key(key: ApiKey, json: bool) -> anyhow::Result<()> {
    if json {
        say!(
            "{}",
            serde_json::to_string_pretty(&ApiKeyResponse::from(key))?
        );
    } else {
        say_raw!("{}", output::key_fields(&key));
    }
    Ok(())
}

async fn execute(
    engine: &Engine<AnyStore>,
    command: KeysCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            user,
            name,
            permissions,
            description,
            expires_at,
            rate_limit,
            metadata,
            remaining,
            refill,
            allowed_ips,
        } => {
            // The HTTP API's body, read the same way.
            let request = CreateKeyRequest {
                name,
                permissions,
                description,
                expires_at,
                rate_limit: rate_limit.map(Into::into),
                metadata,
                remaining,
                refill: refill.map(Into::into),
                allowed_ips: (!allowed_ips.is_empty()).then_some(allowed_ips),
            };
            let created = engine
                .create_key_as_admin(&user_id(&user)?, &request.into())
                .await
                .map_err(describe)?;
            if json {
                let body = CreateKeyResponse::from(created);
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                say_raw!("{}", output::key_fields(&created.key));
                say!(
                    "\n{}\n(shown once: store it now; it cannot be retrieved again)",
                    created.plain_text.expose()
                );
            }
        }
        KeysCommand::List { user } => {
            let owner = user.as_deref().map(user_id).transpose()?;
            let keys = engine
                .list_keys(owner.as_ref().map_or(Scope::Admin, Scope::User))
                .await
                .map_err(describe)?;
            if json {
                let body: Vec<ApiKeyResponse> = keys.into_iter().map(Into::into).collect();
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else if keys.is_empty() {
                say!("no keys");
            } else {
                say_raw!("{}", output::key_table(&keys));
            }
        }
        KeysCommand::Show { id } => {
            on_key(&id, json, |id| engine.get_key(Scope::Admin, id)).await?;
        }
        KeysCommand::Suspend { id } => {
            on_key(&id, json, |id| engine.suspend(Scope::Admin, id)).await?;
        }
        KeysCommand::Reactivate { id } => {
            on_key(&id, json, |id| engine.reactivate(Scope::Admin, id)).await?;
        }
        KeysCommand::Revoke { id } => {
            on_key(&id, json, |id| engine.revoke(Scope::Admin, id)).await?;
        }
        KeysCommand::SetPermissions { id, permissions } => {
            let key = engine
                .set_permissions(Scope::Admin, key_id(&id)?, &permissions)
                .await
                .map_err(describe)?;
            print_key(key, json)?;
        }
        KeysCommand::Edit {
            id,
            name,
            description,
            clear_description,
            expires_at,
            no_expiry,
            metadata,
            clear_metadata,
            remaining,
            unlimited,
            refill,
            no_refill,
            allowed_ips,
            any_ip,
        } => {
            // The HTTP API's PATCH body, read the same way.
            let edit = PatchKeyRequest {
                name: name.map(Some),
                description: change(description, clear_description),
                expires_at: change(expires_at, no_expiry),
                metadata: change(metadata, clear_metadata),
                remaining: change(remaining, unlimited),
                refill: change(refill.map(Into::into), no_refill),
                rate_limit: None,
                allowed_ips: change((!allowed_ips.is_empty()).then_some(allowed_ips), any_ip),
            };
            let key = engine
                .edit(Scope::Admin, key_id(&id)?, &edit.into())
                .await
                .map_err(describe)?;
            print_key(key, json)?;
        }
        KeysCommand::Rotate { id, grace_seconds } => {
            let rotated = engine
                .rotate(Scope::Admin, key_id(&id)?, grace_seconds)
                .await
                .map_err(describe)?;
            let plain = rotated.new.plain_text.expose().to_owned();
            if json {
                let body = RotateKeyResponse {
                    api_key: rotated.new.key.into(),
                    plain_text_key: plain,
                    previous_key: rotated.old.into(),
                };
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                say_raw!("{}", output::key_fields(&rotated.new.key));
                say!("\n{plain}\n(shown once: store it now; it cannot be retrieved again)");
                if let Some(until) = rotated.old.expires_at {
                    say!("the old key {} works until {until}", rotated.old.id);
                }
            }
        }
        KeysCommand::SetRateLimit { id, limit } => {
            let key = engine
                .set_rate_limit(Scope::Admin, key_id(&id)?, limit.0)
                .await
                .map_err(describe)?;
            print_key(key, json)?;
        }
        KeysCommand::Verify { key, permissions } => {
            let key = match key.as_deref() {
                Some(k) if k != "-" => k.to_owned(),
                _ => read_key_from_stdin()?,
            };
            let verification = engine
                .verify(key.trim(), &permissions)
                .await
                .map_err(describe)?;
            if json {
                let body = VerifyResponse::from(&verification);
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                let code = verification.code;
                match verification.key.as_deref() {
                    Some(k) => {
                        let mut credits = String::new();
                        if let Some(left) = verification.remaining {
                            credits.push_str(&format!(", {left} credits left"));
                        }
                        if let Some(next) = verification.next_refill_at {
                            credits.push_str(&format!(", refilled at {next}"));
                        }
                        say!(
                            "{code}: {} (key {}, user {}{credits})",
                            code.meaning(),
                            k.id,
                            k.user_id
                        )
                    }
                    None => say!("{code}: {}", code.meaning()),
                }
            }
            if !verification.is_valid() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_key_from_stdin() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("key: ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
