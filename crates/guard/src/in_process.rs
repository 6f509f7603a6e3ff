//! In-process mode: keyward's engine, on keyward's database, in this process.

use std::net::IpAddr;

use keyward_core::verify::Refusal as KeyRefusal;
use keyward_engine::{Engine, VerifyOptions};
use keyward_store::AnyStore;

use crate::{Refusal, Required, VerifiedKey};

pub(crate) async fn check(
    engine: &Engine<AnyStore>,
    key: &str,
    required: &Required,
    client: Option<IpAddr>,
) -> Result<VerifiedKey, Refusal> {
    let mut options = VerifyOptions::for_client(client);
    if let Some(cost) = required.cost {
        options.cost = cost;
    }
    let verification = match engine.verify_with(key, required.set, options).await {
        Ok(verification) => verification,
        Err(err) => {
            tracing::warn!(error = %err, "a key could not be verified");
            return Err(KeyRefusal::Unavailable.into());
        }
    };
    let found = verification.key.as_deref();
    let held = found.map_or(&[][..], |k| &k.permissions[..]);
    let refusal = KeyRefusal::for_verdict(
        verification.code,
        &required.names,
        held,
        verification.retry_after_seconds(),
    );
    match (refusal, found) {
        (Some(refusal), _) => Err(refusal.into()),
        (None, Some(found)) => Ok(VerifiedKey {
            user_id: found.user_id.as_str().to_owned(),
            key_id: found.id.to_string(),
            permissions: found.permissions.to_vec(),
            // Stored as the text of a JSON object; read as the server's verify API
            // reads it for its answer (which the remote mode gets).
            metadata: found
                .metadata()
                .and_then(|m| serde_json::from_str(m.as_str()).ok()),
            remaining: verification.remaining,
        }),
        // A valid verdict always names its key.
        (None, None) => Err(KeyRefusal::Unavailable.into()),
    }
}
