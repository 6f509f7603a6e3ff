//! `keyward scan`: real keys found in a large tree and in git history, lookalikes
//! never; `--verify` tells live from dead, `--revoke` applies the leak action and
//! records where the key was; the exit code is what a pre-commit hook or CI needs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use keyward_core::credential::credential_format;
use keyward_core::key::KeyFormat;
use serde_json::{Value, json};

use crate::common::{ADMIN_TOKEN, Shared, clean_command};

/// Random bytes from the operating system.
fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

/// A number from the operating system below `n`.
fn below(n: usize) -> usize {
    let mut bytes = [0; 8];
    getrandom::fill(&mut bytes).unwrap();
    (u64::from_le_bytes(bytes) % n as u64) as usize
}

/// `key` with one character changed to another of the alphabet: the checksum no
/// longer holds.
fn lookalike(key: &str) -> String {
    let mut bytes = key.as_bytes().to_vec();
    let index = 5 + below(bytes.len() - 5);
    bytes[index] = if bytes[index] == b'x' { b'y' } else { b'x' };
    String::from_utf8(bytes).unwrap()
}

/// What `keyward scan` prints for a key at `place`.
fn reported(place: &str, key: &str, kind: &str) -> String {
    format!("{place}: {}…{} {kind}", &key[..8], &key[key.len() - 4..])
}

fn lines(output: &Output) -> BTreeSet<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn scan_finds_every_real_key_in_ten_thousand_files_and_no_lookalike() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let format = KeyFormat::default();
    let mut expected = BTreeSet::new();
    let mut lookalikes = 0;
    for n in 0..10_000 {
        let folder = root.join(format!("d{:02}/e{}", n % 100, n % 7));
        std::fs::create_dir_all(&folder).unwrap();
        let path = folder.join(format!("f{n}.txt"));
        let place = path.display().to_string();
        let mut text = String::new();
        let filler = 5 + below(40);
        for line in 1..=filler {
            text.push_str(&format!(
                "line {line}: some text, agpt_ and kwsvc_ near misses\n"
            ));
        }
        if n % 50 == 0 {
            let key = format.generate();
            let key = key.expose();
            // Glued to other letters, quoted, in a URL: still the key.
            let contexts = [
                format!("API_KEY={key}"),
                format!("{{\"key\":\"{key}\"}}"),
                format!("https://x.example/?k={key}&y=1"),
                format!("X{key}Z"),
            ];
            text.push_str(&contexts[n / 50 % 4]);
            text.push('\n');
            expected.insert(reported(&format!("{place}:{}", filler + 1), key, "key"));
        }
        if n % 7 == 0 {
            // A real key with one character changed, a regular expression's match:
            // never reported.
            let key = format.generate();
            text.push_str(&format!("token: {}\n", lookalike(key.expose())));
            text.push_str(&format!("token: agpt_{}\n", "A".repeat(49)));
            lookalikes += 2;
        }
        if n % 1_000 == 999 {
            let credential = credential_format().generate();
            let credential = credential.expose();
            text.push_str(&format!("SERVICE={credential}\n"));
            let line = text.lines().count();
            expected.insert(reported(
                &format!("{place}:{line}"),
                credential,
                "credential",
            ));
        }
        std::fs::write(&path, text).unwrap();
        if n % 10 == 3 {
            // Binaries: random bytes, some with a key inside.
            let mut bytes = random(4_096 + below(60_000));
            if n % 500 == 3 {
                let key = format.generate();
                let at = below(bytes.len());
                bytes.splice(at..at, key.expose().bytes());
                let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                let place = folder.join(format!("b{n}.bin")).display().to_string();
                expected.insert(reported(&format!("{place}:{line}"), key.expose(), "key"));
            }
            std::fs::write(folder.join(format!("b{n}.bin")), bytes).unwrap();
        }
    }
    // A key across the boundary of two reads (256 KiB), in a 1 MiB file.
    let big = root.join("big.log");
    let key = format.generate();
    let mut bytes = vec![b'.'; 1 << 20];
    let at = 256 * 1024 - 20;
    bytes.splice(at..at + key.expose().len(), key.expose().bytes());
    std::fs::write(&big, bytes).unwrap();
    expected.insert(reported(
        &format!("{}:1", big.display()),
        key.expose(),
        "key",
    ));
    // A link out of the tree and one back into it are not followed.
    let outside = dir.path().join("outside.env");
    std::fs::write(&outside, format.generate().expose()).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link.env")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("d00/loop")).unwrap();

    let started = Instant::now();
    let output = clean_command(dir.path())
        .arg("scan")
        .arg(&root)
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let found = lines(&output);
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {missed:?}\nextra {extra:?}"
    );
    assert!(expected.len() > 200, "{}", expected.len());
    // The summary says what was read.
    let summary = stderr(&output);
    assert!(summary.contains("scanned 11001 files"), "{summary}");
    println!(
        "keyward scan: {} files, {} keys and credentials found, {lookalikes} lookalikes \
         passed over, in {:.2} s ({summary})",
        11_001,
        expected.len(),
        took.as_secs_f64()
    );
}

