//! Finding keys in bytes: every string of this deployment's key format, or a service
//! credential's, whose checksum holds. A regular expression finds lookalikes too
//! (`agpt_` and 49 letters); the checksum tells a real key from one with a 2⁻³² chance
//! of error, without a database.
//!
//! No word boundary is asked for: a real key glued to other letters
//! (`Xagpt_…`, `…agpt_…Z`) is still a real key, and found. Input is fed in chunks of
//! any size ([`Scanner::feed`]), so a file of any length is read in bounded memory and
//! a key split across two reads is still found.

use std::fmt;

use crate::credential::credential_format;
use crate::key::{DISPLAY_LEN, KeyFormat, PlainKey};

/// What kind of secret a found string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// A user's API key (`KEYWARD_KEY_PREFIX`).
    Key,
    /// A service credential (`kwsvc_`).
    Credential,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Credential => "credential",
        }
    }
}

/// A key found, where it was: the line (from 1) and the byte offset of its first
/// character. `Debug` never shows the key.
#[derive(Clone)]
pub struct Found {
    pub kind: SecretKind,
    pub line: u64,
    pub offset: u64,
    pub key: PlainKey,
}

impl Found {
    /// Enough to recognise it, never enough to use it: the characters an API key's
    /// record shows as its prefix (`agpt_AbC`) and the last four.
    pub fn visible(&self) -> String {
        let key = self.key.expose();
        format!("{}…{}", &key[..DISPLAY_LEN], &key[key.len() - 4..])
    }
}

impl fmt::Debug for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Found")
            .field("kind", &self.kind)
            .field("line", &self.line)
            .field("offset", &self.offset)
            .field("key", &self.visible())
            .finish()
    }
}

/// The formats looked for: this deployment's keys and the service credentials.
#[derive(Clone, Debug)]
pub struct Finder {
    formats: Vec<(KeyFormat, SecretKind)>,
    /// Which bytes may start a key: the first byte of a format's prefix.
    starts: [bool; 256],
    /// The longest key of any format.
    longest: usize,
}

impl Finder {
    pub fn new(keys: &KeyFormat) -> Self {
        // Keys may not take the credentials' prefix (`KeyPrefix::parse`).
        let formats = vec![
            (keys.clone(), SecretKind::Key),
            (credential_format().clone(), SecretKind::Credential),
        ];
        let mut starts = [false; 256];
        for (format, _) in &formats {
            starts[usize::from(format.prefix().as_str().as_bytes()[0])] = true;
        }
        let longest = formats.iter().map(|(f, _)| f.key_len()).max().unwrap_or(0);
        Self {
            formats,
            starts,
            longest,
        }
    }

    /// A scanner for one input (a file, a blob).
    pub fn scanner(&self) -> Scanner<'_> {
        Scanner {
            finder: self,
            buffer: Vec::new(),
            offset: 0,
            line: 1,
        }
    }

    /// Every key in `bytes`, in order.
    pub fn find_all(&self, bytes: &[u8]) -> Vec<Found> {
        let mut scanner = self.scanner();
        let mut found = Vec::new();
        scanner.feed(bytes, &mut |f| found.push(f));
        scanner.finish(&mut |f| found.push(f));
        found
    }

    fn len_of(&self, kind: SecretKind) -> usize {
        self.formats
            .iter()
            .find(|(_, k)| *k == kind)
            .map_or(1, |(format, _)| format.key_len())
    }

    /// The key starting at `bytes[0]`, if one does.
    fn at(&self, bytes: &[u8]) -> Option<(SecretKind, PlainKey)> {
        self.formats.iter().find_map(|(format, kind)| {
            let candidate = bytes.get(..format.key_len())?;
            let text = std::str::from_utf8(candidate).ok()?;
            let parsed = format.parse(text).ok()?;
            Some((*kind, parsed.to_plain()))
        })
    }
}

/// One input's scan, fed in chunks. Holds at most one key's length of bytes between
/// chunks.
pub struct Scanner<'f> {
    finder: &'f Finder,
    /// Bytes not yet passed: starts not yet tried.
    buffer: Vec<u8>,
    /// The input's offset of `buffer[0]`.
    offset: u64,
    /// The line of `buffer[0]`.
    line: u64,
}

