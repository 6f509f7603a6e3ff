//! A load of key creations and verifications against a real `keyward serve`, and how
//! a test stops the server and waits: shared by the tests that must show nothing is
//! lost under load (a full disk, a backup taken while serving).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Server, cli_in, try_http};

/// Stops the server as a service manager would (SIGTERM) and waits for it; true if it
/// exited 0 (it writes pending usage first).
pub fn stop(mut server: Server) -> bool {
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            return status.success();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the load saw.
#[derive(Default)]
pub struct Seen {
    /// Keys whose create was answered 200: (id, plaintext).
    pub acknowledged: Vec<(String, String)>,
    /// Every other answer, and every request that got no answer.
    pub refusals: Vec<String>,
    pub verifications: usize,
}

/// `creators` creating keys and `verifiers` verifying `verify_key` against
/// `address` until `stop` is set.
pub fn spawn_load(
    address: &str,
    dir: &Path,
    verify_key: &str,
    (creators, verifiers): (usize, usize),
    stop: &Arc<AtomicBool>,
) -> (Arc<Mutex<Seen>>, Vec<std::thread::JoinHandle<()>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let admin = cli_in(dir, &["token", "--admin"]);
    let mut threads = Vec::new();
    for creator in 0..creators {
        let token = cli_in(dir, &["token", "--user", &format!("creator-{creator}")]);
        let (address, seen, stop) = (address.to_owned(), Arc::clone(&seen), Arc::clone(stop));
        threads.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let body = json!({
                    "name": format!("c{creator}-{n}"),
                    "permissions": ["READ_GRAPH"],
                    "description": "d".repeat(1000),
                });
                let answer = try_http(&address, "POST", "/api/api-keys", Some(&token), Some(&body));
                let mut seen = seen.lock().unwrap();
                match answer {
                    Ok((200, created)) => seen.acknowledged.push((
                        created["api_key"]["id"].as_str().unwrap().to_owned(),
                        created["plain_text_key"].as_str().unwrap().to_owned(),
                    )),
                    Ok((status, body)) => seen.refusals.push(format!("{status} {body}")),
                    Err(err) => seen.refusals.push(format!("no answer: {err}")),
                }
                drop(seen);
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    for _ in 0..verifiers {
        let (address, seen_v, stop) = (address.to_owned(), Arc::clone(&seen), Arc::clone(stop));
        let admin = admin.clone();
        let body = json!({"key": verify_key, "permissions": ["READ_GRAPH"]});
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let answer = try_http(
                    &address,
                    "POST",
                    "/api/api-keys/verify",
                    Some(&admin),
                    Some(&body),
                );
                match answer {
                    Ok((200, verdict)) if verdict["valid"] == true => {
                        seen_v.lock().unwrap().verifications += 1;
                    }
                    other => seen_v
                        .lock()
                        .unwrap()
                        .refusals
                        .push(format!("verification: {other:?}")),
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    (seen, threads)
}

pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
