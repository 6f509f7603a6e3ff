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
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::{Host, Url};
use zeroize::Zeroize;

use crate::hash::Pepper;
use crate::input::{Description, FieldError, ValidationErrors};
use crate::model::KeyId;
use crate::time::Timestamp;

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
            // NAT64 (64:ff9b::/96), IPv4-compatible (::a.b.c.d) and IPv4-translated
            // (::ffff:0:a.b.c.d) addresses carry an IPv4 host.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || segments[..6] == [0; 6]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
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
                || first == 0x2002 // 6to4: carries an IPv4 host of any kind
                || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1) // local-use NAT64
                || (first == 0x100 && segments[1..4] == [0, 0, 0])) // discard-only
        }
    }
}

impl WebhookSecret {
    /// What a secret is derived for (see [`Pepper::derive`]).
    const PURPOSE: &'static str = "keyward webhook signing secret v1";

    /// The secret of the endpoint whose stored nonce is `nonce`, under `pepper`: the
    /// database holds only the nonce, so reading it alone signs nothing.
    pub fn derive(pepper: &Pepper, nonce: &[u8]) -> Self {
        Self(pepper.derive(Self::PURPOSE, nonce).to_vec())
    }

    /// A new random nonce, to derive a new secret from.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn new_nonce() -> [u8; 16] {
        let mut nonce = [0; 16];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        nonce
    }
}

impl EventType {
    /// The event a recorded audit action announces, if any (`delete_user` removes
    /// keys without a record of each, and announces none).
    pub fn of_action(action: &str) -> Option<Self> {
        Some(match action {
            "create" | "import" => Self::KeyCreated,
            "edit" | "set_permissions" | "set_rate_limit" => Self::KeyUpdated,
            "suspend" => Self::KeySuspended,
            "reactivate" => Self::KeyReactivated,
            "rotate" => Self::KeyRotated,
            "revoke" => Self::KeyRevoked,
            "leaked" => Self::KeyLeaked,
            _ => return None,
        })
    }

    /// The events an endpoint subscribes to: all but `webhook.test`, which is sent on
    /// request to one endpoint.
    pub fn subscribable(self) -> bool {
        self != Self::Test
    }
}

/// A new event's id, the `webhook-id` of each of its deliveries: `msg_` and a UUID
/// v7 (its time first, then random bits), unique across instances.
pub fn new_event_id(now: Timestamp) -> String {
    format!("msg_{}", KeyId::new(now).as_uuid().simple())
}

crate::model::uuid_id!(
    /// An endpoint's id: a UUID v7 in the keys' canonical spelling.
    WebhookId
);

/// An endpoint events are delivered to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: WebhookId,
    pub url: String,
    pub description: Option<String>,
    /// What it subscribes to, in [`EventType::ALL`]'s order.
    pub events: Vec<EventType>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    /// Set when it was switched off, by an operator or after failing for longer than
    /// the retry window; nothing is delivered to it meanwhile.
    pub disabled_at: Option<Timestamp>,
    pub disabled_reason: Option<String>,
    /// The last delivery it acknowledged.
    pub last_success_at: Option<Timestamp>,
    /// Until then, the secret replaced by a rotation signs too.
    pub previous_secret_until: Option<Timestamp>,
}

/// The longest URL an endpoint may have.
pub const MAX_URL_LEN: usize = 2_000;

/// The URL of an endpoint, if `text` may be one: `https://` with a host and no
/// credentials or fragment, not to a loopback, private, link-local or otherwise
/// non-public address given as a literal. Names are checked again at connect time,
/// on the addresses they resolve to. `allow_private` lifts the address rule and lets
/// `http://` in (a deployment delivering inside its own network, tests).
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(text).map_err(|err| format!("is not a URL ({err})"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => {
            return Err(
                "must be https:// (http:// only with KEYWARD_WEBHOOK_ALLOW_PRIVATE=true)".into(),
            );
        }
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials (they would show wherever the URL does)".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    let private = match url.host() {
        None => return Err("must name a host".into()),
        Some(Host::Ipv4(ip)) => !public_address(ip.into()),
        Some(Host::Ipv6(ip)) => !public_address(ip.into()),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name == "localhost" || name.ends_with(".localhost")
        }
    };
    if private && !allow_private {
        return Err(
            "must not point to a loopback, private or link-local address \
                    (allowed only with KEYWARD_WEBHOOK_ALLOW_PRIVATE=true)"
                .into(),
        );
    }
    Ok(url)
}

