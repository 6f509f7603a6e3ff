//! In-process mode: keyward's engine, on keyward's database, in this process.

use std::net::IpAddr;

use keyward_core::verify::VerifyCode;
use keyward_engine::{Engine, VerifyOptions};
use keyward_store::AnyStore;

use crate::{KeyIdentity, Refusal, Required};

pub(crate) async fn check(
    engine: &Engine<AnyStore>,
    key: &str,
    required: &Required,
    client: Option<IpAddr>,
) -> Result<KeyIdentity, Refusal> {
    let options = VerifyOptions {
        client,
        ..VerifyOptions::default()
    };
    let verification = match engine.verify_with(key, required.set, options).await {
        Ok(verification) => verification,
        Err(err) => {
            tracing::warn!(error = %err, "a key could not be verified");
            return Err(Refusal::Unavailable);
        }
    };
    match (verification.code, verification.key.as_deref()) {
        (VerifyCode::Valid, Some(found)) => Ok(KeyIdentity {
            user_id: found.user_id.as_str().to_owned(),
            key_id: found.id.to_string(),
            permissions: found.permissions.clone(),
        }),
        (VerifyCode::InsufficientPermissions, Some(found)) => Err(Refusal::MissingPermissions(
            required.missing_from(&found.permissions),
        )),
        (VerifyCode::RateLimited, _) => Err(Refusal::RateLimited {
            retry_after_seconds: verification.retry_after_seconds().unwrap_or(1),
        }),
        (VerifyCode::UsageExceeded, _) => Err(Refusal::UsageExceeded),
        _ => Err(Refusal::Invalid),
    }
}
