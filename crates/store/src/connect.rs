//! Opening the store the database URL names, chosen at start-up.

use crate::error::StoreError;
use crate::interface::AnyStore;
use crate::postgres::PostgresStore;
use crate::records::ConnectOptions;
use crate::sqlite::SqliteStore;
use crate::url::DatabaseUrl;

/// Opens the database named by `url`, creating a SQLite file if needed.
/// Migrations are not run: call `Store::migrate`.
pub async fn connect(url: &DatabaseUrl) -> Result<AnyStore, StoreError> {
    connect_with(url, &ConnectOptions::default()).await
}

/// [`connect`] with explicit options.
pub async fn connect_with(
    url: &DatabaseUrl,
    options: &ConnectOptions,
) -> Result<AnyStore, StoreError> {
    match url {
        DatabaseUrl::Sqlite(path) => Ok(AnyStore::Sqlite(SqliteStore::open(path).await?)),
        DatabaseUrl::Postgres(url) => {
            Ok(AnyStore::Postgres(PostgresStore::open(url, options).await?))
        }
    }
}
