//! The key format: `<prefix>_` + 43 base62 characters of OS randomness + 6 base62
//! characters of CRC32 over everything before them (GitHub-style checksum).
//!
//! The checksum is not a security feature: it lets the service reject typos and
//! garbage before any hashing or lookup, and lets secret scanners recognise keys with
//! few false positives. Parsing never panics and never echoes the input in its errors.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Number of random base62 characters: 43 × log2(62) ≈ 256 bits of entropy.
pub const RANDOM_LEN: usize = 43;
/// Number of base62 characters that encode the CRC32 checksum (62^6 > 2^32).
pub const CHECKSUM_LEN: usize = 6;
/// Characters shown of a key's start and end for display (`prefix****postfix`).
pub const DISPLAY_LEN: usize = 8;
/// The longest prefix a deployment may configure.
pub const MAX_PREFIX_LEN: usize = 16;
/// The prefix of service credentials' secrets (`crate::credential`): reserved, so a key
/// can always be told from a credential.
pub const CREDENTIAL_PREFIX: &str = "kwsvc";

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A deployment's key prefix (`agpt` by default): lowercase ASCII letters and digits,
/// starting with a letter, 1–16 characters. The separator `_` is not part of it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KeyPrefix(String);

/// Why a configured key prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPrefix {
    #[error(
        "key prefix must be 1-{MAX_PREFIX_LEN} lowercase ASCII letters or digits, starting with a letter"
    )]
    Malformed,
    /// Service credentials' secrets have it: a key of that prefix could not be told
    /// from one of them.
    #[error("key prefix {0} is reserved for service credentials")]
    Reserved(&'static str),
}

impl KeyPrefix {
    pub fn parse(prefix: &str) -> Result<Self, InvalidPrefix> {
        let bytes = prefix.as_bytes();
        let valid = (1..=MAX_PREFIX_LEN).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(InvalidPrefix::Malformed);
        }
        if prefix == CREDENTIAL_PREFIX {
            return Err(InvalidPrefix::Reserved(CREDENTIAL_PREFIX));
        }
        Ok(Self(prefix.to_owned()))
    }

    /// Service credentials' prefix, which [`KeyPrefix::parse`] refuses for keys.
    pub(crate) fn credentials() -> Self {
        Self(CREDENTIAL_PREFIX.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        Self("agpt".to_owned())
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a presented string is not a key of this deployment's format.
///
/// The variants are checked in this order, so the first problem found is reported.
/// None of them carries any part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("the key does not start with the expected prefix")]
    MissingPrefix,
    #[error("the key must be {expected} characters long")]
    InvalidLength { expected: usize },
    #[error("the key contains a character outside [0-9A-Za-z] at position {position}")]
    InvalidCharacter { position: usize },
    #[error("the key's checksum does not match (a typo, or not a key)")]
    InvalidChecksum,
}

/// A plaintext API key. It exists only while a create response is built (and while
/// a presented key is verified); `Debug` never shows it.
#[derive(Clone)]
pub struct PlainKey(SecretString);

impl PlainKey {
    /// The secret itself. Call only to hand it to its owner or to hash it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The first characters, stored for display (`agpt_AbC`).
    pub fn display_prefix(&self) -> &str {
        &self.expose()[..DISPLAY_LEN]
    }

    /// The last characters, stored for display.
    pub fn display_postfix(&self) -> &str {
        let s = self.expose();
        &s[s.len() - DISPLAY_LEN..]
    }
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PlainKey([REDACTED])")
    }
}

/// A presented string that has the shape of a key of this deployment: right prefix,
/// length, alphabet and checksum; or the shape of a legacy AutoGPT key (see
/// [`crate::legacy`]). Only a parsed key can be hashed.
#[derive(Clone, Copy)]
pub struct ParsedKey<'a> {
    text: &'a str,
    legacy: bool,
}

impl<'a> ParsedKey<'a> {
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// True for the legacy AutoGPT shape (no checksum): such a key may be an
    /// imported one whose row still holds AutoGPT's hash.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// The key as an owned secret, e.g. one found in a file, to be looked up later.
    pub fn to_plain(&self) -> PlainKey {
        PlainKey(SecretString::from(self.text))
    }

    pub(crate) fn legacy(text: &'a str) -> Self {
        Self { text, legacy: true }
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ParsedKey([REDACTED])")
    }
}

