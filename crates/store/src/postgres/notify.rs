//! What a change notification carries: the changed keys' hashes, in hex, comma
//! separated, as many per notification as PostgreSQL's payload limit allows.

use keyward_core::hash::KeyHash;

use crate::records::ExternalChange;

/// Hashes per notification: 64 hex characters and a comma each, under PostgreSQL's
/// 8000-byte payload limit.
const HASHES_PER_NOTIFY: usize = 100;

/// The payloads announcing that these keys changed.
pub(super) fn payloads(hashes: &[KeyHash]) -> impl Iterator<Item = String> + '_ {
    hashes.chunks(HASHES_PER_NOTIFY).map(|chunk| {
        let hexes: Vec<String> = chunk.iter().map(to_hex).collect();
        hexes.join(",")
    })
}

fn to_hex(hash: &KeyHash) -> String {
    hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<KeyHash> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(KeyHash::from_bytes(bytes))
}

/// The change a notification's payload names: these keys, or (unreadable) any.
pub(super) fn parse(payload: &str) -> ExternalChange {
    let hashes: Option<Vec<KeyHash>> = payload.split(',').map(from_hex).collect();
    match hashes {
        Some(hashes) if !hashes.is_empty() => ExternalChange::Keys(hashes),
        _ => ExternalChange::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads_round_trip() {
        let a = KeyHash::from_bytes([0xab; 32]);
        let b = KeyHash::from_bytes([0x01; 32]);
        let payload = [to_hex(&a), to_hex(&b)].join(",");
        assert_eq!(parse(&payload), ExternalChange::Keys(vec![a, b]));
        assert_eq!(parse(""), ExternalChange::Unknown);
        assert_eq!(parse("zz"), ExternalChange::Unknown);
        assert_eq!(
            parse(&format!("{},nope", to_hex(&a))),
            ExternalChange::Unknown
        );
    }

    #[test]
    fn many_changes_are_split_into_payloads_under_the_limit_and_all_arrive() {
        let hashes: Vec<KeyHash> = (0..=250u8).map(|n| KeyHash::from_bytes([n; 32])).collect();
        let payloads: Vec<String> = payloads(&hashes).collect();
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let arrived: Vec<KeyHash> = payloads
            .iter()
            .flat_map(|p| match parse(p) {
                ExternalChange::Keys(keys) => keys,
                other => panic!("unreadable payload: {other:?}"),
            })
            .collect();
        assert_eq!(arrived, hashes);
    }
}