/// Where an endpoint is, without its path and query (which may carry a token): what
/// logs and the audit trail show of its URL.
pub fn origin(url: &str) -> String {
    Url::parse(url).map_or_else(
        |_| "(not a URL)".to_owned(),
        |url| url.origin().ascii_serialization(),
    )
}

/// Event names as subscribed: at least one, each a contract name other than
/// `webhook.test`; duplicates count once. In [`EventType::ALL`]'s order.
pub fn parse_events<S: AsRef<str>>(names: &[S]) -> Result<Vec<EventType>, String> {
    let mut events = Vec::new();
    for name in names {
        let name = name.as_ref();
        match EventType::parse(name) {
            Some(event) if event.subscribable() => events.push(event),
            Some(_) => {
                return Err(format!(
                    "{name} is sent on request (POST /api/admin/webhooks/{{id}}/test), not subscribed to"
                ));
            }
            None => {
                let known: Vec<&str> = EventType::ALL
                    .iter()
                    .filter(|e| e.subscribable())
                    .map(|e| e.as_str())
                    .collect();
                let shown: String = name.chars().take(40).collect();
                return Err(format!(
                    "unknown event type {shown:?}; known: {}",
                    known.join(", ")
                ));
            }
        }
    }
    if events.is_empty() {
        return Err("must name at least one event type".into());
    }
    events.sort();
    events.dedup();
    Ok(events)
}

/// A request to add an endpoint, as received.
#[derive(Clone, Debug, Default)]
pub struct NewWebhookRequest {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// Fields the transport could not read (see [`crate::input::NewKeyRequest`]).
    pub unreadable: Vec<FieldError>,
}

/// What an endpoint's request or change set, once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidWebhookFields {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// `Some(true)` switches a disabled endpoint back on, `Some(false)` off.
    pub enabled: Option<bool>,
}

impl NewWebhookRequest {
    pub fn validate(&self, allow_private: bool) -> Result<ValidWebhookFields, ValidationErrors> {
        WebhookEdit {
            url: Some(self.url.clone()),
            events: Some(self.events.clone()),
            description: self.description.clone().map(Some),
            enabled: None,
            unreadable: self.unreadable.clone(),
        }
        .validate(allow_private)
    }
}

/// A change to an endpoint, as received: only the fields given change.
#[derive(Clone, Debug, Default)]
pub struct WebhookEdit {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub unreadable: Vec<FieldError>,
}

impl WebhookEdit {
    /// Each field by its rule (the URL by [`check_url`], events by
    /// [`parse_events`], the description as a key's); every problem is reported.
    pub fn validate(&self, allow_private: bool) -> Result<ValidWebhookFields, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let url = self.url.as_deref().and_then(|url| {
            check_url(url, allow_private)
                .map_err(|message| errors.push("url", message))
                .ok()
                .map(String::from)
        });
        let events = self.events.as_deref().and_then(|names| {
            parse_events(names)
                .map_err(|message| errors.push("events", message))
                .ok()
        });
        let description = self.description.as_ref().map(|text| {
            text.as_deref()
                .map(Description::parse)
                .transpose()
                .map_err(|message| errors.push("description", message))
                .ok()
                .flatten()
                .flatten()
                .map(Description::into_string)
        });
        errors.0.extend(self.unreadable.iter().cloned());
        errors.into_result(|| ValidWebhookFields {
            url,
            events,
            description,
            enabled: self.enabled,
        })
    }
}

/// When a failed delivery is tried again: after each wait in turn, then never (the
/// delivery has failed). The default is the Standard Webhooks schedule (at once, then
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h) with four more 10 h waits, so that an
/// endpoint is tried for about three days (67.6 h) before it is given up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        const MINUTE: u64 = 60;
        const HOUR: u64 = 60 * MINUTE;
        let seconds = [
            5,
            5 * MINUTE,
            30 * MINUTE,
            2 * HOUR,
            5 * HOUR,
            10 * HOUR,
            10 * HOUR,
            10 * HOUR,
            10 * HOUR,
            10 * HOUR,
            10 * HOUR,
        ];
        Self(seconds.into_iter().map(Duration::from_secs).collect())
    }
}

impl RetrySchedule {
    pub fn new(waits: Vec<Duration>) -> Self {
        Self(waits)
    }

    pub fn waits(&self) -> &[Duration] {
        &self.0
    }

    /// Attempts in all: the first, and one after each wait.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// How long after failed attempt number `made` (1 for the first) the next one is
    /// due, or `None` when that was the last. `jitter` in [0, 1) moves the wait by up to
    /// a tenth either way, so endpoints that failed together are not retried together.
    pub fn next_wait(&self, made: u32, jitter: f64) -> Option<Duration> {
        let wait = *self.0.get(usize::try_from(made).ok()?.checked_sub(1)?)?;
        let factor = 0.9 + 0.2 * jitter.clamp(0.0, 1.0);
        Some(wait.mul_f64(factor))
    }
}