/// Generates and parses keys for one prefix.
#[derive(Clone, Debug)]
pub struct KeyFormat {
    prefix: KeyPrefix,
    /// `prefix` + `_`, precomputed for the hot path.
    head: String,
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self::new(KeyPrefix::default())
    }
}

impl KeyFormat {
    pub fn new(prefix: KeyPrefix) -> Self {
        let head = format!("{}_", prefix.as_str());
        Self { prefix, head }
    }

    pub fn prefix(&self) -> &KeyPrefix {
        &self.prefix
    }

    /// Total length of a key of this format (54 with the default prefix).
    pub fn key_len(&self) -> usize {
        self.head.len() + RANDOM_LEN + CHECKSUM_LEN
    }

    /// A new key with 256 bits from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness, which leaves no safe way on.
    pub fn generate(&self) -> PlainKey {
        self.generate_with(|buf| getrandom::fill(buf).expect("the OS random source failed"))
    }

    /// A new key from the given byte source. Characters are drawn by rejection
    /// sampling (bytes ≥ 248 are discarded), so each of the 62 is equally likely.
    pub fn generate_with(&self, mut fill: impl FnMut(&mut [u8])) -> PlainKey {
        let mut key = String::with_capacity(self.key_len());
        key.push_str(&self.head);
        let mut pool = [0u8; 64];
        let mut next = pool.len();
        let mut drawn = 0;
        while drawn < RANDOM_LEN {
            if next == pool.len() {
                fill(&mut pool);
                next = 0;
            }
            let byte = pool[next];
            next += 1;
            // 248 = 4 × 62: the largest multiple of 62 that fits in a byte.
            if byte < 248 {
                key.push(ALPHABET[usize::from(byte % 62)] as char);
                drawn += 1;
            }
        }
        // The pool held the key's randomness; do not leave it on the stack.
        zeroize::Zeroize::zeroize(&mut pool);
        let checksum = encode_checksum(crc32fast::hash(key.as_bytes()));
        key.push_str(std::str::from_utf8(&checksum).expect("base62 is ASCII"));
        PlainKey(SecretString::from(key))
    }

    /// Checks prefix, length, alphabet and checksum, in that order, without
    /// allocating or hashing.
    pub fn parse<'a>(&self, presented: &'a str) -> Result<ParsedKey<'a>, KeyFormatError> {
        let bytes = presented.as_bytes();
        if !bytes.starts_with(self.head.as_bytes()) {
            return Err(KeyFormatError::MissingPrefix);
        }
        if bytes.len() != self.key_len() {
            return Err(KeyFormatError::InvalidLength {
                expected: self.key_len(),
            });
        }
        let body_end = bytes.len() - CHECKSUM_LEN;
        if let Some(offset) = bytes[self.head.len()..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
        {
            return Err(KeyFormatError::InvalidCharacter {
                position: self.head.len() + offset,
            });
        }
        let expected = crc32fast::hash(&bytes[..body_end]);
        match decode_checksum(&bytes[body_end..]) {
            Some(found) if found == expected => Ok(ParsedKey {
                text: presented,
                legacy: false,
            }),
            _ => Err(KeyFormatError::InvalidChecksum),
        }
    }
}

