//! The command line: `serve`, `migrate`, `healthcheck`, `openapi`, `keys …`,
//! `credentials …`, `token`, `scan`, `backup`, `copy`.
//!
//! The admin commands talk to the database directly, through the same engine the
//! server runs, so they work with or without a server running beside them (SQLite
//! serialises the writes; a running server notices the changes within a second).

mod backup;
mod credentials;
mod healthcheck;
mod import;
mod keys;
mod output;
mod peppers;
mod scan;
mod serve;
mod token;
mod users;
mod webhooks;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use keyward_core::permissions::Catalogue;

use crate::flags::Flags;
use crate::telemetry;
use output::say;

pub use keys::KeysCommand;
pub use output::OutputClosed;
pub use token::TokenArgs;

#[derive(Debug, Parser)]
#[command(
    name = "keyward",
    version,
    about = "Self-hosted API key service",
    long_about = "Self-hosted API key service: users create and manage API keys; \
                  services verify them in microseconds.\n\n\
                  With no configuration, keyward uses ./keyward.db (SQLite) and generates \
                  its secrets into ./keyward.db.secrets on first use."
)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Ask a running keyward whether it is ready (GET /readyz): exit 0 when it answers
    /// 200, 1 otherwise. For container health checks; needs no secret or database.
    Healthcheck(healthcheck::HealthcheckArgs),
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Manage keys directly in the database (admin).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        /// Print JSON (the HTTP API's shapes) instead of tables.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Manage the platform's services' credentials, each limited to its scopes
    /// (admin; works with the static service token disabled).
    Credentials {
        #[command(subcommand)]
        command: credentials::CredentialsCommand,
        /// Print JSON (the HTTP API's shapes) instead of tables.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Manage webhook endpoints and read their delivery log (admin).
    Webhooks {
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
        /// Print JSON (the HTTP API's shapes) instead of tables.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Print a development JWT for a user, or the service token with --admin.
    Token(TokenArgs),
    /// Manage users and the limits their keys share (admin).
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
        /// Print JSON (the HTTP API's shapes) instead of tables.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Bring keys along from another system.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// Find this deployment's keys in files or git history (checksum-checked, so
    /// lookalikes never show); exit 1 when one is found.
    Scan(scan::ScanArgs),
    /// Write a consistent copy of the SQLite database while it is served (checked,
    /// then renamed into place). On PostgreSQL, use pg_dump.
    Backup(backup::BackupArgs),
    /// Copy this deployment's database into another (SQLite to PostgreSQL, or back):
    /// every key, event and count, ids kept; run again, it resumes and brings over
    /// what changed; it ends by comparing each table's digest on both sides.
    Copy(backup::CopyArgs),
    /// Pepper rotation: keys per pepper version.
    Peppers {
        #[command(subcommand)]
        command: peppers::PeppersCommand,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
    },
}

/// Which settings each command's `--help` shows: the headings it reads, and single
/// settings of other headings. Every command still takes every setting (a flag, or its
/// `KEYWARD_*` variable) as before; this only keeps each help to what matters to it.
const SHOWN: &[(&str, &[&str])] = {
    use crate::flags::{DATABASE, KEYS, LOGGING, SECRETS, SERVER, USER_TOKENS, WEBHOOKS};
    // An admin command opens the database through the engine: its secrets, and the
    // rules of keys (prefix, catalogue, cap).
    const ADMIN: &[&str] = &[DATABASE, SECRETS, KEYS, LOGGING];
    &[
        (
            "serve",
            &[
                SERVER,
                DATABASE,
                SECRETS,
                USER_TOKENS,
                KEYS,
                LOGGING,
                WEBHOOKS,
            ],
        ),
        ("migrate", ADMIN),
        ("backup", &[DATABASE, LOGGING]),
        ("copy", &[DATABASE, LOGGING]),
        ("keys", ADMIN),
        ("credentials", ADMIN),
        (
            "webhooks",
            &[DATABASE, SECRETS, LOGGING, "webhook_allow_private"],
        ),
        ("users", ADMIN),
        ("import", ADMIN),
        ("peppers", ADMIN),
        ("scan", ADMIN),
        (
            "token",
            &[
                DATABASE,
                SECRETS,
                LOGGING,
                "jwt_issuer",
                "jwt_audience",
                "bind",
            ],
        ),
        ("healthcheck", &["bind", LOGGING]),
        ("openapi", &["permission_catalogue"]),
    ]
};

/// The command line as `keyward` parses it: [`Cli`], with each command's help
/// showing only its settings ([`SHOWN`]) and the top-level help saying where they are.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let cli = Cli::command();
    let settings: Vec<clap::Arg> = cli
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .cloned()
        .collect();
    // Hidden where they are declared, so hidden wherever clap copies them; a command
    // gets visible copies of its own first (clap then copies no other over them).
    let mut cli = cli
        .mut_args(|arg| {
            if arg.is_global_set() {
                arg.hide(true)
            } else {
                arg
            }
        })
        .after_help(
            "Settings are flags or KEYWARD_* environment variables; each command's --help \
             lists those it reads (`keyward serve --help`: every server setting).",
        );
    for (name, shown) in SHOWN {
        let own: Vec<clap::Arg> = settings
            .iter()
            .filter(|arg| {
                let heading = arg.get_help_heading().unwrap_or_default();
                shown.contains(&heading) || shown.contains(&arg.get_id().as_str())
            })
            .cloned()
            .collect();
        cli = cli.mut_subcommand(name, |command| command.args(own));
    }
    cli
}

