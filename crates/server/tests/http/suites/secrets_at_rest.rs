//! What the database keeps: hashes, never keys.

use std::fs;

use super::TestApp;

#[tokio::test]
async fn the_database_files_contain_no_plaintext_key() {
    let app = TestApp::new().await;
    let mut secrets = Vec::new();
    for _ in 0..20 {
        let (_, plain) = app.key_with("alice", &["READ_GRAPH"]).await;
        // Verify too, so usage and cache paths have run.
        assert_eq!(app.verify_code(&plain, &[]).await, "VALID");
        secrets.push(plain);
    }
    app.engine.shutdown().await;

    let dir = app.db.url.sqlite_path().unwrap().parent().unwrap();
    let mut bytes = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("keyward.db")
        {
            bytes.extend(fs::read(&path).unwrap());
        }
    }
    assert!(bytes.len() > 4096, "the database was written");
    let haystack = String::from_utf8_lossy(&bytes);
    for plain in &secrets {
        // The displayable prefix/postfix are stored on purpose; the middle never is.
        let secret_part = &plain[8..46];
        assert!(
            !haystack.contains(secret_part),
            "a key's secret part is in the database"
        );
    }
}
