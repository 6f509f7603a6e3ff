//! Fuzzes keyward-core's key format (`crates/core/src/key.rs`).
//!
//! Properties checked on every input:
//! 1. `KeyFormat::parse` never panics, and agrees exactly (same `Ok`/`Err` and the
//!    same error variant, checked in the documented order) with the independent
//!    model below: prefix `agpt_`, 54 bytes, `[0-9A-Za-z]` after the prefix, and the
//!    last 6 characters the base62 CRC32 of everything before them. Whatever parses
//!    matches `^agpt_[0-9A-Za-z]{49}$`, and re-parsing it is stable.
//!    The input is used as-is when it is UTF-8, and through `from_utf8_lossy`
//!    otherwise (the parser only takes `&str`).
//! 2. `KeyPrefix::parse` agrees with its documented rule; a key generated for an
//!    accepted custom prefix has the right shape and display prefix/postfix.
//! 3. Single-character mutations of a generated key (substitution, deletion,
//!    insertion, adjacent transposition, chosen by the input) never parse, except
//!    the identity. Why this is strictly guaranteed (see `mutate`): the head is
//!    compared exactly, insertions and deletions change the length, a changed body
//!    byte is an error burst of at most 8 (16 for a swap) bits that CRC-32 always
//!    detects, and a changed checksum character changes the decoded value (6 base62
//!    digits map one-to-one onto 0..62^6). The one case not guaranteed is a swap
//!    across the body/checksum boundary (both sides change): only "no panic and
//!    agrees with the model" is asserted there.
#![no_main]

