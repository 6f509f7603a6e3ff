//! What keyward says about the connection's security: a warning at start when a
//! PostgreSQL across the network is reached without full certificate verification,
//! and a hint when the server or its certificate refuses the connection.
//!
//! sqlx's `sslmode` differs from libpq's in ways that matter (see docs/DEPLOYMENT.md):
//! `prefer` (the default) falls back to plaintext, `require` accepts any certificate
//! even with `sslrootcert`, and `verify-ca` does not check the host name. Only
//! `verify-full` proves that the server is the one named in the URL.

use std::net::IpAddr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The warning to log at start for these options, if the connection leaves the
/// machine without `verify-full`.
pub(super) fn warning(connect: &PgConnectOptions) -> Option<String> {
    if connect.get_socket().is_some() || is_loopback(connect.get_host()) {
        return None;
    }
    let host = connect.get_host();
    let risk = match connect.get_ssl_mode() {
        PgSslMode::VerifyFull => return None,
        PgSslMode::Disable | PgSslMode::Allow => {
            "is reached without TLS: passwords and key hashes cross the network in clear"
        }
        PgSslMode::Prefer => {
            "is reached with sslmode=prefer (the default): it falls back to plaintext when \
             TLS is not offered and accepts any certificate, so anyone on the path can read \
             or pose as the database"
        }
        PgSslMode::Require => {
            "is reached with sslmode=require: traffic is encrypted but any certificate is \
             accepted (even with sslrootcert), so anyone on the path can pose as the database"
        }
        PgSslMode::VerifyCa => {
            "is reached with sslmode=verify-ca: the certificate's authority is checked but \
             not its host name, so any server holding a certificate from that authority passes"
        }
    };
    Some(format!(
        "PostgreSQL at {host} {risk}; use sslmode=verify-full (with sslrootcert=<CA file> \
         for a private authority)"
    ))
}

/// What to add to a connection failure's own words, if they point at TLS.
pub(super) fn hint(failure: &str) -> Option<&'static str> {
    let failure = failure.to_ascii_lowercase();
    if failure.contains("no encryption") || failure.contains("ssl off") {
        Some(
            "the server accepts only encrypted connections: add sslmode=verify-full to the \
             URL (and sslrootcert=<CA file> for a private authority)",
        )
    } else if failure.contains("certificate") || failure.contains("unknownissuer") {
        Some(
            "the server's TLS certificate is not trusted: sslrootcert must name the authority \
             that signed it, and the URL's host must be a name in it",
        )
    } else {
        None
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn warned(url: &str) -> Option<String> {
        warning(&PgConnectOptions::from_str(url).unwrap())
    }

    #[test]
    fn only_verify_full_or_a_local_server_goes_without_a_warning() {
        assert_eq!(
            warned("postgres://u@db.example.com/k?sslmode=verify-full"),
            None
        );
        assert_eq!(warned("postgres://u@127.0.0.1/k"), None);
        assert_eq!(warned("postgres://u@localhost/k?sslmode=disable"), None);
        assert_eq!(warned("postgres://u@[::1]/k"), None);
        for (mode, says) in [
            ("", "sslmode=prefer"),
            ("?sslmode=disable", "without TLS"),
            ("?sslmode=require", "any certificate is accepted"),
            ("?sslmode=verify-ca", "not its host name"),
        ] {
            let warning = warned(&format!("postgres://u@db.example.com/k{mode}")).unwrap();
            assert!(warning.contains(says), "{mode}: {warning}");
            assert!(warning.contains("db.example.com"), "{warning}");
        }
    }

    #[test]
    fn a_refusal_for_lack_of_tls_or_trust_gets_a_hint() {
        let hba = "no pg_hba.conf entry for host \"10.0.0.1\", user \"k\", database \"k\", \
                   no encryption";
        assert!(hint(hba).unwrap().contains("sslmode=verify-full"));
        assert!(hint("TLS: invalid peer certificate: UnknownIssuer").is_some());
        assert_eq!(hint("password authentication failed for user \"k\""), None);
    }
}