#[test]
fn scan_exits_0_on_a_clean_tree_and_2_when_a_path_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.txt"),
        lookalike(KeyFormat::default().generate().expose()),
    )
    .unwrap();
    let clean = clean_command(dir.path())
        .args(["scan", "."])
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0), "{}", stderr(&clean));
    assert!(clean.stdout.is_empty());
    let missing = clean_command(dir.path())
        .args(["scan", ".", "not-here"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("not-here"),
        "{}",
        stderr(&missing)
    );
    let not_a_repository = clean_command(dir.path())
        .args(["scan", "--git", "."])
        .output()
        .unwrap();
    assert_eq!(not_a_repository.status.code(), Some(2));
    assert!(
        stderr(&not_a_repository).contains("not a git repository"),
        "{}",
        stderr(&not_a_repository)
    );
    // Another deployment's prefix finds its own keys, not the default's.
    std::fs::write(
        dir.path().join("b.txt"),
        KeyFormat::default().generate().expose(),
    )
    .unwrap();
    let other = clean_command(dir.path())
        .args(["scan", ".", "--key-prefix", "acme"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(0), "{}", stderr(&other));
}

fn git(repo: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .env_remove("GIT_DIR")
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[tokio::test]
async fn scan_of_git_history_revokes_the_live_keys_and_credentials_it_finds_and_records_where() {
    let shared = Shared::new().await;
    let live = shared.create_with_cli("live", "").await;
    let live_key = live["plain_text_key"].as_str().unwrap().to_owned();
    let live_id = live["api_key"]["id"].as_str().unwrap().to_owned();
    let dead = shared.create_with_cli("dead", "").await;
    let dead_key = dead["plain_text_key"].as_str().unwrap().to_owned();
    let dead_id = dead["api_key"]["id"].as_str().unwrap();
    shared
        .run_json(&["keys", "revoke", dead_id, "--json"])
        .await;
    let service = shared
        .run_json(&[
            "credentials",
            "create",
            "--name",
            "ci",
            "--scope",
            "keys.read",
            "--json",
        ])
        .await;
    let secret = service["secret"].as_str().unwrap().to_owned();
    let credential_id = service["credential"]["id"].as_str().unwrap().to_owned();

    // Pushed once, then deleted: only the history has them.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q"]);
    std::fs::write(
        repo.path().join("config.env"),
        format!("# config\nKEY={live_key}\nOLD={dead_key}\nSERVICE={secret}\n"),
    )
    .unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-qm", "add config"]);
    git(repo.path(), &["rm", "-q", "config.env"]);
    git(repo.path(), &["commit", "-qm", "remove it"]);
    let repo_path = repo.path().to_str().unwrap();

    let files = shared.run(&["scan", repo_path]).await;
    assert_eq!(files.status.code(), Some(0), "{}", stderr(&files));

    let verified = shared
        .run(&["scan", "--git", "--verify", "--json", repo_path])
        .await;
    assert_eq!(verified.status.code(), Some(1), "{}", stderr(&verified));
    let rows: Value = serde_json::from_slice(&verified.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    let place = rows[0]["place"].as_str().unwrap().to_owned();
    let commit = place.split(':').next().unwrap().to_owned();
    assert_eq!(commit.len(), 7, "{place}");
    let summary: Vec<Value> = rows
        .iter()
        .map(|row| json!([row["place"], row["kind"], row["live"], row["id"]]))
        .collect();
    assert_eq!(
        summary,
        [
            json!([format!("{commit}:config.env:2"), "key", true, live_id]),
            json!([format!("{commit}:config.env:3"), "key", false, null]),
            json!([
                format!("{commit}:config.env:4"),
                "credential",
                true,
                credential_id
            ]),
        ]
    );
    // Never the whole key.
    let text = String::from_utf8_lossy(&verified.stdout);
    for whole in [&live_key, &dead_key, &secret] {
        assert!(!text.contains(whole.as_str()));
    }

    let revoked = shared.run(&["scan", "--git", "--revoke", repo_path]).await;
    assert_eq!(revoked.status.code(), Some(1), "{}", stderr(&revoked));
    assert!(
        String::from_utf8_lossy(&revoked.stdout).contains(&format!("live {live_id}: revoked")),
        "{}",
        String::from_utf8_lossy(&revoked.stdout)
    );
    assert_eq!(shared.verify_code(&live_key).await, "REVOKED");
    let events = shared
        .http(
            "GET",
            &format!("/api/admin/api-keys/{live_id}/events"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    let leaked = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "leaked")
        .cloned()
        .expect("a leaked event");
    assert_eq!(
        leaked["changes"]["url"]["after"],
        format!("{commit}:config.env:2")
    );
    assert_eq!(leaked["changes"]["source"]["after"], "scan");
    assert_eq!(leaked["actor"], json!({"type": "admin", "id": "scan"}));
    let credential = shared
        .run_json(&["credentials", "show", &credential_id, "--json"])
        .await;
    assert_eq!(credential["status"], "REVOKED", "{credential}");

    // Nothing live is left: the hook passes.
    let after = shared.run(&["scan", "--git", "--verify", repo_path]).await;
    assert_eq!(after.status.code(), Some(0), "{}", stderr(&after));
    assert!(String::from_utf8_lossy(&after.stdout).contains("not live"));
}

#[test]
fn a_file_name_cannot_forge_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyFormat::default().generate();
    let forged = format!("x.txt:1: {}…abcd key\nreal", &key.expose()[..8]);
    std::fs::write(dir.path().join(&forged), key.expose()).unwrap();
    let output = clean_command(dir.path())
        .args(["scan", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("./x.txt:1: "), "{text}");
    assert!(text.contains("key\\nreal:1: "), "{text}");
}

/// Runs `keyward scan` with `args` in `cwd`, killed if it takes over 60 s (a scan
/// waiting on a pipe forever must fail the test, not hang it).
fn scan_within_a_minute(cwd: &Path, args: &[&str]) -> Output {
    let mut child = clean_command(cwd)
        .arg("scan")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("keyward scan {args:?} did not finish");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn named_pipes_are_never_waited_on_and_one_named_is_said_to_be_unscanned() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    let key = KeyFormat::default().generate();
    std::fs::write(tree.join("a.env"), key.expose()).unwrap();
    for fifo in [tree.join("pipe"), dir.path().join("named-pipe")] {
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
    }
    let walked = scan_within_a_minute(dir.path(), &["tree"]);
    assert_eq!(walked.status.code(), Some(1), "{}", stderr(&walked));
    assert_eq!(lines(&walked).len(), 1);
    let named = scan_within_a_minute(dir.path(), &["named-pipe"]);
    assert_eq!(named.status.code(), Some(2), "{}", stderr(&named));
    assert!(
        stderr(&named).contains("named-pipe: not a regular file or a directory"),
        "{}",
        stderr(&named)
    );
}

#[test]
fn one_key_repeated_without_end_is_counted_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyFormat::default().generate();
    let text = format!("{}\n", key.expose()).repeat(1_000);
    std::fs::write(dir.path().join("many.txt"), text).unwrap();
    let output = scan_within_a_minute(dir.path(), &["."]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 100);
    assert!(
        stderr(&output).contains("1000 found (900 not listed or looked up"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_hostile_repository_cannot_make_the_scan_run_its_programs() {
    let repo = tempfile::tempdir().unwrap();
    let marker = repo.path().join("ran");
    let program = repo.path().join("evil.sh");
    std::fs::write(
        &program,
        format!(
            "#!/bin/sh\ntouch {}\ncat > /dev/null\nexit 1\n",
            marker.display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&program)
        .status()
        .unwrap();
    git(repo.path(), &["init", "-q"]);
    let key = KeyFormat::default().generate();
    std::fs::write(repo.path().join("a.env"), key.expose()).unwrap();
    git(repo.path(), &["add", "a.env"]);
    git(repo.path(), &["commit", "-qm", "one"]);
    // A commit that looks signed, so `git log` would call the signature program.
    let commit = Command::new("git")
        .current_dir(repo.path())
        .args(["cat-file", "commit", "HEAD"])
        .output()
        .unwrap()
        .stdout;
    let commit = String::from_utf8(commit).unwrap();
    let (head, message) = commit.split_once("\n\n").unwrap();
    let signed = format!(
        "{head}\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\n{message}"
    );
    let mut hash = Command::new("git")
        .current_dir(repo.path())
        .args(["hash-object", "-t", "commit", "-w", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    hash.stdin
        .take()
        .unwrap()
        .write_all(signed.as_bytes())
        .unwrap();
    let oid = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap();
    git(repo.path(), &["update-ref", "HEAD", oid.trim()]);
    let evil = program.display().to_string();
    for (name, value) in [
        ("log.showSignature", "true"),
        ("gpg.program", evil.as_str()),
        ("core.fsmonitor", evil.as_str()),
        ("core.pager", evil.as_str()),
        ("core.hooksPath", repo.path().to_str().unwrap()),
    ] {
        git(repo.path(), &["config", name, value]);
    }
    // The repository is hostile indeed: git itself runs the program.
    let _ = Command::new("git")
        .current_dir(repo.path())
        .args(["log", "--all", "--format=%h"])
        .output()
        .unwrap();
    assert!(
        marker.exists(),
        "the test's repository should run its program"
    );
    std::fs::remove_file(&marker).unwrap();

    let output = scan_within_a_minute(repo.path(), &["--git", "."]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(lines(&output).len(), 1, "{}", stderr(&output));
    assert!(
        !marker.exists(),
        "keyward scan ran the repository's program"
    );
}