fn encode_checksum(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// `None` when the six characters encode a value above `u32::MAX`.
fn decode_checksum(chars: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for &c in chars {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        value = value * 62 + u64::from(digit);
    }
    u32::try_from(value).ok()
}

/// The key a request presents, from its `X-API-Key` header (AutoGPT's) if there is
/// one, else from `Authorization: Bearer <key>`; surrounding spaces trimmed, blank
/// meaning none. Shared by every transport that reads keys from HTTP headers (the
/// forward-auth endpoint, keyward-guard), so they agree on what was presented.
pub fn presented_key<'a>(
    x_api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    if let Some(key) = x_api_key {
        return Some(key.trim()).filter(|k| !k.is_empty());
    }
    let (scheme, token) = authorization?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_presented_key_comes_from_x_api_key_first_then_a_bearer_token() {
        use super::presented_key;
        assert_eq!(
            presented_key(Some(" agpt_a "), Some("Bearer agpt_b")),
            Some("agpt_a")
        );
        assert_eq!(presented_key(None, Some("Bearer agpt_b")), Some("agpt_b"));
        assert_eq!(presented_key(None, Some("bearer  agpt_b ")), Some("agpt_b"));
        assert_eq!(presented_key(None, Some("Basic dXNlcjpwYXNz")), None);
        assert_eq!(presented_key(None, Some("Bearer")), None);
        assert_eq!(presented_key(None, Some("Bearer   ")), None);
        assert_eq!(presented_key(Some("  "), Some("Bearer agpt_b")), None);
        assert_eq!(presented_key(None, None), None);
    }

    use super::*;

    fn format() -> KeyFormat {
        KeyFormat::default()
    }

    #[test]
    fn a_generated_key_has_the_documented_shape() {
        let key = format().generate();
        let s = key.expose();
        assert_eq!(s.len(), 54);
        assert!(s.starts_with("agpt_"));
        assert!(s[5..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(key.display_prefix(), &s[..8]);
        assert_eq!(key.display_postfix(), &s[46..]);
    }

    #[test]
    fn checksum_encoding_round_trips_at_the_edges() {
        for value in [0, 1, 61, 62, 12345678, u32::MAX - 1, u32::MAX] {
            assert_eq!(decode_checksum(&encode_checksum(value)), Some(value));
        }
        assert_eq!(decode_checksum(b"zzzzzz"), None, "62^6-1 exceeds u32");
    }

    #[test]
    fn errors_are_reported_in_order() {
        let f = format();
        assert_eq!(f.parse("").unwrap_err(), KeyFormatError::MissingPrefix);
        assert_eq!(f.parse("agpt").unwrap_err(), KeyFormatError::MissingPrefix);
        assert_eq!(
            f.parse("sk_live_abc").unwrap_err(),
            KeyFormatError::MissingPrefix
        );
        assert_eq!(
            f.parse("agpt_abc").unwrap_err(),
            KeyFormatError::InvalidLength { expected: 54 }
        );
        let mut bad = format().generate().expose().to_owned();
        bad.replace_range(10..11, "-");
        assert_eq!(
            f.parse(&bad).unwrap_err(),
            KeyFormatError::InvalidCharacter { position: 10 }
        );
    }

    #[test]
    fn a_legacy_base64url_autogpt_key_is_not_this_format() {
        // agpt_ + token_urlsafe(32): 48 characters.
        let legacy = "agpt_5w3Q8kJ1r0bT7yXv2nLmZpQaRsTuVwXyZ0123456789A";
        assert!(format().parse(legacy).is_err());
    }

    #[test]
    fn a_custom_prefix_is_honoured() {
        let f = KeyFormat::new(KeyPrefix::parse("acme2").unwrap());
        let key = f.generate();
        assert!(key.expose().starts_with("acme2_"));
        assert_eq!(key.expose().len(), 55);
        assert!(f.parse(key.expose()).is_ok());
        assert_eq!(
            format().parse(key.expose()).unwrap_err(),
            KeyFormatError::MissingPrefix
        );
    }

    #[test]
    fn invalid_prefixes_are_refused() {
        for bad in [
            "",
            "AGPT",
            "1abc",
            "ag-pt",
            "ag_pt",
            "abcdefghijklmnopq",
            "é",
        ] {
            assert_eq!(
                KeyPrefix::parse(bad),
                Err(InvalidPrefix::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_credentials_prefix_is_not_a_key_prefix() {
        // Otherwise a key and a credential's secret could not be told apart.
        let refused = KeyPrefix::parse("kwsvc").unwrap_err();
        assert_eq!(refused, InvalidPrefix::Reserved("kwsvc"));
        assert!(refused.to_string().contains("reserved"), "{refused}");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let key = format().generate();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.expose()[5..]));
        let parsed = format().parse(key.expose()).unwrap();
        assert!(!format!("{parsed:?}").contains(&key.expose()[5..]));
    }

    #[test]
    fn rejection_sampling_discards_bytes_that_would_bias_the_alphabet() {
        // A source that only yields 255 then 0: every 255 must be skipped.
        let mut flip = false;
        let key = format().generate_with(|buf| {
            for b in buf.iter_mut() {
                *b = if flip { 0 } else { 255 };
                flip = !flip;
            }
        });
        assert_eq!(&key.expose()[5..48], "0".repeat(43));
    }
}
