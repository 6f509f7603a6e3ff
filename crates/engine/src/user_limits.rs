//! Limits a user's keys share: set, read and removed by the platform. Verification
//! finds them with each key (the store joins them to its record, and announces every
//! key of the user when they change); this is the management side.

use std::sync::Arc;

use keyward_core::credits::{Refill, UserLimits};
use keyward_core::input::ValidationErrors;
use keyward_core::model::UserId;
use keyward_core::rate::RateLimit;
use keyward_core::time::Timestamp;
use keyward_store::{Store, UserLimitsRecord};

use crate::engine::{Engine, to_completion};
use crate::error::EngineError;
use crate::quota::UserPool;

/// Where a user's limits come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsSource {
    /// Set for this user by the platform.
    User,
    /// The deployment's defaults (`KEYWARD_DEFAULT_USER_*`).
    Default,
}

/// A user's limits as they stand now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLimitsView {
    pub user_id: UserId,
    pub source: LimitsSource,
    pub rate_limit: Option<RateLimit>,
    pub credits: Option<CreditsView>,
}

/// A user's credits as they stand now: a refill that is due shown made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditsView {
    pub remaining: u64,
    pub refill: Option<Refill>,
    pub next_refill_at: Option<Timestamp>,
}

impl<S: Store> Engine<S> {
    /// A user's limits: theirs, or the deployment's defaults.
    pub async fn user_limits(&self, user: &UserId) -> Result<UserLimitsView, EngineError> {
        let record = self.inner.store.user_limits(user).await?;
        Ok(self.view(user, record.as_ref()))
    }

    /// Sets a user's limits in place of the defaults; credits given are a new grant.
    /// Every instance applies them from its next verification of the user's keys.
    pub async fn set_user_limits(
        &self,
        user: &UserId,
        limits: UserLimits,
    ) -> Result<UserLimitsView, EngineError> {
        let user = new_user(user)?;
        self.change_limits(&user, Some(limits)).await?;
        self.user_limits(&user).await
    }

    /// Removes a user's limits: the defaults apply again. `NotFound` when there were
    /// none.
    pub async fn delete_user_limits(&self, user: &UserId) -> Result<UserLimitsView, EngineError> {
        self.change_limits(user, None).await?;
        Ok(self.view(user, None))
    }

    async fn change_limits(
        &self,
        user: &UserId,
        limits: Option<UserLimits>,
    ) -> Result<(), EngineError> {
        let (inner, actor, now, user) = (
            Arc::clone(&self.inner),
            self.admin(),
            self.inner.now(),
            user.clone(),
        );
        to_completion(async move {
            let hashes = match limits {
                Some(limits) => {
                    inner
                        .store
                        .set_user_limits(&user, &limits, now, &actor)
                        .await?
                }
                None => inner
                    .store
                    .delete_user_limits(&user, now, &actor)
                    .await?
                    .ok_or(EngineError::NotFound)?,
            };
            inner.invalidate(&hashes);
            // A new pool starts afresh (in the shared store, a new quota is a new name).
            inner.user_pools.forget(&UserPool(user.clone()));
            tracing::info!(user_id = %user, keys = hashes.len(), "user limits changed");
            Ok(())
        })
        .await
    }

    fn view(&self, user: &UserId, record: Option<&UserLimitsRecord>) -> UserLimitsView {
        let config = &self.inner.config;
        let now = self.inner.now();
        let explicit = record.is_some_and(|r| r.explicit);
        // A balance kept for the default credits counts while there are defaults.
        let kept = record.filter(|r| r.explicit || config.default_user_credits.is_some());
        let credits = match kept {
            Some(record) => record.limits.credits.map(|grant| {
                let refill = grant.refill;
                let due = refill.is_some_and(|r| r.due(record.credits_set_at, now));
                CreditsView {
                    remaining: if due {
                        refill.map_or(grant.remaining, Refill::amount)
                    } else {
                        grant.remaining
                    },
                    refill,
                    next_refill_at: refill.map(|r| r.next_after(now)),
                }
            }),
            None => config.default_user_credits.map(|grant| CreditsView {
                remaining: grant.remaining,
                refill: grant.refill,
                next_refill_at: grant.refill.map(|r| r.next_after(now)),
            }),
        };
        UserLimitsView {
            user_id: user.clone(),
            source: if explicit {
                LimitsSource::User
            } else {
                LimitsSource::Default
            },
            rate_limit: match record {
                Some(record) if explicit => record.limits.rate_limit,
                _ => config.default_user_rate_limit,
            },
            credits,
        }
    }
}

/// Limits are set only for user ids by today's rules (as keys are created).
fn new_user(user: &UserId) -> Result<UserId, EngineError> {
    UserId::parse(user.as_str())
        .map_err(|e| EngineError::Invalid(ValidationErrors::single("user_id", e.to_string())))
}
