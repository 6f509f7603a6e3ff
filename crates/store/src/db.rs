//! Running a statement and reading its rows, once for both backends.
//!
//! (Items are `pub` only to appear in the sealed [`Dialect`](crate::dialect::Dialect)
//! trait; this module is private, so none is reachable from outside the crate.)
//!
//! sqlx is generic over the database, but a function generic over it must repeat a
//! dozen bounds (the executor, every bound and decoded type). They are written here
//! once, on two blanket implementations: [`Backend`] runs a [`Statement`] on a
//! connection, [`Columns`] reads a row's columns as keyward's types. The shared
//! operations (`operations/`) then need only `D::Db: Backend`.
//!
//! Both backends take the same Rust types for ids (`Uuid`: `UUID` on PostgreSQL, a
//! 16-byte `BLOB` on SQLite), integers and bytes; a permission list is the one value
//! stored differently (`TEXT[]` and JSON text), so it has a type of its own,
//! [`PermissionList`], encoded by each backend.

use std::future::Future;
use std::pin::Pin;

use keyward_core::credential::CredentialId;
use keyward_core::hash::KeyHash;
use keyward_core::model::KeyId;
use keyward_core::time::Timestamp;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type,
};
use uuid::Uuid;

use crate::error::StoreError;
use crate::error::corrupt;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A value bound to a statement.
#[derive(Clone, Debug)]
pub enum Param<'a> {
    Id(Option<Uuid>),
    Text(Option<&'a str>),
    /// Text made for the statement (a notification's payload).
    OwnedText(String),
    Int(Option<i64>),
    /// A 32-bit column (`INTEGER` on PostgreSQL): pepper versions, rate limits.
    Small(Option<i32>),
    Bytes(Option<&'a [u8]>),
    Permissions(&'a [String]),
}

impl From<KeyId> for Param<'_> {
    fn from(id: KeyId) -> Self {
        Self::Id(Some(*id.as_uuid()))
    }
}
impl From<Option<KeyId>> for Param<'_> {
    fn from(id: Option<KeyId>) -> Self {
        Self::Id(id.map(|id| *id.as_uuid()))
    }
}
impl From<CredentialId> for Param<'_> {
    fn from(id: CredentialId) -> Self {
        Self::Id(Some(*id.as_uuid()))
    }
}
impl From<Option<CredentialId>> for Param<'_> {
    fn from(id: Option<CredentialId>) -> Self {
        Self::Id(id.map(|id| *id.as_uuid()))
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(Some(text))
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(text: Option<&'a str>) -> Self {
        Self::Text(text)
    }
}
impl From<String> for Param<'_> {
    fn from(text: String) -> Self {
        Self::OwnedText(text)
    }
}
impl From<i64> for Param<'_> {
    fn from(n: i64) -> Self {
        Self::Int(Some(n))
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(n: Option<i64>) -> Self {
        Self::Int(n)
    }
}
impl From<Option<i32>> for Param<'_> {
    fn from(n: Option<i32>) -> Self {
        Self::Small(n)
    }
}
impl From<Timestamp> for Param<'_> {
    fn from(at: Timestamp) -> Self {
        Self::Int(Some(at.as_millis()))
    }
}
impl From<Option<Timestamp>> for Param<'_> {
    fn from(at: Option<Timestamp>) -> Self {
        Self::Int(at.map(Timestamp::as_millis))
    }
}
impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Self::Bytes(Some(bytes))
    }
}
impl<'a> From<Option<&'a [u8]>> for Param<'a> {
    fn from(bytes: Option<&'a [u8]>) -> Self {
        Self::Bytes(bytes)
    }
}
impl<'a> From<&'a KeyHash> for Param<'a> {
    fn from(hash: &'a KeyHash) -> Self {
        Self::Bytes(Some(hash.as_bytes().as_slice()))
    }
}

/// The parameters of a statement, each converted with `Param::from`.
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::db::Param::from($value)),*]
    };
}
pub(crate) use params;

/// A statement and its parameters.
#[derive(Debug)]
pub struct Statement<'a> {
    sql: Sql,
    params: Vec<Param<'a>>,
}

#[derive(Debug)]
enum Sql {
    /// One of `sql.rs`'s constants: prepared once per connection and kept.
    Fixed(&'static str),
    /// Built for its row count (bulk inserts, event filters, a flush's last rows):
    /// prepared for this run only, so varying texts do not fill the statement cache.
    Built(String),
    /// Built, but recurring with the same text (a flush's whole chunks): prepared once
    /// per connection and kept, like a constant.
    Kept(String),
}

impl<'a> Statement<'a> {
    pub(crate) fn new(sql: &'static str, params: Vec<Param<'a>>) -> Self {
        Self {
            sql: Sql::Fixed(sql),
            params,
        }
    }

    pub(crate) fn built(sql: String, params: Vec<Param<'a>>) -> Self {
        Self {
            sql: Sql::Built(sql),
            params,
        }
    }

