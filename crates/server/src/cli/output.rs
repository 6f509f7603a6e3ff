//! Human-readable output: aligned tables and field lists, and the writing of it.

use std::io::Write;

use keyward_core::credential::ServiceCredential;
use keyward_core::model::ApiKey;

/// Standard output went away (`keyward keys list | head -1`): the command stops quietly
/// instead of panicking, as `println!` would.
#[derive(Debug, thiserror::Error)]
#[error("standard output was closed")]
pub struct OutputClosed;

/// Writes `text` to standard output; any failure to write is [`OutputClosed`].
pub fn write_out(text: std::fmt::Arguments<'_>) -> Result<(), OutputClosed> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(text)
        .and_then(|()| out.flush())
        .map_err(|_| OutputClosed)
}

/// `println!` that returns [`OutputClosed`] (with `?`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))?
    };
}
/// `print!` that returns [`OutputClosed`] (with `?`) instead of panicking.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))?
    };
}
pub(crate) use {say, say_raw};

/// Columns padded to their widest cell (by characters).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

pub fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

fn permissions(key: &ApiKey) -> String {
    if key.permissions.is_empty() {
        "(none)".to_owned()
    } else {
        key.permissions.join(",")
    }
}

/// One row per key.
pub fn key_table(keys: &[ApiKey]) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            vec![
                k.id.to_string(),
                k.user_id.to_string(),
                k.name.clone(),
                k.status.to_string(),
                format!("{}****{}", k.prefix, k.postfix),
                permissions(k),
                k.created_at.to_string(),
                or_dash(k.last_used_at.map(|t| t.to_string())),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USER",
            "NAME",
            "STATUS",
            "KEY",
            "PERMISSIONS",
            "CREATED",
            "LAST USED",
        ],
        &rows,
    )
}

/// One key, a field per line.
pub fn key_fields(key: &ApiKey) -> String {
    let fields = [
        ("id", key.id.to_string()),
        ("user", key.user_id.to_string()),
        ("name", key.name.clone()),
        ("description", or_dash(key.description.clone())),
        ("key", format!("{}****{}", key.prefix, key.postfix)),
        ("status", key.status.to_string()),
        ("permissions", permissions(key)),
        ("created", key.created_at.to_string()),
        (
            "last used",
            or_dash(key.last_used_at.map(|t| t.to_string())),
        ),
        ("revoked", or_dash(key.revoked_at.map(|t| t.to_string()))),
        ("expires", or_dash(key.expires_at.map(|t| t.to_string()))),
        ("rate limit", or_dash(key.rate_limit.map(|l| l.to_string()))),
        (
            "metadata",
            or_dash(key.metadata.as_ref().map(|m| m.as_str().to_owned())),
        ),
        ("remaining", or_dash(key.remaining.map(|n| n.to_string()))),
        (
            "refill",
            or_dash(
                key.refill
                    .zip(key.next_refill_at())
                    .map(|(refill, next)| format!("{refill} (next {next})")),
            ),
        ),
        (
            "allowed ips",
            or_dash(key.allowed_ips.as_ref().map(|n| n.to_strings().join(", "))),
        ),
        (
            "rotated from",
            or_dash(key.rotated_from.map(|id| id.to_string())),
        ),
        (
            "rotated to",
            or_dash(key.rotated_to.map(|id| id.to_string())),
        ),
    ];
    field_lines(&fields)
}

/// A field per line, names aligned.
pub fn field_lines(fields: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("{name:<12} {value}\n"));
    }
    out
}

/// One row per service credential.
pub fn credential_table(credentials: &[ServiceCredential]) -> String {
    let rows: Vec<Vec<String>> = credentials
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.name.clone(),
                c.status.as_str().to_owned(),
                c.scopes.names().join(","),
                c.created_at.to_string(),
                or_dash(c.last_used_at.map(|t| t.to_string())),
                or_dash(c.expires_at.map(|t| t.to_string())),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "STATUS",
            "SCOPES",
            "CREATED",
            "LAST USED",
            "EXPIRES",
        ],
        &rows,
    )
}

/// One service credential, a field per line (never its secret).
pub fn credential_fields(credential: &ServiceCredential) -> String {
    let time = |t: Option<keyward_core::time::Timestamp>| or_dash(t.map(|t| t.to_string()));
    field_lines(&[
        ("id", credential.id.to_string()),
        ("name", credential.name.clone()),
        ("status", credential.status.as_str().to_owned()),
        ("scopes", credential.scopes.names().join(",")),
        ("created", credential.created_at.to_string()),
        ("created by", credential.created_by.clone()),
        ("last used", time(credential.last_used_at)),
        ("expires", time(credential.expires_at)),
        ("revoked", time(credential.revoked_at)),
        ("grace until", time(credential.previous_secret_until)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let out = table(
            &["A", "LONG HEADER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["é".into(), "y".into()],
            ],
        );
        assert_eq!(out, "A          LONG HEADER\nwide cell  x\né          y\n");
    }
}
