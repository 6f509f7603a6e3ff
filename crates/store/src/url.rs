//! Database URLs: the scheme chooses the backend.

use std::path::{Path, PathBuf};

/// A database location keyward can open. `Debug` and `Display` hide passwords.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://keyward.db` (relative) or `sqlite:///var/lib/keyward.db` (absolute).
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database?…` (also `postgresql://`).
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error("database URL {0:?} has no supported scheme; expected sqlite://<path> or postgres://…")]
    UnsupportedScheme(String),
    #[error("database URL {0:?} names no file")]
    MissingPath(String),
    #[error(
        "in-memory SQLite is not supported: keys must outlive the process; use sqlite://<path>"
    )]
    InMemory,
    #[error("query parameters are not supported in SQLite URLs ({0:?})")]
    Parameters(String),
}

impl std::fmt::Display for DatabaseUrl {
    /// A form safe for logs: never a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, DatabaseUrlError> {
        let scheme_end = url.find(':').unwrap_or(0);
        let (scheme, rest) = url.split_at(scheme_end);
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                let rest = &rest[1..];
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.contains('?') {
                    return Err(DatabaseUrlError::Parameters(url.to_owned()));
                }
                if path == ":memory:" || path.is_empty() && rest.contains("memory") {
                    return Err(DatabaseUrlError::InMemory);
                }
                if path.is_empty() {
                    return Err(DatabaseUrlError::MissingPath(url.to_owned()));
                }
                Ok(Self::Sqlite(PathBuf::from(path)))
            }
            "postgres" | "postgresql" => Ok(Self::Postgres(url.to_owned())),
            _ => Err(DatabaseUrlError::UnsupportedScheme(redact(url))),
        }
    }

    /// The SQLite file, for files kept beside it (the local-trial secrets).
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(path) => Some(path),
            Self::Postgres(_) => None,
        }
    }
}

/// Hides a password in `scheme://user:password@host` before it reaches a message.
fn redact(url: &str) -> String {
    // A password may also come as a query parameter (`?password=…`).
    let (url, query) = match url.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (url, None),
    };
    let url = redact_credentials(url);
    let Some(query) = query else { return url };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("password")
                    || name.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{url}?{}", query.join("&"))
}

fn redact_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let creds = &url[start + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..start], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_relative_and_absolute_files() {
        for (url, file) in [
            ("sqlite://keyward.db", "keyward.db"),
            ("sqlite:///var/lib/keyward.db", "/var/lib/keyward.db"),
            ("sqlite:data/k.db", "data/k.db"),
        ] {
            assert_eq!(
                DatabaseUrl::parse(url).unwrap(),
                DatabaseUrl::Sqlite(file.into()),
                "{url}"
            );
        }
    }

    #[test]
    fn postgres_urls_are_accepted_and_never_displayed_with_their_password() {
        for url in [
            "postgres://kw:s3cret@db:5432/keyward",
            "postgresql://kw:s3cret@db/keyward?sslmode=disable",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed, DatabaseUrl::Postgres(url.to_owned()));
            assert!(!parsed.to_string().contains("s3cret"), "{parsed}");
            assert!(!format!("{parsed:?}").contains("s3cret"));
            assert!(parsed.to_string().contains("kw:***@db"), "{parsed}");
            assert!(parsed.sqlite_path().is_none());
        }
        let parsed =
            DatabaseUrl::parse("postgres://kw@db/k?sslmode=require&password=s3cret&SSLPASSWORD=x")
                .unwrap();
        assert_eq!(
            parsed.to_string(),
            "postgres://kw@db/k?sslmode=require&password=***&SSLPASSWORD=***"
        );
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        for (url, error) in [
            ("sqlite::memory:", DatabaseUrlError::InMemory),
            (
                "sqlite://",
                DatabaseUrlError::MissingPath("sqlite://".into()),
            ),
        ] {
            assert_eq!(DatabaseUrl::parse(url), Err(error), "{url}");
        }
        for url in ["mysql://u:hunter2@db/k", "mysql://u:hun@ter2@db/k"] {
            assert!(matches!(
                DatabaseUrl::parse(url).unwrap_err(),
                DatabaseUrlError::UnsupportedScheme(u) if !u.contains("hunter2") && !u.contains("ter2")
            ));
        }
        assert!(DatabaseUrl::parse("redis://db/0").is_err());
        assert!(DatabaseUrl::parse("keyward.db").is_err());
    }
}
