//! `keyward scan PATH…`: finds this deployment's keys and service credentials in files,
//! or with `--git` in every blob of a repository's history. Only checksum-valid
//! strings are reported (`keyward_core::scan`), each as where it is and the key's
//! visible prefix and last four, never the whole key. `--verify` says which are live,
//! `--revoke` applies the leak action to those. Exit 1 when a key is found (with
//! `--verify`, a live one), for a pre-commit hook or a CI step; 2 when something
//! could not be read or looked up and nothing was found.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::Context as _;
use keyward_core::key::{KeyFormat, KeyPrefix};
use keyward_core::leak::Sighting;
use keyward_core::scan::{Finder, Found};
use keyward_engine::{Engine, LiveSecret};
use keyward_store::AnyStore;
use serde::Serialize;

use super::keys::open_engine;
use super::output::{OutputClosed, say};
use crate::flags::Flags;

/// Bytes read at a time: a file of any size is scanned in this much memory.
const CHUNK: usize = 256 * 1024;
/// Findings listed per file or blob, and in all: a hostile input (one key repeated a
/// billion times compresses well in a repository) must not fill memory. Past either,
/// keys are counted, not listed or looked up, and the scan exits 1.
const MAX_LISTED_PER_INPUT: usize = 100;
const MAX_LISTED: usize = 10_000;
/// Blobs named by the oldest commit that has them (one `git log` each); past it, by
/// their object id.
const MAX_COMMIT_LOOKUPS: usize = 100;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files and directories to scan (directories recursively; `.git` directories
    /// and symbolic links are skipped). With --git, repositories.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Scan every blob reachable from any ref of each repository (its whole
    /// history, through git's own plumbing) instead of the files.
    #[arg(long)]
    git: bool,
    /// Look each key up in the database and say which are live (still work, or would
    /// once reactivated); exit 1 only for a live one.
    #[arg(long)]
    verify: bool,
    /// Apply KEYWARD_LEAKED_KEY_ACTION to each live key found (revoke by default),
    /// recorded as `leaked` with where it was found. Implies --verify.
    #[arg(long)]
    revoke: bool,
    /// Print a JSON array of findings instead of lines.
    #[arg(long)]
    json: bool,
}

/// A key found, and where: `path:line` (`commit:path:line` in history).
struct Finding {
    place: String,
    found: Found,
}

/// What scanning read.
#[derive(Default)]
struct Scanned {
    findings: Vec<Finding>,
    inputs: u64,
    bytes: u64,
    /// Keys found past the listing limits: counted only.
    unlisted: u64,
    /// Paths that could not be read, with why: said on stderr.
    unreadable: Vec<String>,
}

/// One finding as `--json` prints it.
#[derive(Serialize)]
struct FindingJson<'a> {
    place: &'a str,
    kind: &'static str,
    key: String,
    /// With --verify: whether it is live; without: absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    live: Option<bool>,
    /// The live key's or credential's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
}

/// Runs the scan. Its own errors exit 2, not 1: 1 means a key was found.
pub async fn run(flags: &Flags, args: ScanArgs) -> anyhow::Result<ExitCode> {
    match scan(flags, args).await {
        Err(err) if !err.is::<OutputClosed>() => {
            eprintln!("error: {}", super::report(&err));
            Ok(ExitCode::from(2))
        }
        result => result,
    }
}