/// A random jitter in [0, 1) for [`RetrySchedule::next_wait`].
pub fn random_jitter() -> f64 {
    let mut bytes = [0; 4];
    getrandom::fill(&mut bytes).map_or(0.5, |()| {
        f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
    })
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its next attempt (or being attempted).
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == stored)
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
            "::ffff:0:7f00:1",
            "::ffff:0:a00:1",
            "64:ff9b:1::a9fe:a9fe",
            "100::1",
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

    #[test]
    fn an_endpoint_url_is_https_to_a_public_host_unless_private_ones_are_allowed() {
        for good in [
            "https://hooks.example.com/keyward",
            "https://93.184.215.14:8443/in?x=1",
            "https://[2606:4700::1111]/",
        ] {
            assert!(check_url(good, false).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("http://hooks.example.com/", "https"),
            ("ftp://hooks.example.com/", "https"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("https://hooks.example.com/#x", "fragment"),
            ("https://127.0.0.1/", "loopback"),
            ("https://169.254.169.254/latest/meta-data", "loopback"),
            ("https://[::1]:8080/", "loopback"),
            ("https://[::ffff:10.0.0.1]/", "loopback"),
            ("https://localhost/", "loopback"),
            ("https://a.localhost./", "loopback"),
            ("https://0x7f.1/", "loopback"),
            ("not a url", "not a URL"),
        ] {
            let err = check_url(bad, false).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long, false).unwrap_err().contains("at most"));
    }

    #[test]
    fn subscriptions_name_known_events_other_than_the_test_one() {
        assert_eq!(
            parse_events(&["api_key.revoked", "api_key.created", "api_key.revoked"]),
            Ok(vec![EventType::KeyCreated, EventType::KeyRevoked])
        );
        assert!(
            parse_events::<&str>(&[])
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            parse_events(&["webhook.test"])
                .unwrap_err()
                .contains("on request")
        );
        let unknown = parse_events(&["api_key.*"]).unwrap_err();
        assert!(
            unknown.contains("unknown") && unknown.contains("api_key.created"),
            "{unknown}"
        );
    }

    #[test]
    fn audit_actions_announce_their_events() {
        assert_eq!(EventType::of_action("create"), Some(EventType::KeyCreated));
        assert_eq!(EventType::of_action("import"), Some(EventType::KeyCreated));
        assert_eq!(EventType::of_action("edit"), Some(EventType::KeyUpdated));
        assert_eq!(
            EventType::of_action("set_rate_limit"),
            Some(EventType::KeyUpdated)
        );
        assert_eq!(EventType::of_action("rotate"), Some(EventType::KeyRotated));
        assert_eq!(EventType::of_action("revoke"), Some(EventType::KeyRevoked));
        assert_eq!(EventType::of_action("delete_user"), None);
    }

    #[test]
    fn the_default_schedule_retries_for_about_three_days_with_jitter() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 12);
        let total: Duration = schedule.waits().iter().sum();
        assert!(
            (Duration::from_secs(60 * 3600)..Duration::from_secs(72 * 3600)).contains(&total),
            "{total:?}"
        );
        assert_eq!(schedule.next_wait(0, 0.5), None);
        assert_eq!(schedule.next_wait(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(schedule.next_wait(2, 0.0), Some(Duration::from_secs(270)));
        assert_eq!(schedule.next_wait(2, 1.0), Some(Duration::from_secs(330)));
        assert_eq!(
            schedule.next_wait(11, 0.5),
            Some(Duration::from_secs(36_000))
        );
        assert_eq!(
            schedule.next_wait(12, 0.5),
            None,
            "the twelfth attempt was the last"
        );
    }

    #[test]
    fn a_derived_secret_depends_on_the_nonce_and_the_pepper() {
        let pepper = Pepper::new(1, &[1; 32]).unwrap();
        let other = Pepper::new(2, &[2; 32]).unwrap();
        let nonce = WebhookSecret::new_nonce();
        let secret = WebhookSecret::derive(&pepper, &nonce);
        assert_eq!(secret, WebhookSecret::derive(&pepper, &nonce));
        assert_ne!(
            secret,
            WebhookSecret::derive(&pepper, &WebhookSecret::new_nonce())
        );
        assert_ne!(secret, WebhookSecret::derive(&other, &nonce));
        assert!(WebhookSecret::parse(&secret.expose()).is_ok());
    }
}
