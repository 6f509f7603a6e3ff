//! The embedded database on a disk that fills up, and on files that stop being
//! writable, under load: a real `keyward serve` on a small tmpfs the test mounts, and
//! on files it makes immutable (`chattr +i`). Both need root; `.ci/run` sets
//! `KEYWARD_TEST_ROOT_FS` (elsewhere these tests are ignored, with the reason).
//!
//! What must hold (docs/RELIABILITY.md, "The disk"): no 500 and no dropped connection;
//! a write that cannot be stored answers 503 naming the cause; verifications go on;
//! `/readyz` says the database is not writable; the log says it once; writes work
//! again as soon as there is space, without a restart; every acknowledged write is
//! there afterwards, usage recorded meanwhile included, and the file is intact.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{Server, cli_in, start_server_with, try_http};
use crate::load::{Seen, spawn_load, stop, wait_for};

/// A tmpfs mounted for one test, unmounted when dropped (after the server using it).
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root");
        Self { mount, _dir: dir }
    }

    /// Fills what is left of the disk with one file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        // Down to single bytes, so not even a page is left.
        let mut size = chunk.len();
        while size > 0 {
            match file.write(&chunk[..size]) {
                Ok(0) | Err(_) => size /= 2,
                Ok(_) => {}
            }
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

/// The load a test runs: what it saw so far, and how to stop it.
struct Load {
    seen: Arc<Mutex<Seen>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl Load {
    /// Starts the load, and waits for its first creates: all acknowledged.
    fn start(address: &str, dir: &Path, verify_key: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, threads) = spawn_load(address, dir, verify_key, (2, 1), &stop);
        let load = Self {
            seen,
            threads,
            stop,
        };
        wait_for("the first creates", Duration::from_secs(10), || {
            let seen = load.seen();
            assert!(seen.refusals.is_empty(), "{:?}", seen.refusals);
            seen.acknowledged.len() >= 5
        });
        load
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    /// Waits until writes work again (`when`): creates acknowledged, and readiness.
    fn wait_for_writes(&self, address: &str, when: &str) {
        let acknowledged_before = self.seen().acknowledged.len();
        wait_for(&format!("a create {when}"), Duration::from_secs(10), || {
            self.seen().acknowledged.len() > acknowledged_before + 3
        });
        wait_for(
            &format!("readiness {when}"),
            Duration::from_secs(10),
            || readiness(address).0 == 200,
        );
    }

    /// Lets the usage recorded meanwhile be written, stops the load and the server,
    /// and checks that nothing was lost: every refusal a 503 saying `cause`, every
    /// acknowledged key stored, the file intact, the verifications' last use (since
    /// `since`) written, and one log line when writes stopped and one when they
    /// resumed.
    fn finish(self, server: Server, log: &Receiver<String>, stored_at: Stored<'_>) -> Seen {
        std::thread::sleep(Duration::from_millis(1500));
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().unwrap();
        }
        assert!(stop(server), "keyward did not stop cleanly");
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        for refusal in &seen.refusals {
            assert!(
                refusal.starts_with("503 ") && refusal.contains(stored_at.cause),
                "not a 503 naming the cause ({}): {refusal}",
                stored_at.cause
            );
        }
        let (ids, last_used, check) = stored(stored_at.database, stored_at.key_id);
        for (id, _) in &seen.acknowledged {
            assert!(ids.contains(id), "acknowledged key {id} is missing");
        }
        assert_eq!(check, "ok");
        assert!(
            last_used.is_some_and(|at| at >= stored_at.since),
            "the verifications' last use was not written: {last_used:?}"
        );
        assert_eq!(
            state_lines(log),
            (1, 1),
            "one line when writes stop, one when they resume"
        );
        seen
    }
}

/// What [`Load::finish`] checks the database and the refusals against.
struct Stored<'a> {
    database: &'a Path,
    /// The verified key, whose `last_used_at` must have been written.
    key_id: &'a str,
    /// When writes started to fail.
    since: i64,
    /// What every refusal names.
    cause: &'a str,
}

fn readiness(address: &str) -> (u16, Value) {
    try_http(address, "GET", "/readyz", None, None).unwrap()
}

/// The server's settings for these tests: limits out of the way of a busy load.
const SETTINGS: [(&str, &str); 3] = [
    ("KEYWARD_MAX_KEYS_PER_USER", "100000"),
    ("KEYWARD_USER_WRITE_LIMIT", "100000"),
    ("KEYWARD_LOG", "info"),
];

/// Everything stored, read back after the server stopped: key ids, `last_used_at` of
/// `key_id`, and `PRAGMA integrity_check`.
fn stored(database: &Path, key_id: &str) -> (HashSet<String>, Option<i64>, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Row;
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(database);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let rows = sqlx::query("SELECT id, last_used_at FROM api_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
        let mut ids = HashSet::new();
        let mut last_used = None;
        for row in rows {
            let id = uuid::Uuid::from_slice(row.get::<&[u8], _>("id"))
                .unwrap()
                .to_string();
            if id == key_id {
                last_used = row.get::<Option<i64>, _>("last_used_at");
            }
            ids.insert(id);
        }
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        (ids, last_used, check)
    })
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Creates the key the verifier presents; returns (id, plaintext).
fn verify_key(address: &str, dir: &Path) -> (String, String) {
    let token = cli_in(dir, &["token", "--user", "verifier"]);
    let body = json!({"name": "verified", "permissions": ["READ_GRAPH"]});
    let (status, created) =
        try_http(address, "POST", "/api/api-keys", Some(&token), Some(&body)).unwrap();
    assert_eq!(status, 200, "{created}");
    (
        created["api_key"]["id"].as_str().unwrap().to_owned(),
        created["plain_text_key"].as_str().unwrap().to_owned(),
    )
}

