"""keyward keys and service credentials, for detect-secrets (Yelp's, on PyPI).

    detect-secrets scan --plugin docs/secret-scanning/keyward_detect_secrets.py

A key is the deployment's prefix (KEYWARD_KEY_PREFIX, `agpt` by default), `_`, 43
random base62 characters and 6 base62 characters of the CRC32 of everything before
them. Service credentials have the same shape under the prefix `kwsvc`. Unlike a
regular expression alone, this plugin checks the checksum, as `keyward scan` does: a
lookalike (a typo, an example made up by hand) is not reported, and a key glued to
other letters is.

Set KEYWARD_KEY_PREFIX to your deployment's prefix whenever detect-secrets runs with
this plugin (scan, audit, the pre-commit hook): the baseline records the plugin's path,
not the prefix. Tested with detect-secrets 1.5.0.
"""

import os
import re
import zlib
from typing import Generator
from typing import Pattern

from detect_secrets.plugins.base import RegexBasedDetector

# The keys' alphabet, in the order of the checksum's digits (crates/core/src/key.rs).
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
_CHECKSUM_LEN = 6
_CREDENTIAL_PREFIX = "kwsvc"


def _prefix() -> str:
    prefix = os.environ.get("KEYWARD_KEY_PREFIX") or "agpt"
    # As keyward itself accepts it: 1-16 lowercase ASCII letters or digits, starting
    # with a letter, and not the credentials' prefix.
    if not re.fullmatch(r"[a-z][a-z0-9]{0,15}", prefix) or prefix == _CREDENTIAL_PREFIX:
        raise ValueError(
            f"KEYWARD_KEY_PREFIX={prefix!r}: a key prefix is 1-16 lowercase ASCII letters "
            f"or digits, starting with a letter, and not {_CREDENTIAL_PREFIX!r}"
        )
    return prefix


def _pattern(prefix: str) -> Pattern[str]:
    # Every place the prefix starts, word boundary or not (the lookahead lets matches
    # overlap): with the checksum checked, a key glued to other letters (`%3Dagpt_…`,
    # `\nagpt_…` in an escaped string, `agpt_…Z`) is still a key, as `keyward scan`
    # finds it, and the first 49 of a longer run of letters fail the checksum.
    return re.compile(rf"(?=({prefix}_[0-9A-Za-z]{{49}}))")


def checksum_ok(token: str) -> bool:
    """True when the last 6 characters are the CRC32 (zlib's, IEEE) of the rest, as
    big-endian base62 digits. Six digits above 2**32 - 1 never match."""
    body, digits = token[:-_CHECKSUM_LEN], token[-_CHECKSUM_LEN:]
    value = 0
    for c in digits:
        value = value * 62 + _DIGIT[c]
    return value == zlib.crc32(body.encode("ascii"))


class _ChecksummedDetector(RegexBasedDetector):
    """Reports only the matches whose checksum is right. Without a `secret_type` of its
    own, detect-secrets does not take it for a plugin."""

    def analyze_string(self, string: str) -> Generator[str, None, None]:
        for match in super().analyze_string(string):
            if checksum_ok(match):
                yield match


class KeywardKeyDetector(_ChecksummedDetector):
    """keyward API keys of the prefix KEYWARD_KEY_PREFIX (`agpt` by default)."""

    secret_type = "keyward API Key"
    denylist = (_pattern(_prefix()),)


class KeywardCredentialDetector(_ChecksummedDetector):
    """keyward service credentials (`kwsvc_…`)."""

    secret_type = "keyward Service Credential"
    denylist = (_pattern(_CREDENTIAL_PREFIX),)
