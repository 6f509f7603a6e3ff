//! Service credentials through the engine: authenticated from memory after one read,
//! refused alike whatever is wrong, revoked and rotated here and elsewhere, their use
//! written behind, and named as the actor of what they change.

use keyward_core::credential::{NewCredentialRequest, ScopeSet};
use keyward_engine::{AuthenticatedCredential, CreatedCredential};

use super::*;

impl Harness {
    async fn credential(&self, name: &str, scopes: &[&str]) -> CreatedCredential {
        let request = NewCredentialRequest {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        self.engine.create_credential(&request).await.unwrap()
    }

    async fn caller(&self, secret: &str) -> Option<AuthenticatedCredential> {
        self.engine.authenticate_credential(secret).await.unwrap()
    }
}

#[tokio::test]
async fn a_credential_authenticates_from_memory_after_one_read() {
    let h = Harness::new().await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let secret = created.secret.expose().to_owned();
    assert!(secret.starts_with("kwsvc_"), "{secret}");
    assert_eq!(created.credential.created_by, "admin:service");

    let before = h.lookups();
    for _ in 0..100 {
        let caller = h.caller(&secret).await.unwrap();
        assert_eq!(caller.id, created.credential.id);
        assert_eq!(caller.name, "gateway");
        assert_eq!(caller.scopes, ScopeSet::parse(&["keys.verify"]).unwrap());
    }
    assert_eq!(h.lookups() - before, 1, "one read, then the cache");
}

#[tokio::test]
async fn every_refusal_is_the_same_none() {
    let h = Harness::new().await;
    let revoked = h.credential("old", &["keys.read"]).await;
    h.engine
        .revoke_credential(revoked.credential.id)
        .await
        .unwrap();
    let request = NewCredentialRequest {
        name: "short-lived".into(),
        scopes: vec!["keys.read".into()],
        expires_at: Some(Timestamp::from_millis(T0 + 1_000).unwrap()),
        ..Default::default()
    };
    let expiring = h.engine.create_credential(&request).await.unwrap();
    h.advance(1_000);
    let unknown = keyward_core::credential::credential_format().generate();
    let (key, plain_key) = h.create("alice", &[]).await;
    let _ = key;

    let before = h.lookups();
    for presented in [
        "",
        "kwsvc_",
        "kwsvc_not-even-close",
        &plain_key,
        unknown.expose(),
        revoked.secret.expose(),
        expiring.secret.expose(),
    ] {
        assert_eq!(h.caller(presented).await, None, "{presented:?}");
    }
    assert_eq!(
        h.lookups() - before,
        3,
        "a malformed secret (or a key) is refused before any read"
    );
}

#[tokio::test]
async fn a_revocation_is_refused_at_once_and_kept_on_a_second_revocation() {
    let h = Harness::new().await;
    let created = h.credential("billing", &["keys.write"]).await;
    let secret = created.secret.expose();
    assert!(h.caller(secret).await.is_some());

    let revoked = h
        .engine
        .revoke_credential(created.credential.id)
        .await
        .unwrap();
    assert_eq!(revoked.status.as_str(), "REVOKED");
    assert_eq!(
        revoked.revoked_at,
        Some(Timestamp::from_millis(T0).unwrap())
    );
    assert_eq!(h.caller(secret).await, None, "the cached entry is gone");

    h.advance(5_000);
    let again = h
        .engine
        .revoke_credential(created.credential.id)
        .await
        .unwrap();
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let refused = h
        .engine
        .rotate_credential(created.credential.id, 0)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, EngineError::CredentialRevoked),
        "{refused:?}"
    );
    let unknown = keyward_core::credential::CredentialId::new(Timestamp::from_millis(T0).unwrap());
    assert!(matches!(
        h.engine.revoke_credential(unknown).await,
        Err(EngineError::NoSuchCredential)
    ));
}

