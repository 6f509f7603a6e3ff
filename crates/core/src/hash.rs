//! The stored form of a key: `HMAC-SHA256(pepper, full key)`.
//!
//! Keys carry 256 bits of entropy, so a slow password hash would only burn CPU on
//! every verification; a keyed fast hash is enough, and the pepper (a server secret
//! kept outside the database) means a stolen database alone cannot confirm a leaked
//! key. Each row records the pepper version that hashed it, so peppers can rotate:
//! new keys use the current pepper, retired peppers still verify older rows.

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::key::{KeyFormat, ParsedKey, PlainKey};

type HmacSha256 = Hmac<Sha256>;

/// Shortest pepper accepted, in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

/// The 32-byte keyed hash of a key: what the database indexes and the cache is keyed by.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality, for the rare places hashes are compared in memory.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    // A keyed hash reveals nothing useful, but a short form keeps logs tidy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// One version of the server secret mixed into every key hash.
pub struct Pepper {
    version: u16,
    /// The HMAC state after absorbing the key, cloned per hash so the key schedule
    /// is not recomputed on the hot path.
    mac: HmacSha256,
    secret: SecretBox<[u8]>,
}

impl Pepper {
    pub fn new(version: u16, secret: &[u8]) -> Result<Self, PepperError> {
        if version == 0 {
            return Err(PepperError::ZeroVersion);
        }
        if secret.len() < MIN_PEPPER_LEN {
            return Err(PepperError::TooShort { version });
        }
        let mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Ok(Self {
            version,
            mac,
            secret: SecretBox::new(secret.to_vec().into_boxed_slice()),
        })
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    pub fn hash(&self, key: ParsedKey<'_>) -> KeyHash {
        let mut mac = self.mac.clone();
        mac.update(key.as_str().as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }

    /// 32 bytes derived from this pepper for `purpose` and `input`: secrets keyward
    /// must be able to use again (a webhook's signing secret) without storing them.
    /// The purpose is followed by a NUL byte, which no key contains, so a derived
    /// value is never a key's hash.
    pub fn derive(&self, purpose: &str, input: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(input);
        mac.finalize().into_bytes().into()
    }

    /// A fresh secret in `format` and its hash: the plaintext is shown to its owner
    /// once, the hash is what is stored.
    pub fn mint(&self, format: &KeyFormat) -> (PlainKey, KeyHash) {
        let plain = format.generate();
        let hash = self.hash(
            format
                .parse(plain.expose())
                .expect("a generated key parses"),
        );
        (plain, hash)
    }
}

impl Clone for Pepper {
    fn clone(&self) -> Self {
        Self::new(self.version, self.secret.expose_secret()).expect("validated on construction")
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper(v{}, [REDACTED])", self.version)
    }
}

/// Why a pepper configuration was refused. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepperError {
    #[error("no pepper configured")]
    Missing,
    #[error("pepper version {version} is shorter than {MIN_PEPPER_LEN} bytes")]
    TooShort { version: u16 },
    #[error("pepper versions start at 1")]
    ZeroVersion,
    #[error("pepper version {0} is given twice")]
    DuplicateVersion(u16),
    #[error(
        "several peppers must each be written `v<N>:<secret>` (one per line or comma-separated)"
    )]
    UnversionedInList,
    #[error("the current pepper version {0} is not among the configured peppers")]
    UnknownCurrent(u16),
}

/// The current pepper (hashes new keys) and retired ones (still verify older rows).
#[derive(Clone, Debug)]
pub struct Peppers {
    current: Pepper,
    retired: Vec<Pepper>,
}

impl Peppers {
    /// A single pepper, version 1.
    pub fn single(secret: &[u8]) -> Result<Self, PepperError> {
        Ok(Self {
            current: Pepper::new(1, secret)?,
            retired: Vec::new(),
        })
    }