use keyward_core::key::{
    CHECKSUM_LEN, DISPLAY_LEN, KeyFormat, KeyFormatError, KeyPrefix, MAX_PREFIX_LEN, PlainKey,
    RANDOM_LEN,
};
use libfuzzer_sys::fuzz_target;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The documented parse rules, written out independently of `key.rs`.
fn model_parse(head: &str, s: &str) -> Result<(), KeyFormatError> {
    let b = s.as_bytes();
    if !b.starts_with(head.as_bytes()) {
        return Err(KeyFormatError::MissingPrefix);
    }
    let len = head.len() + RANDOM_LEN + CHECKSUM_LEN;
    if b.len() != len {
        return Err(KeyFormatError::InvalidLength { expected: len });
    }
    if let Some(position) = (head.len()..len).find(|&i| !BASE62.contains(&b[i])) {
        return Err(KeyFormatError::InvalidCharacter { position });
    }
    let body_end = len - CHECKSUM_LEN;
    let mut crc = crc32fast::hash(&b[..body_end]);
    let mut expected = [0u8; CHECKSUM_LEN];
    for slot in expected.iter_mut().rev() {
        *slot = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    if b[body_end..] == expected {
        Ok(())
    } else {
        Err(KeyFormatError::InvalidChecksum)
    }
}

fn model_prefix_ok(p: &str) -> bool {
    let b = p.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_PREFIX_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

fn head_of(format: &KeyFormat) -> String {
    format!("{}_", format.prefix().as_str())
}

/// Property 1 for one presented string; returns whether it parsed.
fn check_presented(format: &KeyFormat, s: &str) -> bool {
    let head = head_of(format);
    let got = format.parse(s);
    assert_eq!(
        got.map(|_| ()),
        model_parse(&head, s),
        "parse disagrees with the model for {s:?}"
    );
    let Ok(parsed) = got else { return false };
    let p = parsed.as_str();
    assert_eq!(p, s, "ParsedKey must be the input itself");
    assert_eq!(p.len(), format.key_len());
    assert!(p.starts_with(&head));
    assert!(
        p.as_bytes()[head.len()..]
            .iter()
            .all(|c| BASE62.contains(c))
    );
    if head == "agpt_" {
        // ^agpt_[0-9A-Za-z]{49}$
        assert_eq!(p.len(), 54);
        assert_eq!(RANDOM_LEN + CHECKSUM_LEN, 49);
    }
    let again = format.parse(p).expect("re-parsing a parsed key is stable");
    assert_eq!(again.as_str(), p);
    true
}

fn check_generated(format: &KeyFormat, key: &PlainKey) {
    let s = key.expose();
    let head = head_of(format);
    assert_eq!(s.len(), format.key_len());
    assert!(s.starts_with(&head));
    assert!(check_presented(format, s), "a generated key must parse");
    assert_eq!(key.display_prefix(), &s[..DISPLAY_LEN]);
    assert_eq!(key.display_postfix(), &s[s.len() - DISPLAY_LEN..]);
    assert!(
        !format!("{key:?}").contains(&s[head.len()..]),
        "Debug shows the secret"
    );
}

/// Reads the fuzz input front to back; zeros once it runs out.
struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// An ASCII character from one byte, or any `char` from four.
    fn char(&mut self) -> char {
        let b = self.byte();
        if b < 0x80 {
            return b as char;
        }
        let v = u32::from_le_bytes([self.byte(), self.byte(), self.byte(), 0]) % 0x11_0000;
        char::from_u32(v).unwrap_or('\u{FFFD}')
    }
}

/// Deterministic randomness for `generate_with`, seeded from the whole input so a
/// crash reproduces (splitmix64; it yields bytes below 248 often enough to finish).
fn byte_source(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut state = seed;
    move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Property 3: one single-character mutation of `key`, chosen by the input.
fn mutate(format: &KeyFormat, key: &str, input: &mut Input<'_>) {
    let len = key.len(); // ASCII: byte positions are character positions
    let body_end = len - CHECKSUM_LEN;
    let op = input.byte() % 4;
    let pos = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
    let mut mutated = key.to_owned();
    // (identity, detection strictly guaranteed)
    let (identity, guaranteed) = match op {
        0 => {
            let p = pos % len;
            let c = input.char();
            mutated.replace_range(p..p + 1, c.encode_utf8(&mut [0; 4]));
            (mutated == key, true)
        }
        1 => {
            mutated.remove(pos % len);
            (false, true)
        }
        2 => {
            mutated.insert(pos % (len + 1), input.char());
            (false, true)
        }
        _ => {
            let p = pos % (len - 1);
            // Both characters are ASCII, so swapping bytes keeps the string UTF-8.
            let mut bytes = mutated.into_bytes();
            bytes.swap(p, p + 1);
            mutated = String::from_utf8(bytes).expect("ASCII stays UTF-8");
            (mutated == key, p + 1 != body_end)
        }
    };
    let parsed = check_presented(format, &mutated);
    if identity {
        assert!(parsed, "the unmutated key must parse");
    } else if guaranteed {
        assert!(
            !parsed,
            "single-character mutation (op {op}) of a valid key parsed: {mutated:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let default = KeyFormat::default();
    assert_eq!(default.key_len(), 54);

    // 1. The whole input as a presented key (lossily decoded when not UTF-8).
    let presented = String::from_utf8_lossy(data);
    check_presented(&default, &presented);

    // 2. A custom prefix taken from the input.
    let mut input = Input { data };
    let n = usize::from(input.byte() % 20);
    let raw_prefix = String::from_utf8_lossy(input.take(n)).into_owned();
    let custom = match KeyPrefix::parse(&raw_prefix) {
        Ok(prefix) => {
            assert!(model_prefix_ok(&raw_prefix), "accepted {raw_prefix:?}");
            assert_eq!(prefix.as_str(), raw_prefix);
            let format = KeyFormat::new(prefix);
            check_presented(&format, &presented);
            Some(format)
        }
        Err(_) => {
            assert!(!model_prefix_ok(&raw_prefix), "refused {raw_prefix:?}");
            None
        }
    };

    // 3. Generated keys and their single-character mutations.
    let mut seed = u64::from(crc32fast::hash(data)) << 32 | data.len() as u64;
    for format in std::iter::once(&default).chain(custom.as_ref()) {
        seed = seed.rotate_left(17) ^ 0xA5A5_A5A5;
        let key = format.generate_with(byte_source(seed));
        check_generated(format, &key);
        for _ in 0..4 {
            mutate(format, key.expose(), &mut input);
        }
        if format.prefix().as_str() != "agpt" {
            assert_eq!(
                default.parse(key.expose()).unwrap_err(),
                KeyFormatError::MissingPrefix
            );
        }
    }
    // `generate()` itself (OS randomness, as the service uses it): shape only, so
    // that every assertion above stays reproducible from the input alone.
    check_generated(&default, &default.generate());
});
