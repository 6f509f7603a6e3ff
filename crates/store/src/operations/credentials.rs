//! Service credentials: created, listed, found by a secret's hash, revoked, rotated,
//! and their uses recorded.

use keyward_core::credential::{CredentialId, CredentialStatus, Presented, ServiceCredential};
use keyward_core::hash::KeyHash;
use keyward_core::lifecycle::LifecycleError;
use keyward_core::time::Timestamp;

use super::keys::announce;
use crate::db::{Columns, Param, Statement, params};
use crate::dialect::{Connection, Dialect, run};
use crate::error::{StoreError, corrupt};
use crate::interface::CredentialStore;
use crate::records::{CredentialChanged, CredentialRotation, FoundCredential, NewCredentialRecord};
use crate::rows::{credential_from_row, credential_row};
use crate::sql;

impl<D: Dialect> CredentialStore for D {
    async fn insert_credential(&self, new: &NewCredentialRecord) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let insert = Statement::new(sql::INSERT_CREDENTIAL, credential_row(new));
                run::<D>(&mut tx, insert).await?;
                // An instance may hold "no such credential" for this hash.
                announce::<D>(&mut tx, &[new.hash]).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn list_credentials(&self) -> Result<Vec<ServiceCredential>, StoreError> {
        let rows = self
            .read(Statement::new(sql::LIST_CREDENTIALS, Vec::new()))
            .await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn get_credential(
        &self,
        id: CredentialId,
    ) -> Result<Option<ServiceCredential>, StoreError> {
        let rows = self
            .read(Statement::new(sql::GET_CREDENTIAL, params![id]))
            .await?;
        rows.first().map(credential_from_row).transpose()
    }

    async fn find_credential(&self, hash: &KeyHash) -> Result<Option<FoundCredential>, StoreError> {
        let rows = self
            .read(Statement::new(sql::FIND_CREDENTIAL, params![hash]))
            .await?;
        rows.first()
            .map(|row| {
                let presented = match row.small("current_secret")? {
                    1 => Presented::Current,
                    0 => Presented::Previous,
                    _ => return Err(corrupt("current_secret")),
                };
                Ok(FoundCredential {
                    credential: credential_from_row(row)?,
                    presented,
                })
            })
            .transpose()
    }

    async fn revoke_credential(
        &self,
        id: CredentialId,
        now: Timestamp,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let Some(held) = hold::<D>(&mut tx, id).await? else {
                    return Ok(None);
                };
                let changed = held.status == CredentialStatus::Active;
                if changed {
                    let revoke = Statement::new(sql::REVOKE_CREDENTIAL, params![id, now]);
                    run::<D>(&mut tx, revoke).await?;
                    announce::<D>(&mut tx, &held.hashes).await?;
                }
                let credential = read_in::<D>(&mut tx, id).await?;
                tx.commit().await?;
                Ok(Some(CredentialChanged {
                    credential,
                    hashes: held.hashes,
                    changed,
                }))
            })
            .await
    }

    async fn end_previous_secret(
        &self,
        id: CredentialId,
        hash: &KeyHash,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                if hold::<D>(&mut tx, id).await?.is_none() {
                    return Ok(None);
                }
                let end = Statement::new(sql::END_PREVIOUS_SECRET, params![id, hash]);
                let changed = !run::<D>(&mut tx, end).await?.is_empty();
                if changed {
                    announce::<D>(&mut tx, std::slice::from_ref(hash)).await?;
                }
                let credential = read_in::<D>(&mut tx, id).await?;
                tx.commit().await?;
                Ok(Some(CredentialChanged {
                    credential,
                    hashes: if changed { vec![*hash] } else { Vec::new() },
                    changed,
                }))
            })
            .await
    }

    async fn rotate_credential(
        &self,
        id: CredentialId,
        rotation: &CredentialRotation,
    ) -> Result<Option<CredentialChanged>, StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let Some(held) = hold::<D>(&mut tx, id).await? else {
                    return Ok(None);
                };
                if held.status == CredentialStatus::Revoked {
                    return Err(StoreError::Lifecycle(LifecycleError::Revoked));
                }
                let mut values = params![id, &rotation.hash];
                values.push(Param::Small(Some(i32::from(rotation.pepper_version))));
                values.extend(params![rotation.previous_until]);
                run::<D>(&mut tx, Statement::new(sql::ROTATE_CREDENTIAL, values)).await?;
                // The old hashes: the current one now means the previous secret (or
                // nothing), the previous one nothing. The new hash may be cached as
                // unknown.
                let mut announced = held.hashes.clone();
                announced.push(rotation.hash);
                announce::<D>(&mut tx, &announced).await?;
                let credential = read_in::<D>(&mut tx, id).await?;
                tx.commit().await?;
                Ok(Some(CredentialChanged {
                    credential,
                    hashes: held.hashes,
                    changed: true,
                }))
            })
            .await
    }

    async fn rehash_credential(
        &self,
        id: CredentialId,
        from: &KeyHash,
        to: &KeyHash,
        pepper_version: u16,
    ) -> Result<(), StoreError> {
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                let mut values = params![id, from, to];
                values.push(Param::Small(Some(i32::from(pepper_version))));
                run::<D>(&mut tx, Statement::new(sql::REHASH_CREDENTIAL, values)).await?;
                // An instance may hold "no such credential" for the new hash, or the
                // credential under the old one (which later changes no longer name).
                announce::<D>(&mut tx, &[*from, *to]).await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn record_credential_use(
        &self,
        uses: &[(CredentialId, Timestamp)],
    ) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.writes()
            .track(async move {
                let mut tx = self.begin().await?;
                for (id, at) in uses {
                    let touch = Statement::new(sql::TOUCH_CREDENTIAL, params![*id, *at]);
                    run::<D>(&mut tx, touch).await?;
                }
                tx.commit().await?;
                Ok(())
            })
            .await
    }
}

/// What a change needs of a credential, read with its row held until the commit.
struct Held {
    status: CredentialStatus,
    /// Its secrets' hashes: the current one, and the replaced one if any.
    hashes: Vec<KeyHash>,
}

async fn hold<D: Dialect>(
    conn: &mut Connection<D>,
    id: CredentialId,
) -> Result<Option<Held>, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::HOLD_CREDENTIAL, params![id])).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let status = CredentialStatus::parse(&row.text("status")?).ok_or_else(|| corrupt("status"))?;
    let mut hashes = vec![row.hash("hash")?];
    if let Some(previous) = row.maybe_bytes("previous_hash")? {
        hashes.push(KeyHash::from_slice(&previous).ok_or_else(|| corrupt("previous_hash"))?);
    }
    Ok(Some(Held { status, hashes }))
}

async fn read_in<D: Dialect>(
    conn: &mut Connection<D>,
    id: CredentialId,
) -> Result<ServiceCredential, StoreError> {
    let rows = run::<D>(conn, Statement::new(sql::GET_CREDENTIAL, params![id])).await?;
    rows.first()
        .map(credential_from_row)
        .ok_or(StoreError::NotFound)?
}