/// The lines of the log that say the database stopped or resumed storing changes.
fn state_lines(log: &std::sync::mpsc::Receiver<String>) -> (usize, usize) {
    let lines: Vec<String> = log.try_iter().collect();
    let stopped = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("cannot store changes"))
        .count();
    let resumed = lines
        .iter()
        .filter(|l| l.contains("INFO") && l.contains("stores changes again"))
        .count();
    let per_request = lines
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("request failed"))
        .count();
    assert_eq!(per_request, 0, "a warning per refused request");
    (stopped, resumed)
}

#[test]
#[cfg_attr(
    not(keyward_root_fs_tests),
    ignore = "mounts a tmpfs: needs root; set KEYWARD_TEST_ROOT_FS=1 (.ci/run does)"
)]
fn a_full_disk_costs_writes_only_while_it_lasts() {
    let disk = SmallDisk::mount("8m");
    let dir = disk.mount.clone();
    let (server, log) = start_server_with(&dir, &SETTINGS);
    let address = server.address.clone();
    let (key_id, key) = verify_key(&address, &dir);
    // A key not verified before the disk fills: its first verification reads it.
    let (_, cold) = verify_key(&address, &dir);
    let load = Load::start(&address, &dir, &key);

    // The disk fills up under the load.
    let filler = disk.fill();
    let full_since = now_ms();
    wait_for("creates refused", Duration::from_secs(20), || {
        load.seen().refusals.len() >= 10
    });
    let (status, body) = readiness(&address);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not writable: the disk is full"),
        "{body}"
    );
    let metrics = metrics_text(&address);
    assert!(metrics.contains("keyward_database_writable 0"), "{metrics}");
    let admin = cli_in(&dir, &["token", "--admin"]);
    let body = json!({"key": cold, "permissions": ["READ_GRAPH"]});
    let (status, verdict) = try_http(
        &address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&body),
    )
    .unwrap();
    assert_eq!(
        (status, &verdict["code"]),
        (200, &json!("VALID")),
        "{verdict}"
    );
    let verified_while_full = load.seen().verifications;
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        load.seen().verifications > verified_while_full,
        "verifications stopped while the disk was full"
    );

    // Space comes back: writes work again, without a restart.
    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    load.wait_for_writes(&address, "after space came back");
    eprintln!(
        "writes resumed {:?} after the space came back",
        freed.elapsed()
    );
    let database = dir.join("keyward.db");
    let seen = load.finish(
        server,
        &log,
        Stored {
            database: &database,
            key_id: &key_id,
            since: full_since,
            cause: "the disk is full",
        },
    );
    eprintln!(
        "{} creates acknowledged, {} refused with 503, {} verifications",
        seen.acknowledged.len(),
        seen.refusals.len(),
        seen.verifications
    );
}

fn metrics_text(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: keyward\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

/// `chattr` on `paths`; false where the filesystem does not support the flag.
fn chattr(flag: &str, paths: &[PathBuf]) -> bool {
    Command::new("chattr")
        .arg(flag)
        .args(paths)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[cfg_attr(
    not(keyward_root_fs_tests),
    ignore = "makes files immutable: needs root; set KEYWARD_TEST_ROOT_FS=1 (.ci/run does)"
)]
fn files_that_stop_being_writable_cost_writes_only_while_they_are() {
    // A directory on the build's own disk (target/tmp): tmpfs ignores the immutable
    // flag for files already open, ext4 and most others do not.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (server, log) = start_server_with(dir.path(), &SETTINGS);
    let address = server.address.clone();
    let (key_id, key) = verify_key(&address, dir.path());
    let load = Load::start(&address, dir.path(), &key);
    // The database and its journal (SQLite's shared-memory index stays writable: it
    // is mapped into memory, and a write to a page of an immutable file is a SIGBUS).
    let files = [
        dir.path().join("keyward.db"),
        dir.path().join("keyward.db-wal"),
    ];
    let unwritable_since = now_ms();
    assert!(
        chattr("+i", &files),
        "chattr +i failed: the test directory's filesystem must support it"
    );
    wait_for("creates refused", Duration::from_secs(20), || {
        load.seen().refusals.len() >= 10
    });
    let (status, body) = readiness(&address);
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not writable"),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(500));

    assert!(chattr("-i", &files));
    load.wait_for_writes(&address, "once the files are writable");
    load.finish(
        server,
        &log,
        Stored {
            database: &files[0],
            key_id: &key_id,
            since: unwritable_since,
            cause: "cannot store changes",
        },
    );
}