/// An error as one line for the terminal: the message, then each cause the message
/// does not already contain. keyward's own errors carry their cause in the message;
/// some libraries' errors both say it and return it as `source()`, and a newcomer
/// should not read the same reason twice.
pub fn report(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// Runs a parsed command line; errors are printed to stderr by the caller.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let default_log = match cli.command {
        Command::Serve => "info",
        _ => "warn",
    };
    let filter = cli
        .flags
        .log
        .clone()
        .unwrap_or_else(|| default_log.to_owned());
    telemetry::init_logging(&filter, cli.flags.log_format)?;

    match cli.command {
        Command::Serve => serve::serve(&cli.flags).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate => {
            let settings = cli.flags.resolve(crate::settings::LocalTrial::Create)?;
            let engine = crate::app::start_engine(&settings, keyward_store::Use::Admin).await?;
            engine.shutdown().await;
            say!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            let catalogue = match &cli.flags.permission_catalogue {
                Some(list) => Catalogue::parse_list(list)
                    .map_err(|e| anyhow::anyhow!("KEYWARD_PERMISSIONS: {e}"))?,
                None => Catalogue::default(),
            };
            let doc = crate::http::openapi(&catalogue);
            say!("{}", serde_json::to_string_pretty(&doc)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command, json } => keys::run(&cli.flags, command, json).await,
        Command::Credentials { command, json } => credentials::run(&cli.flags, command, json).await,
        Command::Webhooks { command, json } => webhooks::run(&cli.flags, command, json).await,
        Command::Token(args) => token::run(&cli.flags, &args),
        Command::Healthcheck(args) => healthcheck::run(&cli.flags, &args).await,
        Command::Users { command, json } => users::run(&cli.flags, command, json).await,
        Command::Peppers { command, json } => peppers::run(&cli.flags, command, json).await,
        Command::Import { command } => import::run(&cli.flags, command).await,
        Command::Scan(args) => scan::run(&cli.flags, args).await,
        Command::Backup(args) => backup::backup(&cli.flags, &args).await,
        Command::Copy(args) => backup::copy(&cli.flags, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open: {0}")]
    struct SaysItsCause(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn an_error_report_names_each_cause_once() {
        let io = || std::io::Error::other("connection refused");
        assert_eq!(
            report(&anyhow::Error::new(SaysItsCause(io()))),
            "cannot open: connection refused"
        );
        assert_eq!(
            report(&anyhow::Error::new(Outer(io()))),
            "outer: connection refused"
        );
        assert_eq!(report(&anyhow::anyhow!("plain")), "plain");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        command().debug_assert();
    }

    #[test]
    fn settings_go_before_or_after_the_command() {
        for args in [
            ["keyward", "--key-prefix", "acme", "keys", "list"],
            ["keyward", "keys", "list", "--key-prefix", "acme"],
            // A setting the command's help does not show is taken all the same.
            ["keyward", "keys", "list", "--bind", "127.0.0.1:9"],
        ] {
            let matches = command().try_get_matches_from(args).unwrap();
            let cli = Cli::from_arg_matches(&matches).unwrap();
            assert!(
                cli.flags.key_prefix == "acme" || cli.flags.bind.to_string() == "127.0.0.1:9",
                "{args:?}"
            );
        }
    }

    #[test]
    fn every_option_of_every_command_says_what_it_is_for() {
        fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                // Named options (a positional ID is named by the command's own help).
                if arg.is_hide_set() || arg.get_long().is_none() || id == "help" || id == "version"
                {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    found.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                undocumented(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut command = command();
        command.build();
        let mut found = Vec::new();
        undocumented(&command, "keyward", &mut found);
        assert!(found.is_empty(), "options without a help text: {found:?}");
    }

    /// The `KEYWARD_*` variables a command's `--help` names.
    fn variables_in_help(path: &[&str]) -> Vec<String> {
        let mut command = command();
        command.build();
        let mut shown = &command;
        for name in path {
            shown = shown.find_subcommand(name).unwrap();
        }
        shown
            .get_arguments()
            .filter(|arg| !arg.is_hide_set())
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn each_command_shows_the_settings_it_reads_and_the_top_level_shows_none() {
        let every: Vec<String> = Cli::command()
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect();
        assert!(every.len() > 30);
        assert_eq!(variables_in_help(&["serve"]), every);
        assert!(variables_in_help(&[]).is_empty());
        let create = variables_in_help(&["keys", "create"]);
        for server in [
            "KEYWARD_BIND",
            "KEYWARD_HEADER_TIMEOUT",
            "KEYWARD_RATE_LIMIT_STORE",
            "KEYWARD_CACHE_CAPACITY",
            "KEYWARD_JWT_JWKS_URL",
        ] {
            assert!(!create.contains(&server.to_owned()), "{server}");
        }
        for read in [
            "KEYWARD_DATABASE_URL",
            "KEYWARD_PEPPER",
            "KEYWARD_PERMISSIONS",
        ] {
            assert!(create.contains(&read.to_owned()), "{read}");
        }
        assert_eq!(
            variables_in_help(&["healthcheck"]),
            ["KEYWARD_BIND", "KEYWARD_LOG", "KEYWARD_LOG_FORMAT"]
        );
    }

    #[test]
    fn every_command_and_every_setting_has_its_place_in_the_help() {
        let cli = Cli::command();
        for command in cli.get_subcommands() {
            assert!(
                SHOWN.iter().any(|(name, _)| *name == command.get_name()),
                "{}: add it to SHOWN",
                command.get_name()
            );
        }
        for arg in cli.get_arguments().filter(|arg| arg.is_global_set()) {
            assert!(
                arg.get_help_heading().is_some(),
                "{}: give it a heading",
                arg.get_id()
            );
        }
    }

    #[test]
    fn help_never_shows_secret_values() {
        let command = Cli::command();
        for id in ["jwt_secret", "admin_token", "pepper"] {
            let arg = command.get_arguments().find(|a| a.get_id() == id).unwrap();
            assert!(arg.is_hide_env_values_set(), "{id}");
            assert!(arg.get_default_values().is_empty(), "{id}");
        }
    }
}
