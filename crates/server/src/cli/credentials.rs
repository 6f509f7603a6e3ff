//! `keyward credentials …`: the platform's services' credentials, straight on the
//! database. Always there, also with the static service token disabled: the way back
//! in for an operator who has the database and the pepper.

use std::process::ExitCode;

use clap::Subcommand;
use keyward_core::credential::{CredentialId, MAX_CREDENTIAL_GRACE_SECONDS, ServiceCredential};
use keyward_core::lifecycle::DEFAULT_ROTATION_GRACE_SECONDS;
use keyward_engine::{CreatedCredential, Engine, EngineError};
use keyward_store::AnyStore;

use super::keys::open_engine;
use super::output::{self, say, say_raw};
use crate::flags::Flags;
use crate::wire::credentials::{
    CreateCredentialRequest, CreatedCredentialResponse, CredentialResponse,
};

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create a credential for a service and print its secret (the only time it is
    /// shown).
    Create {
        /// Which service holds it (`gateway`, `billing`): the audit trail names its
        /// changes `credential:<name>`.
        #[arg(long)]
        name: String,
        /// A scope it holds (repeat, or separate with commas): keys.verify,
        /// keys.read, keys.write, usage.read, audit.read, credentials.manage,
        /// webhooks.manage.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// RFC 3339 time from which it is refused.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List credentials, newest first, revoked ones too (never a secret).
    List,
    /// Show one credential (never its secret).
    Show { id: String },
    /// Revoke a credential, for good: refused everywhere by its next request.
    Revoke { id: String },
    /// Give a credential a new secret (printed once); the old one keeps working for
    /// the grace period.
    Rotate {
        id: String,
        /// Seconds the old secret keeps working (0 to 604800).
        #[arg(long, default_value_t = DEFAULT_ROTATION_GRACE_SECONDS,
              value_parser = clap::value_parser!(u64).range(0..=MAX_CREDENTIAL_GRACE_SECONDS))]
        grace_seconds: u64,
    },
}

pub async fn run(
    flags: &Flags,
    command: CredentialsCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = open_engine(flags).await?;
    let result = execute(&engine, command, json).await;
    engine.shutdown().await;
    result.map(|()| ExitCode::SUCCESS)
}

async fn execute(
    engine: &Engine<AnyStore>,
    command: CredentialsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        CredentialsCommand::Create {
            name,
            scopes,
            expires_at,
        } => {
            // The HTTP API's body, read the same way.
            let request = CreateCredentialRequest {
                name,
                scopes,
                expires_at,
            };
            let created = engine
                .create_credential(&request.into())
                .await
                .map_err(describe)?;
            print_secret(created, json)
        }
        CredentialsCommand::List => {
            let credentials = engine.list_credentials().await.map_err(describe)?;
            if json {
                let body: Vec<CredentialResponse> =
                    credentials.into_iter().map(Into::into).collect();
                say!("{}", serde_json::to_string_pretty(&body)?);
            } else if credentials.is_empty() {
                say!("no credentials");
            } else {
                say_raw!("{}", output::credential_table(&credentials));
            }
            Ok(())
        }
        CredentialsCommand::Show { id } => {
            let credential = engine
                .get_credential(credential_id(&id)?)
                .await
                .map_err(describe)?;
            print_credential(credential, json)
        }
        CredentialsCommand::Revoke { id } => {
            let credential = engine
                .revoke_credential(credential_id(&id)?)
                .await
                .map_err(describe)?;
            print_credential(credential, json)
        }
        CredentialsCommand::Rotate { id, grace_seconds } => {
            let rotated = engine
                .rotate_credential(credential_id(&id)?, grace_seconds)
                .await
                .map_err(describe)?;
            print_secret(rotated, json)
        }
    }
}

fn credential_id(text: &str) -> anyhow::Result<CredentialId> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a credential id (expected a UUID)"))
}

fn describe(err: EngineError) -> anyhow::Error {
    match err {
        EngineError::Invalid(errors) => anyhow::anyhow!("invalid request: {errors}"),
        EngineError::NoSuchCredential => anyhow::anyhow!("no credential with this id"),
        other => anyhow::Error::new(other),
    }
}

fn print_credential(credential: ServiceCredential, json: bool) -> anyhow::Result<()> {
    if json {
        let body = CredentialResponse::from(credential);
        say!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        say_raw!("{}", output::credential_fields(&credential));
    }
    Ok(())
}

/// A credential with its new secret: printed this once.
fn print_secret(created: CreatedCredential, json: bool) -> anyhow::Result<()> {
    if json {
        let body = CreatedCredentialResponse::from(created);
        say!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        say_raw!("{}", output::credential_fields(&created.credential));
        say!(
            "\n{}\n(shown once: store it now; it cannot be retrieved again)",
            created.secret.expose()
        );
    }
    Ok(())
}