    /// Parses a pepper setting: either one bare secret (version 1), or entries
    /// `v<N>:<secret>` separated by newlines or commas; the highest version is current.
    pub fn parse(setting: &str) -> Result<Self, PepperError> {
        let entries: Vec<&str> = setting
            .split(['\n', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        // Borrowed slices of the setting: no copies of the secrets are made here.
        fn versioned(entry: &str) -> Option<(u16, &str)> {
            let rest = entry.strip_prefix('v')?;
            let (version, secret) = rest.split_once(':')?;
            Some((version.parse().ok()?, secret))
        }
        let mut peppers = Vec::with_capacity(entries.len());
        match entries.as_slice() {
            [] => return Err(PepperError::Missing),
            [only] => {
                let (version, secret) = versioned(only).unwrap_or((1, only));
                peppers.push(Pepper::new(version, secret.as_bytes())?);
            }
            many => {
                for entry in many {
                    let (version, secret) =
                        versioned(entry).ok_or(PepperError::UnversionedInList)?;
                    if peppers.iter().any(|p: &Pepper| p.version == version) {
                        return Err(PepperError::DuplicateVersion(version));
                    }
                    peppers.push(Pepper::new(version, secret.as_bytes())?);
                }
            }
        }
        peppers.sort_by_key(|p| std::cmp::Reverse(p.version));
        let current = peppers.remove(0);
        Ok(Self {
            current,
            retired: peppers,
        })
    }

    /// Like [`Peppers::parse`], with the current version chosen explicitly rather than
    /// the highest. This stages a rotation across several instances: first every
    /// instance learns the new pepper while the old one stays current, then the new one
    /// is made current; at no point does an instance meet a hash it cannot check.
    pub fn parse_with_current(setting: &str, current: Option<u16>) -> Result<Self, PepperError> {
        let mut peppers = Self::parse(setting)?;
        let Some(version) = current else {
            return Ok(peppers);
        };
        if peppers.current.version == version {
            return Ok(peppers);
        }
        let index = peppers
            .retired
            .iter()
            .position(|p| p.version == version)
            .ok_or(PepperError::UnknownCurrent(version))?;
        let chosen = peppers.retired.remove(index);
        let previous = std::mem::replace(&mut peppers.current, chosen);
        peppers.retired.push(previous);
        peppers
            .retired
            .sort_by_key(|p| std::cmp::Reverse(p.version));
        Ok(peppers)
    }

    pub fn current(&self) -> &Pepper {
        &self.current
    }

    /// Retired peppers, newest first.
    pub fn retired(&self) -> &[Pepper] {
        &self.retired
    }

    /// The pepper of this version, current or retired.
    pub fn version(&self, version: u16) -> Option<&Pepper> {
        std::iter::once(&self.current)
            .chain(&self.retired)
            .find(|pepper| pepper.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyFormat;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn hash_is_hmac_sha256_of_the_full_key() {
        // Reference value computed independently (Python: hmac.new(secret, key, sha256)).
        let format = KeyFormat::default();
        let key = "agpt_00000000000000000000000000000000000000000004KqDMJ";
        let parsed = format.parse(key).expect("a valid key");
        let hash = Pepper::new(1, SECRET.as_bytes()).unwrap().hash(parsed);
        let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, REFERENCE_HMAC);
    }

    const REFERENCE_HMAC: &str = "68b8b98b65d01bfa4fe76204b4cfdd2a31dbd36297678e7287d2971f08cde85b";

    #[test]
    fn different_peppers_give_different_hashes() {
        let format = KeyFormat::default();
        let key = format.generate();
        let parsed = format.parse(key.expose()).unwrap();
        let a = Pepper::new(1, SECRET.as_bytes()).unwrap().hash(parsed);
        let b = Pepper::new(2, "another-secret-that-is-long-enough!".as_bytes())
            .unwrap()
            .hash(parsed);
        assert_ne!(a, b);
        assert!(a.ct_eq(&a) && !a.ct_eq(&b));
    }

    #[test]
    fn a_single_bare_pepper_is_version_one() {
        let p = Peppers::parse(SECRET).unwrap();
        assert_eq!(p.current().version(), 1);
        assert!(p.retired().is_empty());
    }

    #[test]
    fn the_highest_version_is_current_and_the_rest_are_retired() {
        let setting = format!("v1:{SECRET}\nv3:{SECRET}x, v2:{SECRET}y");
        let p = Peppers::parse(&setting).unwrap();
        assert_eq!(p.current().version(), 3);
        let retired: Vec<u16> = p.retired().iter().map(Pepper::version).collect();
        assert_eq!(retired, [2, 1]);
    }

    #[test]
    fn the_current_version_can_be_chosen_to_stage_a_rotation() {
        let setting = format!("v1:{SECRET},v2:{SECRET}-next");
        let staged = Peppers::parse_with_current(&setting, Some(1)).unwrap();
        assert_eq!(staged.current().version(), 1);
        let retired: Vec<u16> = staged.retired().iter().map(Pepper::version).collect();
        assert_eq!(retired, [2]);
        let done = Peppers::parse_with_current(&setting, None).unwrap();
        assert_eq!(done.current().version(), 2);
        assert_eq!(
            Peppers::parse_with_current(&setting, Some(3)).unwrap_err(),
            PepperError::UnknownCurrent(3)
        );
    }

    #[test]
    fn weak_or_ambiguous_settings_are_refused() {
        assert_eq!(Peppers::parse("  ").unwrap_err(), PepperError::Missing);
        assert_eq!(
            Peppers::parse("short").unwrap_err(),
            PepperError::TooShort { version: 1 }
        );
        assert_eq!(
            Peppers::parse(&format!("{SECRET},{SECRET}")).unwrap_err(),
            PepperError::UnversionedInList
        );
        assert_eq!(
            Peppers::parse(&format!("v2:{SECRET},v2:{SECRET}")).unwrap_err(),
            PepperError::DuplicateVersion(2)
        );
        assert_eq!(
            Peppers::parse(&format!("v0:{SECRET}")).unwrap_err(),
            PepperError::ZeroVersion
        );
    }

    #[test]
    fn debug_never_shows_the_pepper() {
        let p = Peppers::parse(SECRET).unwrap();
        assert!(!format!("{p:?}").contains("0123456789"));
    }
}
