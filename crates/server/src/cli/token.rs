//! `keyward token`: development credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use jsonwebtoken::{EncodingKey, Header};
use keyward_core::model::UserId;
use serde::Serialize;

use super::output::{OutputClosed, say};
use crate::flags::Flags;
use crate::http::listener::Bind;
use crate::settings::LocalTrial;

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user (JWT `sub`) to mint a token for.
    #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
    pub user: Option<String>,
    /// Lifetime: a number with s, m, h or d (at most 30d).
    #[arg(long, default_value = "1h")]
    pub ttl: String,
    /// Print the service token for the verify API instead.
    #[arg(long)]
    pub admin: bool,
    /// Print a link that opens the web console signed in with the token
    /// (`http://KEYWARD_BIND/console#token=…`; the fragment never reaches the server).
    #[arg(long)]
    pub console: bool,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// Parses `90s`, `15m`, `1h`, `7d`.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let error = || format!("invalid --ttl {text:?}: expected a number with s, m, h or d, e.g. 1h");
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(error)?;
    let number: u64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| error())?;
    let seconds = match unit {
        's' => number,
        'm' => number.saturating_mul(60),
        'h' => number.saturating_mul(3600),
        'd' => number.saturating_mul(86_400),
        _ => return Err(error()),
    };
    if seconds == 0 || seconds > 30 * 86_400 {
        return Err(format!(
            "invalid --ttl {text:?}: must be between 1s and 30d"
        ));
    }
    Ok(Duration::from_secs(seconds))
}

pub fn run(flags: &Flags, args: &TokenArgs) -> anyhow::Result<ExitCode> {
    let settings = flags.resolve(LocalTrial::Existing)?;
    if args.admin {
        let token = settings.admin_token.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "the static service token is disabled (KEYWARD_ADMIN_TOKEN=disabled): \
                 give each service a credential instead (keyward credentials create)"
            )
        })?;
        print_token(flags, args, token.expose())?;
        return Ok(ExitCode::SUCCESS);
    }
    let user = args
        .user
        .as_deref()
        .expect("clap requires --user without --admin");
    let user = UserId::parse(user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
    let ttl = parse_ttl(&args.ttl).map_err(anyhow::Error::msg)?;
    let secret = settings.jwt.hs256_secret.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "keyward token signs with KEYWARD_JWT_SECRET (HS256), which is not set; \
             with only a public key configured, tokens come from your identity provider"
        )
    })?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user.as_str(),
        iat: now,
        exp: now + ttl.as_secs(),
        iss: settings.jwt.issuer.as_deref(),
        aud: settings.jwt.audience.as_deref(),
    };
    let token = jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )?;
    print_token(flags, args, &token)?;
    Ok(ExitCode::SUCCESS)
}

fn print_token(flags: &Flags, args: &TokenArgs, token: &str) -> Result<(), OutputClosed> {
    if args.console {
        say!("{}", console_link(&flags.bind, token));
    } else {
        say!("{token}");
    }
    Ok(())
}

/// The console's address on this machine, signed in with `token`. A wildcard bind
/// address (`0.0.0.0`, `[::]`) is reached through loopback; behind a Unix socket, the
/// link is the path alone, to open at the gateway's address.
pub fn console_link(bind: &Bind, token: &str) -> String {
    let origin = match bind {
        Bind::Tcp(address) => {
            let host = match address.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            format!("http://{}", SocketAddr::new(host, address.port()))
        }
        Bind::Unix(_) => String::new(),
    };
    // Tokens (JWTs, the service token) are URL-safe: no escaping needed in a fragment
    // except for the rare character outside that alphabet.
    let token: String = token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("{origin}/console#token={token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_take_a_unit_and_stay_bounded() {
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_ttl("30d").unwrap(), Duration::from_secs(2_592_000));
        for bad in ["", "h", "10", "1w", "-1h", "0s", "31d", "1.5h", "5µ", "µ"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn console_links_reach_the_bind_address_and_carry_the_token_in_the_fragment() {
        let at = |bind: &str| console_link(&bind.parse().unwrap(), "a.b_c-d");
        assert_eq!(
            at("127.0.0.1:8080"),
            "http://127.0.0.1:8080/console#token=a.b_c-d"
        );
        assert_eq!(
            at("0.0.0.0:9000"),
            "http://127.0.0.1:9000/console#token=a.b_c-d"
        );
        assert_eq!(at("[::]:80"), "http://[::1]:80/console#token=a.b_c-d");
        assert_eq!(
            console_link(&"10.0.0.2:8080".parse().unwrap(), "x+y/z="),
            "http://10.0.0.2:8080/console#token=x%2By%2Fz%3D"
        );
    }
}