    /// A statement of a periodic flush for `rows` rows, out of chunks of `chunk`.
    /// Whole chunks recur with the same text on every busy flush, and preparing a
    /// statement of a thousand rows costs milliseconds (on SQLite it was most of a
    /// flush's time): where the backend `keeps` them, those are kept. A shorter last
    /// chunk varies, and never is.
    pub(crate) fn recurring(
        sql: String,
        params: Vec<Param<'a>>,
        rows: usize,
        chunk: usize,
        keeps: bool,
    ) -> Self {
        let sql = if keeps && rows == chunk {
            Sql::Kept(sql)
        } else {
            Sql::Built(sql)
        };
        Self { sql, params }
    }
}

/// A permission list as a column: `TEXT[]` on PostgreSQL, a JSON array on SQLite.
/// Each backend implements its encoding and decoding.
#[derive(Clone, Debug, Default)]
pub struct PermissionList(pub Vec<String>);

/// A permission list as read, before it is checked: decoding the JSON of SQLite's
/// column here, not in sqlx, lets a broken value say which column it is.
#[derive(Debug)]
pub enum StoredPermissions {
    List(Vec<String>),
    Json(String),
}

impl StoredPermissions {
    /// The names, or an error naming `column` when the JSON does not decode.
    pub(crate) fn into_names(self, column: &str) -> Result<Vec<String>, StoreError> {
        match self {
            Self::List(names) => Ok(names),
            Self::Json(text) => serde_json::from_str(&text).map_err(|_| corrupt(column)),
        }
    }
}

/// What the shared operations need of a database: a statement run on a connection,
/// and rows read as [`Columns`].
pub trait Backend: Database<Row: Columns> {
    /// Runs `statement` on `conn`; its rows, if it returns any.
    fn run<'c>(
        conn: &'c mut Self::Connection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, StoreError>>;
}

impl<DB> Backend for DB
where
    DB: Database<Row: Columns> + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> Option<Uuid>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB> + Type<DB>,
    for<'q> PermissionList: Encode<'q, DB> + Type<DB>,
{
    fn run<'c>(
        conn: &'c mut Self::Connection,
        statement: Statement<'c>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, StoreError>> {
        let (query, persistent) = match statement.sql {
            Sql::Fixed(sql) => (sqlx::query::<DB>(sql), true),
            Sql::Built(sql) => (sqlx::query::<DB>(AssertSqlSafe(sql)), false),
            Sql::Kept(sql) => (sqlx::query::<DB>(AssertSqlSafe(sql)), true),
        };
        let mut query = query.persistent(persistent);
        for param in statement.params {
            query = match param {
                Param::Id(id) => query.bind(id),
                Param::Text(text) => query.bind(text),
                Param::OwnedText(text) => query.bind(text),
                Param::Int(n) => query.bind(n),
                Param::Small(n) => query.bind(n),
                Param::Bytes(bytes) => query.bind(bytes),
                Param::Permissions(names) => query.bind(PermissionList(names.to_vec())),
            };
        }
        let rows = conn.fetch_all(query);
        Box::pin(async move { Ok(rows.await?) })
    }
}

/// A row's columns as keyward's types; a value that does not decode is an error
/// naming its column.
pub trait Columns {
    fn id(&self, column: &str) -> Result<KeyId, StoreError>;
    fn maybe_id(&self, column: &str) -> Result<Option<KeyId>, StoreError>;
    fn text(&self, column: &str) -> Result<String, StoreError>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    fn small(&self, column: &str) -> Result<i32, StoreError>;
    fn maybe_small(&self, column: &str) -> Result<Option<i32>, StoreError>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn permissions(&self, column: &str) -> Result<Vec<String>, StoreError>;

    fn time(&self, column: &str) -> Result<Timestamp, StoreError> {
        Timestamp::from_millis(self.int(column)?).map_err(|_| corrupt(column))
    }
    fn maybe_time(&self, column: &str) -> Result<Option<Timestamp>, StoreError> {
        self.maybe_int(column)?
            .map(|ms| Timestamp::from_millis(ms).map_err(|_| corrupt(column)))
            .transpose()
    }
    fn hash(&self, column: &str) -> Result<KeyHash, StoreError> {
        KeyHash::from_slice(&self.bytes(column)?).ok_or_else(|| corrupt(column))
    }
    fn credential_id(&self, column: &str) -> Result<CredentialId, StoreError> {
        Ok(CredentialId::from_uuid(*self.id(column)?.as_uuid()))
    }
    fn maybe_credential_id(&self, column: &str) -> Result<Option<CredentialId>, StoreError> {
        Ok(self
            .maybe_id(column)?
            .map(|id| CredentialId::from_uuid(*id.as_uuid())))
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> Uuid: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> StoredPermissions: Decode<'r, R::Database> + Type<R::Database>,
{
    fn id(&self, column: &str) -> Result<KeyId, StoreError> {
        Ok(KeyId::from_uuid(self.try_get(column)?))
    }
    fn maybe_id(&self, column: &str) -> Result<Option<KeyId>, StoreError> {
        Ok(self
            .try_get::<Option<Uuid>, _>(column)?
            .map(KeyId::from_uuid))
    }
    fn text(&self, column: &str) -> Result<String, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn small(&self, column: &str) -> Result<i32, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_small(&self, column: &str) -> Result<Option<i32>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(column)?)
    }
    fn permissions(&self, column: &str) -> Result<Vec<String>, StoreError> {
        self.try_get::<StoredPermissions, _>(column)?
            .into_names(column)
    }
}
