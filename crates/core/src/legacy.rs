//! Keys imported from an AutoGPT database, which keep working after the import.
//!
//! AutoGPT's keys are `agpt_` + 43 base64url characters (`secrets.token_urlsafe(32)`),
//! 48 characters, without a checksum. Its rows hold one of:
//! - the unsalted SHA-256 of the whole key, in hex (2024);
//! - a hex scrypt of the whole key (N=2^14, r=8, p=1, 32 bytes) with a hex salt
//!   (2025 on).
//!
//! keyward stores those digests as imported, finds a presented legacy key by its
//! SHA-256 (one indexed lookup) or by its 8-character head (then one scrypt per
//! candidate, compared in constant time), and on the first success re-hashes the row
//! with the pepper, so later verifications take the ordinary path.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::key::ParsedKey;

/// `agpt_`: AutoGPT's prefix, whatever this deployment's prefix is.
pub const LEGACY_PREFIX: &str = "agpt_";
/// 5 + 43 characters.
pub const LEGACY_KEY_LEN: usize = 48;
/// What AutoGPT indexes its scrypt rows by, and shows: the key's first 8 characters.
pub const HEAD_LEN: usize = 8;

/// AutoGPT's scrypt parameters: N = 2^14, r = 8, p = 1, 32 bytes.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// A presented string with the legacy shape, if it has it.
pub fn parse(presented: &str) -> Option<ParsedKey<'_>> {
    let bytes = presented.as_bytes();
    let valid = bytes.len() == LEGACY_KEY_LEN
        && bytes.starts_with(LEGACY_PREFIX.as_bytes())
        && bytes[LEGACY_PREFIX.len()..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    valid.then(|| ParsedKey::legacy(presented))
}

/// How an imported row's key is hashed.
#[derive(Clone, PartialEq, Eq)]
pub enum LegacyHash {
    /// The unsalted SHA-256 of the key.
    Sha256([u8; 32]),
    /// scrypt of the key with this salt.
    Scrypt { salt: Vec<u8>, digest: [u8; 32] },
}

impl std::fmt::Debug for LegacyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sha256(_) => f.write_str("Sha256([REDACTED])"),
            Self::Scrypt { .. } => f.write_str("Scrypt([REDACTED])"),
        }
    }
}

impl LegacyHash {
    /// From an AutoGPT row: the hex hash and the hex salt (none: SHA-256).
    pub fn from_hex(hash: &str, salt: Option<&str>) -> Result<Self, String> {
        let digest: [u8; 32] = decode_hex(hash)
            .and_then(|d| d.try_into().ok())
            .ok_or("the hash is not 64 hex digits")?;
        Ok(match salt {
            None => Self::Sha256(digest),
            Some(salt) => Self::Scrypt {
                salt: decode_hex(salt).ok_or("the salt is not hex")?,
                digest,
            },
        })
    }

    /// Whether `key` is the key this hash was made from. Constant time in the
    /// comparison; the scrypt itself costs about 16 MiB and tens of milliseconds.
    pub fn matches(&self, key: ParsedKey<'_>) -> bool {
        match self {
            Self::Sha256(digest) => sha256(key).ct_eq(digest).into(),
            Self::Scrypt { salt, digest } => scrypt(key, salt).ct_eq(digest).into(),
        }
    }
}

/// The unsalted SHA-256 of a key, as AutoGPT's 2024 rows hold it.
pub fn sha256(key: ParsedKey<'_>) -> [u8; 32] {
    Sha256::digest(key.as_str().as_bytes()).into()
}

/// AutoGPT's scrypt of a key.
pub fn scrypt(key: ParsedKey<'_>, salt: &[u8]) -> [u8; 32] {
    let params = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .expect("AutoGPT's parameters are valid");
    let mut out = [0u8; 32];
    scrypt::scrypt(key.as_str().as_bytes(), salt, &params, &mut out)
        .expect("32 bytes is a valid output length");
    out
}

/// The head by which AutoGPT finds scrypt rows.
pub fn head(key: ParsedKey<'_>) -> &str {
    &key.as_str()[..HEAD_LEN]
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn golden_vectors_match_hashlib() {
        // Given with the issue, and checked with Python's hashlib.
        assert_eq!(
            hex(&Sha256::digest(b"agpt_legacykey123")),
            "1cbc0f53ccde9d2cb9f409483a921701f863ab55422069c81529410ea1098cb7"
        );
        let key = format!("agpt_{}", "A".repeat(43));
        let parsed = parse(&key).unwrap();
        let salt: Vec<u8> = (0u8..32).collect();
        assert_eq!(
            hex(&scrypt(parsed, &salt)),
            "809580738dd6e6fe8fba6f0c9b60b7dc9d2199c497647f6214b0772b6441bfe7"
        );
        let stored = LegacyHash::from_hex(
            "809580738dd6e6fe8fba6f0c9b60b7dc9d2199c497647f6214b0772b6441bfe7",
            Some(&hex(&salt)),
        )
        .unwrap();
        assert!(stored.matches(parsed));
        let other = format!("agpt_{}B", "A".repeat(42));
        assert!(!stored.matches(parse(&other).unwrap()));
    }

    #[test]
    fn only_the_legacy_shape_parses() {
        let key = format!("agpt_{}", "aZ09-_".repeat(7) + "x");
        assert_eq!(key.len(), 48);
        let parsed = parse(&key).unwrap();
        assert!(parsed.is_legacy());
        assert_eq!(head(parsed), &key[..8]);
        assert!(parse(&key[..47]).is_none());
        assert!(parse(&format!("{key}a")).is_none());
        assert!(parse(&key.replacen("agpt_", "sk_l_", 1)).is_none());
        assert!(
            parse(&key.replacen('Z', "+", 1)).is_none(),
            "base64url only"
        );
        let sha = LegacyHash::from_hex(&hex(&sha256(parsed)), None).unwrap();
        assert!(sha.matches(parsed));
        assert!(LegacyHash::from_hex("zz", None).is_err());
        assert!(LegacyHash::from_hex(&"ab".repeat(32), Some("xyz")).is_err());
    }
}