async fn scan(flags: &Flags, args: ScanArgs) -> anyhow::Result<ExitCode> {
    let prefix = KeyPrefix::parse(&flags.key_prefix)
        .map_err(|err| anyhow::anyhow!("KEYWARD_KEY_PREFIX: {err}"))?;
    let finder = Finder::new(&KeyFormat::new(prefix));
    let verify = args.verify || args.revoke;
    // Opened first: a scan that cannot say what it found is not started.
    let engine = if verify {
        Some(open_engine(flags).await?)
    } else {
        None
    };
    let started = Instant::now();
    let (paths, git) = (args.paths.clone(), args.git);
    let scanned = tokio::task::spawn_blocking(move || {
        let mut scanned = Scanned::default();
        for path in &paths {
            if git {
                if let Err(err) = scan_history(&finder, path, &mut scanned) {
                    scanned
                        .unreadable
                        .push(format!("{}: {err:#}", path.display()));
                }
            } else {
                scan_path(&finder, path, true, &mut scanned);
            }
        }
        scanned
    })
    .await
    .context("the scan stopped")?;
    let elapsed = started.elapsed();
    let looked_up = match &engine {
        Some(engine) => {
            let result = look_up(engine, &scanned.findings, args.revoke).await;
            engine.shutdown().await;
            Some(result?)
        }
        None => None,
    };
    for why in &scanned.unreadable {
        eprintln!("warning: not scanned: {why}");
    }
    let live_of = |finding: &Finding| {
        looked_up.as_ref().map(|live| {
            live.get(finding.found.key.expose())
                .and_then(Option::as_ref)
        })
    };
    if args.json {
        let rows: Vec<FindingJson<'_>> = scanned
            .findings
            .iter()
            .map(|finding| {
                let live = live_of(finding);
                FindingJson {
                    place: &finding.place,
                    kind: finding.found.kind.as_str(),
                    key: finding.found.visible(),
                    live: live.map(|l| l.is_some()),
                    id: live.flatten().map(id_of),
                }
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for finding in &scanned.findings {
            let status = match live_of(finding) {
                None => String::new(),
                Some(None) => "  not live".to_owned(),
                Some(Some(secret)) if args.revoke => {
                    format!("  live {}: {}", id_of(secret), done(flags))
                }
                Some(Some(secret)) => format!("  live {}", id_of(secret)),
            };
            say!(
                "{}: {} {}{status}",
                finding.place,
                finding.found.visible(),
                finding.found.kind.as_str()
            );
        }
    }
    let live = looked_up
        .as_ref()
        .map(|live| live.values().filter(|l| l.is_some()).count());
    let unlisted = match scanned.unlisted {
        0 => String::new(),
        n => format!(
            " ({n} not listed or looked up: over {MAX_LISTED_PER_INPUT} in one input \
             or {MAX_LISTED} in all)"
        ),
    };
    eprintln!(
        "scanned {} {} ({:.1} MB) in {:.2} s: {} found{}{unlisted}",
        scanned.inputs,
        if args.git { "blobs" } else { "files" },
        scanned.bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        scanned.findings.len() as u64 + scanned.unlisted,
        live.map_or(String::new(), |n| format!(", {n} live")),
    );
    // Keys not looked up may be live.
    let alarm = live.unwrap_or(scanned.findings.len()) > 0 || scanned.unlisted > 0;
    Ok(if alarm {
        ExitCode::from(1)
    } else if scanned.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// What `--revoke` did to each live key, in words.
fn done(flags: &Flags) -> &'static str {
    match flags.leaked_key_action {
        keyward_core::leak::LeakAction::Revoke => "revoked",
        keyward_core::leak::LeakAction::Suspend => "suspended (credentials: revoked)",
        keyward_core::leak::LeakAction::Report => "reported",
    }
}

fn id_of(secret: &LiveSecret) -> String {
    match secret {
        LiveSecret::Key(key) => key.id.to_string(),
        LiveSecret::Credential(credential, _) => credential.id.to_string(),
    }
}

/// Each distinct key found, looked up once: live or not; with `revoke`, the leak
/// action applied to each live one, recorded with the first place it was found.
async fn look_up(
    engine: &Engine<AnyStore>,
    findings: &[Finding],
    revoke: bool,
) -> anyhow::Result<HashMap<String, Option<LiveSecret>>> {
    let engine = engine.acting_as(
        keyward_core::audit::Actor::Admin("scan".into()),
        keyward_core::credential::ScopeSet::default(),
    );
    let mut live = HashMap::new();
    for finding in findings {
        let key = finding.found.key.expose();
        if live.contains_key(key) {
            continue;
        }
        let secret = if revoke {
            let seen = Sighting::new(Some(&finding.place), Some("scan"));
            engine.report_leak(key, &seen).await
        } else {
            engine.find_live(key).await
        }
        .context("a key could not be looked up")?;
        live.insert(key.to_owned(), secret);
    }
    Ok(live)
}

/// A file, or a directory's files, recursively. A path `named` on the command line
/// that is neither (a link, a pipe, a device) is said to be not scanned; one met in a
/// directory is passed over (a link may point anywhere, up the tree too).
fn scan_path(finder: &Finder, path: &Path, named: bool, scanned: &mut Scanned) {
    let kind = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta.file_type(),
        Err(err) => {
            scanned
                .unreadable
                .push(format!("{}: {err}", path.display()));
            return;
        }
    };
    if kind.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(err) => {
                scanned
                    .unreadable
                    .push(format!("{}: {err}", path.display()));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        // The same order on every run.
        children.sort();
        for child in children {
            if child.file_name().is_some_and(|name| name == ".git") {
                continue;
            }
            scan_path(finder, &child, false, scanned);
        }
    } else if kind.is_file() {
        let place = printable(&path.display().to_string());
        match open_file(path).and_then(|file| scan_reader(finder, file, &place, scanned)) {
            Ok(()) => scanned.inputs += 1,
            Err(err) => scanned.unreadable.push(format!("{place}: {err}")),
        }
    } else if named {
        scanned.unreadable.push(format!(
            "{}: not a regular file or a directory",
            printable(&path.display().to_string())
        ));
    }
}

/// Opens a regular file for reading, and nothing else: a file swapped for a link or a
/// named pipe since it was listed is refused, not followed or waited on forever.
fn open_file(path: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let flags = (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("no longer a regular file"));
    }
    Ok(file)
}

/// Reads `input` to its end in chunks; each key found is recorded at `place:line`,
/// up to the listing limits (past them, counted).
fn scan_reader(
    finder: &Finder,
    mut input: impl Read,
    place: &str,
    scanned: &mut Scanned,
) -> std::io::Result<()> {
    let mut scanner = finder.scanner();
    let mut buffer = vec![0; CHUNK];
    let room = MAX_LISTED_PER_INPUT.min(MAX_LISTED.saturating_sub(scanned.findings.len()));
    let (mut found, mut unlisted) = (Vec::new(), 0);
    let mut note = |finding: Found| {
        if found.len() < room {
            found.push(finding);
        } else {
            unlisted += 1;
        }
    };
    loop {
        let read = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        scanned.bytes += read as u64;
        scanner.feed(&buffer[..read], &mut note);
    }
    scanner.finish(&mut note);
    scanned.unlisted += unlisted;
    scanned
        .findings
        .extend(found.into_iter().map(|found| Finding {
            place: format!("{place}:{}", found.line),
            found,
        }));
    Ok(())
}

/// Every blob reachable from any ref of the repository at `repo`, read once each
/// through `git cat-file --batch`. A blob with a key is named by the oldest commit
/// that has it and its path there.
fn scan_history(finder: &Finder, repo: &Path, scanned: &mut Scanned) -> anyhow::Result<()> {
    let listed = git(repo)
        .args([
            "rev-list",
            "--objects",
            "--all",
            "--filter=object:type=blob",
            // A partial clone's missing blobs are listed ("?<oid>"), never fetched.
            "--missing=print",
        ])
        .output()
        .context("git could not be run")?;
    anyhow::ensure!(
        listed.status.success(),
        "not a git repository, or git failed: {}",
        String::from_utf8_lossy(&listed.stderr).trim()
    );
    // "<oid> <path>" per blob; the path where rev-list first met it.
    let text = String::from_utf8_lossy(&listed.stdout);
    let missing = text.lines().filter(|line| line.starts_with('?')).count();
    if missing > 0 {
        scanned.unreadable.push(format!(
            "{}: {missing} objects are not in this clone (a partial clone)",
            repo.display()
        ));
    }
    let blobs: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let (oid, path) = line.split_once(' ')?;
            // Anything else is the rest of a path with a newline in it.
            let is_oid = oid.len() >= 40 && oid.bytes().all(|b| b.is_ascii_hexdigit());
            is_oid.then(|| (oid.to_owned(), path.to_owned()))
        })
        .collect();
    let mut batch = git(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("git cat-file could not be run")?;
    let mut stdin = batch.stdin.take().context("git cat-file's input")?;
    let wanted: Vec<String> = blobs.iter().map(|(oid, _)| oid.clone()).collect();
    // Fed from another thread: git answers while it reads, and both pipes are bounded.
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        for oid in wanted {
            writeln!(stdin, "{oid}")?;
        }
        Ok(())
    });
    let mut out = BufReader::new(batch.stdout.take().context("git cat-file's output")?);
    let mut header = String::new();
    let mut found_in: Vec<(usize, usize)> = Vec::new();
    for (index, (oid, _)) in blobs.iter().enumerate() {
        header.clear();
        out.read_line(&mut header)?;
        // "<oid> blob <size>", or "<oid> missing" for an object not in the store.
        let size: u64 = match header.trim_end().rsplit_once(' ') {
            Some((_, size))
                if header.starts_with(oid.as_str()) && !header.ends_with("missing\n") =>
            {
                size.parse().context("git cat-file's answer")?
            }
            _ => {
                scanned
                    .unreadable
                    .push(format!("{}: blob {oid} is missing", repo.display()));
                continue;
            }
        };
        let before = scanned.findings.len();
        scan_reader(finder, (&mut out).take(size), "", scanned)?;
        // The newline after the contents.
        out.read_exact(&mut [0u8; 1])?;
        scanned.inputs += 1;
        if scanned.findings.len() > before {
            found_in.push((index, before));
        }
    }
    drop(out);
    let _ = batch.wait();
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("git cat-file's feeder stopped"))?
        .context("git cat-file's input")?;
    // Name each blob with a key by the oldest commit that has it (the first ones:
    // each is a walk of the history), or by its own id.
    for (n, &(index, first)) in found_in.iter().enumerate() {
        let (oid, path) = &blobs[index];
        let path = printable(path);
        let commit = (n < MAX_COMMIT_LOOKUPS)
            .then(|| oldest_commit(repo, oid))
            .flatten()
            .unwrap_or_else(|| format!("blob {}", &oid[..oid.len().min(12)]));
        let end = found_in
            .get(n + 1)
            .map_or(scanned.findings.len(), |&(_, next)| next);
        for finding in &mut scanned.findings[first..end] {
            // `place` is ":<line>" from scan_reader.
            finding.place = format!("{commit}:{path}{}", finding.place);
        }
    }
    Ok(())
}

/// The oldest commit (short) reachable from any ref that adds or changes to `blob`.
fn oldest_commit(repo: &Path, blob: &str) -> Option<String> {
    let log = git(repo)
        .args([
            "log",
            "--all",
            "--no-show-signature",
            "--format=%h",
            &format!("--find-object={blob}"),
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&log.stdout)
        .lines()
        .last()
        .map(str::to_owned)
}

/// A path as one line of output: control characters (a file named with a newline
/// could otherwise forge a finding's line) are escaped.
fn printable(path: &str) -> String {
    path.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `git -C repo`, kept from running anything the scanned repository's own
/// configuration names (it may be hostile): no pager, file monitor, hooks, signature
/// program, and no fetch of any kind (a partial clone's missing objects would run its
/// remote's upload-pack or ssh command).
fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command.arg("-C").arg(repo).arg("--no-pager");
    for setting in [
        "core.pager=cat",
        "core.fsmonitor=false",
        "core.hooksPath=/dev/null",
        "log.showSignature=false",
        "protocol.allow=never",
    ] {
        command.args(["-c", setting]);
    }
    command
        .env("GIT_NO_LAZY_FETCH", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    command
}
