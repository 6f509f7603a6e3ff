//! Migrations embedded in the binary, one folder per backend with the same version
//! numbers, so a deployment never depends on files beside the executable.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::SqlSafeStr;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};

/// `(version, description, sql)` for each migration, in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Embedded(pub &'static [(i64, &'static str, &'static str)]);

pub(crate) const SQLITE: Embedded = Embedded(&[
    (
        1,
        "api keys",
        include_str!("../migrations/sqlite/0001_api_keys.sql"),
    ),
    (
        2,
        "rate limits",
        include_str!("../migrations/sqlite/0002_rate_limits.sql"),
    ),
    (
        3,
        "key events",
        include_str!("../migrations/sqlite/0003_key_events.sql"),
    ),
    (
        4,
        "key metadata",
        include_str!("../migrations/sqlite/0004_key_metadata.sql"),
    ),
    (
        5,
        "rotation",
        include_str!("../migrations/sqlite/0005_rotation.sql"),
    ),
    (
        6,
        "usage credits",
        include_str!("../migrations/sqlite/0006_usage_credits.sql"),
    ),
    (
        7,
        "legacy credentials",
        include_str!("../migrations/sqlite/0007_legacy_credentials.sql"),
    ),
    (
        8,
        "usage history",
        include_str!("../migrations/sqlite/0008_usage_history.sql"),
    ),
    (
        9,
        "service credentials",
        include_str!("../migrations/sqlite/0009_service_credentials.sql"),
    ),
    (
        10,
        "webhooks",
        include_str!("../migrations/sqlite/0010_webhooks.sql"),
    ),
    (
        11,
        "allowed ips",
        include_str!("../migrations/sqlite/0011_allowed_ips.sql"),
    ),
    (
        12,
        "credit refills",
        include_str!("../migrations/sqlite/0012_credit_refills.sql"),
    ),
    (
        13,
        "user limits",
        include_str!("../migrations/sqlite/0013_user_limits.sql"),
    ),
    (
        14,
        "deployment",
        include_str!("../migrations/sqlite/0014_deployment.sql"),
    ),
]);

pub(crate) const POSTGRES: Embedded = Embedded(&[
    (
        1,
        "api keys",
        include_str!("../migrations/postgres/0001_api_keys.sql"),
    ),
    (
        2,
        "rate limits",
        include_str!("../migrations/postgres/0002_rate_limits.sql"),
    ),
    (
        3,
        "key events",
        include_str!("../migrations/postgres/0003_key_events.sql"),
    ),
    (
        4,
        "key metadata",
        include_str!("../migrations/postgres/0004_key_metadata.sql"),
    ),
    (
        5,
        "rotation",
        include_str!("../migrations/postgres/0005_rotation.sql"),
    ),
    (
        6,
        "usage credits",
        include_str!("../migrations/postgres/0006_usage_credits.sql"),
    ),
    (
        7,
        "legacy credentials",
        include_str!("../migrations/postgres/0007_legacy_credentials.sql"),
    ),
    (
        8,
        "usage history",
        include_str!("../migrations/postgres/0008_usage_history.sql"),
    ),
    (
        9,
        "service credentials",
        include_str!("../migrations/postgres/0009_service_credentials.sql"),
    ),
    (
        10,
        "webhooks",
        include_str!("../migrations/postgres/0010_webhooks.sql"),
    ),
    (
        11,
        "allowed ips",
        include_str!("../migrations/postgres/0011_allowed_ips.sql"),
    ),
    (
        12,
        "credit refills",
        include_str!("../migrations/postgres/0012_credit_refills.sql"),
    ),
    (
        13,
        "user limits",
        include_str!("../migrations/postgres/0013_user_limits.sql"),
    ),
    (
        14,
        "deployment",
        include_str!("../migrations/postgres/0014_deployment.sql"),
    ),
]);

impl Embedded {
    /// The version the last migration brings a database to.
    pub(crate) fn latest(&self) -> i64 {
        self.0.last().map_or(0, |&(version, _, _)| version)
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        sql.into_sql_str(),
                        false,
                    )
                })
                .collect())
        })
    }
}
