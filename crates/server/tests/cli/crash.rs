//! Crash safety: `keyward serve` killed with SIGKILL, then started again on the same
//! database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{cli_in, http, start_server, try_http};

const WRITERS: usize = 4;

/// Every create that was answered 200 before the kill is there after the restart
/// and verifies; nothing appears that was not asked for; at most the creates in
/// flight at the moment of the kill (one per writer) were stored unanswered.
#[test]
fn every_acknowledged_create_survives_a_sigkill_and_nothing_else_appears() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_owned();
    let mut server = start_server(&cwd);
    let sent = Arc::new(Mutex::new(HashSet::new()));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let gone = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let token = cli_in(&cwd, &["token", "--user", &format!("writer-{writer}")]);
            let address = server.address.clone();
            let (sent, acknowledged, gone) = (
                Arc::clone(&sent),
                Arc::clone(&acknowledged),
                Arc::clone(&gone),
            );
            std::thread::spawn(move || {
                // Stay under what one user may do: hold 100 keys, and make 60 changes
                // a minute (KEYWARD_USER_WRITE_LIMIT). A writer that ran ahead while
                // the kill below waited for a core would otherwise be refused (429).
                for n in 0..50 {
                    let name = format!("w{writer}-{n}");
                    sent.lock().unwrap().insert(name.clone());
                    let body = json!({"name": name, "permissions": ["READ_GRAPH"]});
                    match try_http(&address, "POST", "/api/api-keys", Some(&token), Some(&body)) {
                        Ok((200, created)) => {
                            let key = created["plain_text_key"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().push((name, key));
                        }
                        Ok((status, body)) => {
                            assert!(gone.load(Ordering::SeqCst), "{status}: {body}");
                            return;
                        }
                        // The server was killed under this request.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();

    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "creates too slow"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    gone.store(true, Ordering::SeqCst);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for writer in writers {
        writer.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let sent = sent.lock().unwrap().clone();

    let server = start_server(&cwd);
    let admin = cli_in(&cwd, &["token", "--admin"]);
    for (name, key) in &acknowledged {
        let (status, verdict) = http(
            &server.address,
            "POST",
            "/api/api-keys/verify",
            Some(&admin),
            Some(&json!({"key": key, "permissions": ["READ_GRAPH"]})),
        );
        assert_eq!((status, &verdict["code"]), (200, &json!("VALID")), "{name}");
    }
    let stored: Value = serde_json::from_str(&cli_in(&cwd, &["keys", "list", "--json"])).unwrap();
    let stored: HashSet<String> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["name"].as_str().unwrap().to_owned())
        .collect();
    let answered: HashSet<String> = acknowledged.iter().map(|(name, _)| name.clone()).collect();
    assert!(
        answered.is_subset(&stored),
        "an acknowledged create was lost"
    );
    assert!(stored.is_subset(&sent), "a key nobody asked for appeared");
    let unanswered = stored.difference(&answered).count();
    assert!(
        unanswered <= WRITERS,
        "{unanswered} keys stored without an answer, more than the creates in flight"
    );
}

/// A verification's `last_used_at` is written within the flush interval (1 s): once
/// that has passed, a SIGKILL does not lose it.
#[test]
fn a_use_flushed_before_a_sigkill_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().to_owned();
    let mut server = start_server(&cwd);
    let token = cli_in(&cwd, &["token", "--user", "alice"]);
    let admin = cli_in(&cwd, &["token", "--admin"]);
    let (_, created) = http(
        &server.address,
        "POST",
        "/api/api-keys",
        Some(&token),
        Some(&json!({"name": "used", "permissions": []})),
    );
    let key = created["plain_text_key"].as_str().unwrap();
    let (_, verdict) = http(
        &server.address,
        "POST",
        "/api/api-keys/verify",
        Some(&admin),
        Some(&json!({ "key": key })),
    );
    assert_eq!(verdict["code"], "VALID");
    // Two flush intervals and some slack for a busy machine.
    std::thread::sleep(Duration::from_secs(3));
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let listed: Value = serde_json::from_str(&cli_in(&cwd, &["keys", "list", "--json"])).unwrap();
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
}