impl Scanner<'_> {
    /// Looks at the next bytes of the input; `found` hears of each key whose every
    /// byte has been fed.
    pub fn feed(&mut self, chunk: &[u8], found: &mut impl FnMut(Found)) {
        self.buffer.extend_from_slice(chunk);
        // Every start before `ready` has a whole longest key's bytes after it.
        let ready = (self.buffer.len() + 1).saturating_sub(self.finder.longest);
        self.pass(ready, found);
    }

    /// The end of the input: the last starts are tried with what is there.
    pub fn finish(mut self, found: &mut impl FnMut(Found)) {
        let all = self.buffer.len();
        self.pass(all, found);
    }

    /// Tries every start in `buffer[..end]`, then drops those bytes.
    fn pass(&mut self, end: usize, found: &mut impl FnMut(Found)) {
        let finder = self.finder;
        let (mut counted, mut line) = (0, self.line);
        let mut start = 0;
        while start < end {
            if finder.starts[usize::from(self.buffer[start])]
                && let Some((kind, key)) = finder.at(&self.buffer[start..])
            {
                line += newlines(&self.buffer[counted..start]);
                counted = start;
                found(Found {
                    kind,
                    line,
                    offset: self.offset + start as u64,
                    key,
                });
                // Keys cannot overlap: the prefix's `_` is not in the alphabet.
                start += finder.len_of(kind);
                continue;
            }
            start += 1;
        }
        let end = end.max(start.min(self.buffer.len()));
        self.line = line + newlines(&self.buffer[counted..end]);
        self.offset += end as u64;
        self.buffer.drain(..end);
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyPrefix;

    fn finder() -> Finder {
        Finder::new(&KeyFormat::default())
    }

    /// `key` with its character at `index` replaced by another letter of the alphabet.
    fn changed(key: &str, index: usize) -> String {
        let mut bytes = key.as_bytes().to_vec();
        bytes[index] = if bytes[index] == b'a' { b'b' } else { b'a' };
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn real_keys_are_found_in_any_context_and_lookalikes_never() {
        let format = KeyFormat::default();
        let (a, b) = (format.generate(), format.generate());
        let credential = credential_format().generate();
        let (a, b, credential) = (a.expose(), b.expose(), credential.expose());
        let text = format!(
            "API_KEY={a}\n\n{{\"key\": \"{b}\"}}\n\
             bad checksum {}\nbad body {}\nshort {}\nlong {a}Z and X{b}\n\
             https://x.example/?token={credential}&x=1\n",
            changed(a, a.len() - 1),
            changed(a, 10),
            &a[..a.len() - 1],
        );
        let found = finder().find_all(text.as_bytes());
        let summary: Vec<(SecretKind, u64, &str)> = found
            .iter()
            .map(|f| (f.kind, f.line, f.key.expose()))
            .collect();
        assert_eq!(
            summary,
            [
                (SecretKind::Key, 1, a),
                (SecretKind::Key, 3, b),
                (SecretKind::Key, 7, a),
                (SecretKind::Key, 7, b),
                (SecretKind::Credential, 8, credential),
            ]
        );
        assert_eq!(found[0].offset, "API_KEY=".len() as u64);
    }

    #[test]
    fn a_key_split_across_chunks_of_any_size_is_found_on_its_line() {
        let key = KeyFormat::default().generate();
        let key = key.expose();
        let text = format!("one\ntwo {key}\nthree\n{key}");
        let finder = finder();
        let expected = finder.find_all(text.as_bytes());
        assert_eq!(expected.len(), 2);
        for size in [1, 2, 7, 53, 54, 55, 100] {
            let mut scanner = finder.scanner();
            let mut got = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                scanner.feed(chunk, &mut |f| got.push((f.line, f.offset)));
            }
            scanner.finish(&mut |f| got.push((f.line, f.offset)));
            let want: Vec<_> = expected.iter().map(|f| (f.line, f.offset)).collect();
            assert_eq!(got, want, "chunks of {size}");
            assert_eq!(got[0], (2, 8));
        }
    }

    #[test]
    fn another_prefix_finds_its_own_keys_only() {
        let acme = KeyFormat::new(KeyPrefix::parse("acme").unwrap());
        let theirs = KeyFormat::default().generate();
        let ours = acme.generate();
        let text = format!("{} {}", theirs.expose(), ours.expose());
        let found = Finder::new(&acme).find_all(text.as_bytes());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key.expose(), ours.expose());
    }

    #[test]
    fn a_found_key_shows_its_prefix_and_last_four_only() {
        let key = KeyFormat::default().generate();
        let found = finder().find_all(key.expose().as_bytes());
        let visible = found[0].visible();
        assert_eq!(
            visible,
            format!("{}…{}", &key.expose()[..8], &key.expose()[50..])
        );
        assert!(!format!("{:?}", found[0]).contains(&key.expose()[8..50]));
    }

    #[test]
    fn binary_and_invalid_utf8_around_a_key_do_not_hide_it() {
        let key = KeyFormat::default().generate();
        let mut bytes = vec![0xff, 0x00, 0xfe, b'a', b'g'];
        bytes.extend_from_slice(key.expose().as_bytes());
        bytes.extend_from_slice(&[0x80, 0x00]);
        let found = finder().find_all(&bytes);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].offset, 5);
    }
}
