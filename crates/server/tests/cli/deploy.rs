//! The Dockerfile and the systemd unit run commands this binary accepts: each file's
//! command starts a service with the file's own settings (on a loopback port and a
//! temporary directory instead), and the health check the image declares finds it
//! ready. No image is built here (no container engine on these machines), but its base
//! images must be pinned by digest; the unit is checked by `systemd-analyze verify`
//! and held to its `systemd-analyze security` rating.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::clean_command;

const IMAGE_BINARY: &str = "/usr/local/bin/keyward";

/// The unit's overall exposure in `systemd-analyze security` (systemd 252's scale: 0 is
/// fully sandboxed, 10 not at all). What is left is the network it needs and the host's
/// root; deploy/systemd/keyward.service says why. A new sandbox setting lowers it.
const MAX_UNIT_EXPOSURE: f64 = 1.1;

fn repository_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Dockerfile instruction's exec form (`["a", "b"]`), without the program.
fn exec_form(line: &str) -> Vec<String> {
    let json = &line[line.find('[').expect("exec form")..];
    let mut words: Vec<String> = serde_json::from_str::<Vec<Value>>(json)
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect();
    if words.first().map(String::as_str) == Some(IMAGE_BINARY) {
        words.remove(0);
    }
    words
}

fn free_loopback_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The file's settings, with the address on loopback and `data_dir` moved to `dir`.
fn localised(
    settings: BTreeMap<String, String>,
    data_dir: &str,
    dir: &Path,
) -> Vec<(String, String)> {
    settings
        .into_iter()
        .map(|(name, value)| match name.as_str() {
            // Tests listen on loopback only; the wildcard's mapping is a unit test.
            "KEYWARD_BIND" => (name, free_loopback_address()),
            _ => {
                let value = value.replace(data_dir, &dir.display().to_string());
                (name, value)
            }
        })
        .collect()
}

fn start(args: &[String], env: &[(String, String)], dir: &Path) -> Child {
    let mut command = clean_command(dir);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().unwrap()
}

/// Runs the health check until it passes (true) or 20 s have gone by.
fn becomes_healthy(check: &[String], env: &[(String, String)], dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut command = clean_command(dir);
        command.args(check);
        for (name, value) in env {
            command.env(name, value);
        }
        if command.output().unwrap().status.success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn stop(mut child: Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "stopped with {status}");
}

#[test]
fn the_image_runs_its_command_and_its_health_check_finds_it_ready() {
    let dockerfile = repository_file("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let instruction = |name: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in the Dockerfile"))
            .to_string()
    };
    let mut command = exec_form(&instruction("ENTRYPOINT"));
    command.extend(exec_form(&instruction("CMD [")));
    // HEALTHCHECK's command continues on the line after the options.
    let position = lines
        .iter()
        .position(|l| l.starts_with("HEALTHCHECK"))
        .unwrap();
    let check = exec_form(lines[position + 1].trim_start_matches("CMD "));
    let settings: BTreeMap<String, String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(command, ["serve"]);
    assert_eq!(check, ["healthcheck"]);
    assert!(settings["KEYWARD_DATABASE_URL"].contains("/data/"));
    // Each base image is pulled by digest, not by a tag that can move under it.
    let bases: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert!(!bases.is_empty(), "no FROM in the Dockerfile");
    for base in bases {
        let image = base
            .split_whitespace()
            .find(|word| !word.starts_with("--"))
            .unwrap_or_default();
        let digest = image.split_once("@sha256:").map(|(_, digest)| digest);
        assert!(
            digest.is_some_and(
                |d| d.len() == 64 && d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            ),
            "FROM {base}: pin the image by digest (image:tag@sha256:<64 hex digits>)"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let env = localised(settings, "/data", dir.path());
    let service = start(&command, &env, dir.path());
    let healthy = becomes_healthy(&check, &env, dir.path());
    stop(service);
    assert!(healthy, "the image's HEALTHCHECK never passed");
    assert!(
        dir.path().join("keyward.db").exists(),
        "SQLite lives in the volume"
    );
}

#[test]
fn the_service_unit_runs_a_command_keyward_accepts_and_passes_systemd_analyze() {
    let unit = repository_file("deploy/systemd/keyward.service");
    let directive = |name: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.trim().strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
            .collect()
    };
    for (name, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "keyward"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("EnvironmentFile", "/etc/keyward/keyward.env"),
    ] {
        assert_eq!(directive(name), [value], "{name}");
    }
    let exec = directive("ExecStart").remove(0);
    let mut words = exec.split_whitespace().map(str::to_owned);
    assert_eq!(words.next().as_deref(), Some(IMAGE_BINARY));
    let command: Vec<String> = words.collect();
    let settings: BTreeMap<String, String> = directive("Environment")
        .iter()
        .map(|l| l.split_once('=').unwrap())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let env = localised(settings, "/var/lib/keyward", dir.path());
    let service = start(&command, &env, dir.path());
    let healthy = becomes_healthy(&["healthcheck".to_owned()], &env, dir.path());
    stop(service);
    assert!(healthy, "the unit's command never became ready");

    let Some(analyze) = which("systemd-analyze") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must check the unit: install systemd (systemd-analyze)"
        );
        eprintln!(
            "skipped `systemd-analyze verify` and `security`: systemd-analyze is not installed"
        );
        return;
    };
    // verify wants the program to exist: point it at this build.
    let checked = dir.path().join("keyward.service");
    let binary = env!("CARGO_BIN_EXE_keyward");
    std::fs::write(&checked, unit.replace(IMAGE_BINARY, binary)).unwrap();
    let output = Command::new(&analyze)
        .args(["verify", checked.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && said.trim().is_empty(), "{said}");

    // The sandbox is rated from the file alone (--offline): no systemd needs to run.
    let output = Command::new(analyze)
        .args(["security", "--offline=true", checked.to_str().unwrap()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for keyward.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|level| level.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    assert!(
        exposure <= MAX_UNIT_EXPOSURE,
        "the unit's exposure rose to {exposure} (at most {MAX_UNIT_EXPOSURE}):\n{report}"
    );
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|path| path.is_file())
}
