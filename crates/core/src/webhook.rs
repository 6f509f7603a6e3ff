//! Webhooks' vocabulary: the event types (contract names) and how a delivery is
//! signed, exactly as the Standard Webhooks specification (standardwebhooks.com) says,
//! so that a consumer verifies with its official libraries:
//!
//! - a secret is random bytes, shown as `whsec_` + their standard base64;
//! - the signed content is `<webhook-id>.<webhook-timestamp>.<body>` (the timestamp in
//!   Unix seconds, the body as sent), signed with HMAC-SHA256 under the secret's bytes;
//! - `webhook-signature` holds `v1,<base64 of the MAC>`, one per secret, separated by
//!   spaces (while a secret is being replaced, both sign).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

/// What happened. The names are contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    KeyCreated,
    /// Name, description, permissions, metadata, expiry or limits changed.
    KeyUpdated,
    KeySuspended,
    KeyReactivated,
    KeyRotated,
    KeyRevoked,
    /// Its expiry is near (once per key).
    KeyExpiring,
    /// Its expiry has passed (once per key).
    KeyExpired,
    /// Found where it should not be (a leak report).
    KeyLeaked,
    /// Its usage credits fell below the low mark (once per amount set).
    CreditsLow,
    CreditsExhausted,
    /// Refused for its rate limit (at most once per key and limit period).
    RateLimited,
    /// Sent on request, to try an endpoint.
    Test,
}

impl EventType {
    /// Every event type, in the order they are listed.
    pub const ALL: [Self; 13] = [
        Self::KeyCreated,
        Self::KeyUpdated,
        Self::KeySuspended,
        Self::KeyReactivated,
        Self::KeyRotated,
        Self::KeyRevoked,
        Self::KeyExpiring,
        Self::KeyExpired,
        Self::KeyLeaked,
        Self::CreditsLow,
        Self::CreditsExhausted,
        Self::RateLimited,
        Self::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "api_key.created",
            Self::KeyUpdated => "api_key.updated",
            Self::KeySuspended => "api_key.suspended",
            Self::KeyReactivated => "api_key.reactivated",
            Self::KeyRotated => "api_key.rotated",
            Self::KeyRevoked => "api_key.revoked",
            Self::KeyExpiring => "api_key.expiring",
            Self::KeyExpired => "api_key.expired",
            Self::KeyLeaked => "api_key.leaked",
            Self::CreditsLow => "api_key.credits_low",
            Self::CreditsExhausted => "api_key.credits_exhausted",
            Self::RateLimited => "api_key.rate_limited",
            Self::Test => "webhook.test",
        }
    }

    /// The event type of a contract name, exactly as written.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.as_str() == name)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `whsec_` form's prefix.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a secret keyward makes.
const SECRET_LEN: usize = 32;
/// What the specification allows a secret to be (24 to 64 bytes).
const SECRET_RANGE: std::ops::RangeInclusive<usize> = 24..=64;

/// An endpoint's signing secret. Never shown by `Debug`; wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a text is not a signing secret (its content is never repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is whsec_ followed by the standard base64 of 24 to 64 bytes")]
pub struct InvalidSecret;

impl WebhookSecret {
    /// A new secret of 32 bytes from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn generate() -> Self {
        let mut bytes = vec![0; SECRET_LEN];
        getrandom::fill(&mut bytes).expect("the OS random source failed");
        Self(bytes)
    }

    /// A secret in its `whsec_<base64>` form.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| InvalidSecret)?;
        if SECRET_RANGE.contains(&bytes.len()) {
            Ok(Self(bytes))
        } else {
            Err(InvalidSecret)
        }
    }

    /// The secret as stored and shown once: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The signature of one delivery: `v1,<base64>` over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl Drop for WebhookSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(**********)")
    }
}

