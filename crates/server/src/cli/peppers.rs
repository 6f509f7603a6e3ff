//! `keyward peppers status`: how far a pepper rotation has got.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::keys::open_engine;
use super::output::{say, say_raw};
use crate::flags::Flags;

#[derive(Debug, Subcommand)]
pub enum PeppersCommand {
    /// Keys per pepper version, and whether a retired pepper can be dropped.
    Status,
}

/// One pepper version's line of the report.
#[derive(Serialize, Debug, PartialEq, Eq)]
pub struct VersionStatus {
    pub version: u16,
    /// `current`, `retired` (configured, old), or `missing` (keys use it, but it is
    /// not configured: those keys cannot verify).
    pub role: &'static str,
    /// Keys and service credentials that are not revoked: each moves to the current
    /// version on its next successful use.
    pub live_keys: u64,
    pub revoked_keys: u64,
    /// True when removing this version from the configuration loses no key that
    /// could still verify.
    pub can_drop: bool,
}

pub async fn run(flags: &Flags, command: PeppersCommand, json: bool) -> anyhow::Result<ExitCode> {
    let PeppersCommand::Status = command;
    let engine = open_engine(flags).await?;
    let usage = engine.pepper_usage().await;
    let peppers = engine.config().peppers.clone();
    engine.shutdown().await;
    let usage = usage?;

    let current = peppers.current().version();
    let mut versions: Vec<u16> = peppers
        .retired()
        .iter()
        .map(|p| p.version())
        .chain([current])
        .chain(usage.iter().map(|u| u.version))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let report: Vec<VersionStatus> = versions
        .into_iter()
        .map(|version| {
            let (live, revoked) = usage
                .iter()
                .find(|u| u.version == version)
                .map_or((0, 0), |u| (u.live, u.revoked));
            let role = if version == current {
                "current"
            } else if peppers.retired().iter().any(|p| p.version() == version) {
                "retired"
            } else {
                "missing"
            };
            VersionStatus {
                version,
                role,
                live_keys: live,
                revoked_keys: revoked,
                can_drop: role == "retired" && live == 0,
            }
        })
        .collect();

    if json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say_raw!("{}", human(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn human(report: &[VersionStatus]) -> String {
    let mut out = format!(
        "{:<8} {:<8} {:>10} {:>12}\n",
        "version", "role", "live keys", "revoked keys"
    );
    for line in report {
        out.push_str(&format!(
            "{:<8} {:<8} {:>10} {:>12}\n",
            line.version, line.role, line.live_keys, line.revoked_keys
        ));
    }
    for line in report {
        match line.role {
            "retired" if line.can_drop => out.push_str(&format!(
                "\nversion {} can be dropped from KEYWARD_PEPPER: no key or credential that can \
                 still verify uses it.\n",
                line.version
            )),
            "retired" => out.push_str(&format!(
                "\nversion {} is still needed: {} live key(s) or credential(s) use it; each moves \
                 to the current version on its next successful use.\n",
                line.version, line.live_keys
            )),
            "missing" if line.live_keys > 0 => out.push_str(&format!(
                "\nversion {} is not configured: its {} live key(s) or credential(s) cannot \
                 verify.\n",
                line.version, line.live_keys
            )),
            _ => {}
        }
    }
    out
}