#[tokio::test]
async fn a_rotation_keeps_the_old_secret_for_its_grace_period_only() {
    let h = Harness::new().await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let old = created.secret.expose().to_owned();
    assert!(h.caller(&old).await.is_some(), "cached before the rotation");

    let rotated = h
        .engine
        .rotate_credential(created.credential.id, 60)
        .await
        .unwrap();
    let new = rotated.secret.expose().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        rotated.credential.previous_secret_until,
        Some(Timestamp::from_millis(T0 + 60_000).unwrap())
    );
    assert_eq!(h.caller(&new).await.unwrap().id, created.credential.id);
    assert!(h.caller(&old).await.is_some(), "within the grace period");
    h.advance(60_000);
    assert_eq!(h.caller(&old).await, None, "the grace period is over");
    assert!(h.caller(&new).await.is_some());

    // Without grace, the replaced secret ends at once.
    let again = h
        .engine
        .rotate_credential(created.credential.id, 0)
        .await
        .unwrap();
    assert_eq!(h.caller(&new).await, None);
    assert!(h.caller(again.secret.expose()).await.is_some());

    let too_long = h
        .engine
        .rotate_credential(created.credential.id, 7 * 24 * 3600 + 1)
        .await
        .unwrap_err();
    assert!(matches!(too_long, EngineError::Invalid(_)), "{too_long:?}");
}

#[tokio::test]
async fn a_revocation_by_another_process_reaches_a_warm_cache() {
    let h = Harness::new().await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let secret = created.secret.expose();
    assert!(h.caller(secret).await.is_some());

    // Another process (the CLI) revokes it directly in the database.
    let other = keyward_store::connect(&h.url).await.unwrap();
    other
        .revoke_credential(created.credential.id, Timestamp::from_millis(T0).unwrap())
        .await
        .unwrap();
    other.close().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while h.caller(secret).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache kept a revoked credential"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_credentials_use_is_written_behind() {
    let h = Harness::new().await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let id = created.credential.id;
    h.caller(created.secret.expose()).await.unwrap();
    let now = Some(Timestamp::from_millis(T0).unwrap());
    assert_eq!(
        h.engine.get_credential(id).await.unwrap().last_used_at,
        now,
        "pending uses are shown before they are written"
    );
    let stored = h.engine.store().get_credential(id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, None, "not written per request");
    h.engine.flush_usage().await.unwrap();
    let stored = h.engine.store().get_credential(id).await.unwrap().unwrap();
    assert_eq!(stored.last_used_at, now);
    assert_eq!(
        h.engine.list_credentials().await.unwrap()[0].last_used_at,
        now
    );
}

#[tokio::test]
async fn a_credential_made_before_a_pepper_rotation_still_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::Sqlite(dir.path().join("keyward.db"));
    let old = Harness::on(
        url.clone(),
        tempfile::tempdir().unwrap(),
        Peppers::parse(PEPPER).unwrap(),
    )
    .await;
    let created = old.credential("gateway", &["keys.verify"]).await;
    old.engine.shutdown().await;

    let rotated = format!("v1:{PEPPER}\nv2:rotated-pepper-0123456789abcdefghijkl");
    let new = Harness::on(url, dir, Peppers::parse(&rotated).unwrap()).await;
    let secret = created.secret.expose();
    assert!(new.caller(secret).await.is_some());
    assert_eq!(
        new.lookups(),
        2,
        "current pepper first, then the retired one"
    );

    // Moved to the current pepper: found by the one lookup, then from memory.
    let usage = new.engine.pepper_usage().await.unwrap();
    let live: Vec<(u16, u64)> = usage.iter().map(|u| (u.version, u.live)).collect();
    assert_eq!(
        live,
        [(2, 1)],
        "no credential needs the retired pepper any more"
    );
    assert!(new.caller(secret).await.is_some());
    assert_eq!(new.lookups(), 3);
    assert!(new.caller(secret).await.is_some());
    assert_eq!(new.lookups(), 3);
}