/// The `webhook-signature` header of a delivery signed by each of `secrets` (the
/// current one, and while a rotation's overlap lasts, the one it replaces).
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| secret.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a webhook may be delivered to `address`: only to the public internet.
/// Loopback, private, shared (CGNAT), link-local (cloud metadata at 169.254.169.254),
/// unspecified, multicast, broadcast, documentation and reserved ranges are refused,
/// and so are IPv6 addresses that carry a refused IPv4 one (mapped, NAT64). A
/// deployment that delivers inside its own network says so
/// (`KEYWARD_WEBHOOK_ALLOW_PRIVATE`); this rule is for everyone else, and is checked
/// on the address actually connected to, so a name cannot resolve around it.
pub fn public_address(address: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn public_v4(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        !(ip.is_unspecified()
            || ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_multicast()
            || ip.is_broadcast()
            || ip.is_documentation()
            || a == 0
            || (a == 100 && (64..128).contains(&b))
            || (a == 192 && b == 0 && c == 0)
            || (a == 198 && (18..20).contains(&b))
            || a >= 240)
    }
    match address {
        IpAddr::V4(ip) => public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return public_v4(v4);
            }
            let segments = ip.segments();
            // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) carry an IPv4 host.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
                let [a, b] = segments[6].to_be_bytes();
                let [c, d] = segments[7].to_be_bytes();
                return !ip.is_unspecified()
                    && !ip.is_loopback()
                    && public_v4(Ipv4Addr::new(a, b, c, d));
            }
            let first = segments[0];
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (first == 0x2001 && segments[1] == 0x0db8) // documentation
                || (first == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments, Teredo
                || first == 0x2002) // 6to4: carries an IPv4 host of any kind
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with the specification's own Python library (`standardwebhooks` from PyPI,
    /// `Webhook(secret).sign("msg_01", 1800000000, body)`), not with this code.
    const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const BODY: &str = r#"{"type":"webhook.test","timestamp":"2027-01-15T08:00:00Z","data":{}}"#;
    const SIGNATURE: &str = "v1,m5M5aeKPJZ+yV6DgRuh0hoJlltdk6MujDzqC9neqy8I=";

    #[test]
    fn a_delivery_is_signed_as_the_reference_library_signs_it() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(
            secret.sign("msg_01", 1_800_000_000, BODY.as_bytes()),
            SIGNATURE
        );
        assert_eq!(secret.expose(), SECRET, "the whsec_ form round-trips");
    }

    #[test]
    fn during_a_rotation_both_secrets_sign() {
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::generate();
        let header = signature_header(&[&new, &old], "msg_01", 1_800_000_000, BODY.as_bytes());
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(signatures[1], SIGNATURE);
        assert!(signatures[0].starts_with("v1,") && signatures[0] != SIGNATURE);
    }

    #[test]
    fn only_the_whsec_form_of_24_to_64_bytes_is_a_secret() {
        let encode = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        for bad in [
            SECRET.trim_start_matches("whsec_").to_owned(),
            "whsec_not base64!".to_owned(),
            encode(23),
            encode(65),
            String::new(),
        ] {
            assert_eq!(WebhookSecret::parse(&bad), Err(InvalidSecret), "{bad:?}");
        }
        for good in [encode(24), encode(64)] {
            assert!(WebhookSecret::parse(&good).is_ok());
        }
        let generated = WebhookSecret::generate();
        assert_eq!(WebhookSecret::parse(&generated.expose()), Ok(generated));
    }

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("AAEC"), "{shown}");
        assert_eq!(shown, "WebhookSecret(**********)");
    }

    #[test]
    fn every_event_type_has_its_contract_name_once() {
        let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "api_key.created",
                "api_key.updated",
                "api_key.suspended",
                "api_key.reactivated",
                "api_key.rotated",
                "api_key.revoked",
                "api_key.expiring",
                "api_key.expired",
                "api_key.leaked",
                "api_key.credits_low",
                "api_key.credits_exhausted",
                "api_key.rate_limited",
                "webhook.test",
            ]
        );
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(event));
        }
        assert_eq!(EventType::parse("API_KEY.CREATED"), None);
    }

    #[test]
    fn webhooks_go_to_the_public_internet_only() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
            "2002:7f00:1::",
            "2001::1",
        ];
        for text in refused {
            let address: std::net::IpAddr = text.parse().unwrap();
            assert!(!public_address(address), "{text} must be refused");
        }
        for text in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "::ffff:1.1.1.1",
        ] {
            let address: std::net::IpAddr = text.parse().unwrap();
            assert!(public_address(address), "{text} is public");
        }
    }
}