#[tokio::test]
async fn an_engine_acting_as_a_credential_records_it_as_the_actor() {
    let h = Harness::new().await;
    let created = h.credential("billing", &["keys.write", "keys.read"]).await;
    let caller = h.caller(created.secret.expose()).await.unwrap();
    let billing = h.engine.acting_as(caller.actor(), caller.scopes);

    let alice = UserId::parse("alice").unwrap();
    let request = NewKeyRequest {
        name: "k".into(),
        ..Default::default()
    };
    let key = billing
        .create_key_as_admin(&alice, &request)
        .await
        .unwrap()
        .key;
    billing.suspend(Scope::Admin, key.id).await.unwrap();
    // A credential made by a credential names it too.
    let made = billing
        .create_credential(&NewCredentialRequest {
            name: "reader".into(),
            scopes: vec!["keys.read".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(made.credential.created_by, "credential:billing");

    let actors = || async {
        let query = EventQuery {
            key_id: Some(key.id),
            ..Default::default()
        };
        let events = h.engine.events(&query).await.unwrap();
        events.into_iter().map(|e| e.actor).collect::<Vec<_>>()
    };
    assert_eq!(actors().await, [caller.actor(), caller.actor()]);
    // The engine it came from still acts as the administrator.
    h.engine.revoke(Scope::Admin, key.id).await.unwrap();
    assert_eq!(actors().await[2], Actor::Admin("service".into()));
}

#[tokio::test]
async fn a_created_credential_never_shows_its_secret_in_debug_output() {
    let h = Harness::new().await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let debug = format!("{created:?}");
    assert!(!debug.contains(created.secret.expose()), "{debug}");
    let body = &created.secret.expose()["kwsvc_".len()..];
    assert!(!debug.contains(&body[..12]), "{debug}");
}

#[tokio::test]
async fn a_create_request_is_validated_whole() {
    let h = Harness::new().await;
    let request = NewCredentialRequest {
        name: String::new(),
        scopes: vec!["keys.verify".into(), "keys.admin".into()],
        expires_at: Some(Timestamp::from_millis(T0 - 1).unwrap()),
        ..Default::default()
    };
    let EngineError::Invalid(errors) = h.engine.create_credential(&request).await.unwrap_err()
    else {
        panic!("not a validation error");
    };
    let text = errors.to_string();
    for expected in ["name", "unknown scope(s): keys.admin", "expires_at"] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(h.engine.list_credentials().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_client_presenting_made_up_secrets_is_refused_before_any_lookup() {
    let h = Harness::with_config(|config| {
        config.failed_verify_limit = keyward_core::rate::RateLimit::new(3, 60).ok();
    })
    .await;
    let created = h.credential("gateway", &["keys.verify"]).await;
    let format = keyward_core::credential::credential_format();
    let mallory = Some("203.0.113.7".parse().unwrap());
    let alice = Some("198.51.100.1".parse().unwrap());
    for _ in 0..3 {
        let made_up = format.generate();
        let answer = h
            .engine
            .authenticate_credential_from(made_up.expose(), mallory)
            .await;
        assert_eq!(answer.unwrap(), None);
    }
    let lookups = h.lookups();
    for secret in [format.generate().expose(), created.secret.expose()] {
        let refused = h
            .engine
            .authenticate_credential_from(secret, mallory)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, EngineError::TooManyFailures { .. }),
            "{refused:?}"
        );
    }
    assert_eq!(h.lookups(), lookups, "refused before any lookup");
    // Another client is not affected, and what is not a credential is not counted.
    for _ in 0..10 {
        let answer = h
            .engine
            .authenticate_credential_from("eyJhbGciOiJIUzI1NiJ9.e30.sig", alice)
            .await;
        assert_eq!(answer.unwrap(), None);
    }
    let caller = h
        .engine
        .authenticate_credential_from(created.secret.expose(), alice)
        .await
        .unwrap();
    assert_eq!(caller.unwrap().name, "gateway");
}

#[tokio::test]
async fn a_service_gives_and_manages_only_the_scopes_it_holds() {
    let h = Harness::new().await;
    let billing = h.credential("billing", &["keys.write"]).await;
    let ops = h
        .credential("ops", &["credentials.manage", "keys.verify"])
        .await;
    let caller = h.caller(ops.secret.expose()).await.unwrap();
    let as_ops = h.engine.acting_as(caller.actor(), caller.scopes);

    let request = |scopes: &[&str]| NewCredentialRequest {
        name: "made by ops".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    for scopes in [&["keys.write"][..], &["keys.verify", "audit.read"]] {
        let refused = as_ops
            .create_credential(&request(scopes))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, EngineError::ScopeNotHeld { .. }),
            "{scopes:?}: {refused:?}"
        );
    }
    let gateway = as_ops
        .create_credential(&request(&["keys.verify"]))
        .await
        .unwrap();
    // Taking over or switching off a more powerful credential is refused alike.
    let id = billing.credential.id;
    assert!(matches!(
        as_ops.rotate_credential(id, 0).await,
        Err(EngineError::ScopeNotHeld { scope }) if scope.as_str() == "keys.write"
    ));
    assert!(matches!(
        as_ops.revoke_credential(id).await,
        Err(EngineError::ScopeNotHeld { .. })
    ));
    assert!(h.caller(billing.secret.expose()).await.is_some());
    as_ops
        .rotate_credential(gateway.credential.id, 0)
        .await
        .unwrap();
    as_ops
        .revoke_credential(gateway.credential.id)
        .await
        .unwrap();
    // The administrator (the CLI, the static token) holds every scope.
    h.engine.rotate_credential(id, 0).await.unwrap();
}
