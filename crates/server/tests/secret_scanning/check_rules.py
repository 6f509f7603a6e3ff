"""Checks docs/secret-scanning's rules against a corpus of real keys and lookalikes.

Run by crates/server/tests/cli/secret_scanning_rules.rs, which makes the corpus with
keyward's own key code and writes a manifest of every occurrence in it:

    {"key_prefixes": ["agpt", "acme"], "credential_prefix": "kwsvc",
     "occurrences": [{"file", "line", "token", "key", "prefix",
                      "kind": "real" | "bad-checksum" | "glued" | "lookalike", "what"}]}

`token` is the text written, one a line. `real`: a key or credential as keyward made
it. `bad-checksum`: one with a character changed (right shape, wrong CRC32). `glued`: a
real one (`key`) with word characters against it (`xagpt_…`, `agpt_…Z`, `%3Dagpt_…`).
`lookalike`: anything else near one (too short, too long, another prefix).

(a) The regex-only rules (gitleaks, trufflehog, GitHub's custom pattern) are applied with
    Python's `re` to every file. For each prefix (the key rules with `agpt` replaced, as
    the docs tell), they must find every real key and every bad-checksum lookalike of
    that prefix (documented false positives), and nothing else: not the glued keys
    (documented false negatives of their word boundaries).
(b) detect-secrets, with the plugin, must find exactly the real and the glued keys and
    credentials, as `keyward scan` does.

Needs detect-secrets (crates/server/tests/secret_scanning/requirements.txt), which
brings PyYAML. Writes nothing but its output.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
import zlib
from dataclasses import dataclass
from typing import Callable

import yaml

DOC_PREFIX = "agpt"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Constructs of Python's re that RE2 (Go's regexp: gitleaks, trufflehog) lacks:
# lookaround, backreferences, atomic groups, conditionals.
NOT_RE2 = re.compile(r"\(\?(?:<[=!]|[=!>]|P=|\()|\\[1-9]")

Occurrence = tuple[str, int, str]  # file, line, token


@dataclass
class Rule:
    scanner: str
    name: str
    kind: str  # key | credential
    pattern: str  # as written in the doc, for the default prefix
    keywords: list[str]
    finder: Callable[[str, str], list[tuple[int, str]]]  # (text, prefix) -> (start, token)


def checksum_ok(token: str) -> bool:
    """Independent of the plugin's: CRC32 of all but the last 6 characters, as 6
    big-endian base62 digits."""
    value = 0
    for c in token[-6:]:
        value = value * 62 + ALPHABET.index(c)
    return value == zlib.crc32(token[:-6].encode())


def for_prefix(pattern: str, prefix: str) -> str:
    return pattern.replace(DOC_PREFIX, prefix)


def plain_finder(pattern: str) -> Callable[[str, str], list[tuple[int, str]]]:
    """gitleaks and trufflehog report the whole match (neither rule has a group).
    re.ASCII: Go's \\b is ASCII."""

    def find(text: str, prefix: str) -> list[tuple[int, str]]:
        regex = re.compile(for_prefix(pattern, prefix), re.ASCII)
        return [(m.start(), m.group(0)) for m in regex.finditer(text)]

    return find


def github_finder(before: str, secret: str, after: str) -> Callable[[str, str], list[tuple[int, str]]]:
    """GitHub matches before, secret and after in a row and reports the secret. The
    lookahead tries every position, so a character taken by one match's `after` can
    still be the next one's `before`. Python's re spells `\\z` as `\\Z` (before 3.14)."""

    def find(text: str, prefix: str) -> list[tuple[int, str]]:
        joined = f"(?=(?:{before})({for_prefix(secret, prefix)})(?:{after}))"
        regex = re.compile(joined.replace(r"\z", r"\Z"), re.ASCII)
        return sorted({(m.start(1), m.group(1)) for m in regex.finditer(text)})

    return find


def gitleaks_rules(path: str) -> list[Rule]:
    with open(path, "rb") as f:
        config = tomllib.load(f)
    assert config.get("extend", {}).get("useDefault") is True, f"{path}: [extend] useDefault = true"
    rules = {r["id"]: r for r in config["rules"]}
    assert sorted(rules) == ["keyward-api-key", "keyward-service-credential"], f"{path}: {sorted(rules)}"
    for rule in rules.values():
        assert rule.get("description"), f"{path}: {rule['id']} has no description"
        assert "secretGroup" not in rule, f"{path}: {rule['id']}: the whole match is the secret"
    return [
        Rule("gitleaks", rid, kind, rules[rid]["regex"], rules[rid]["keywords"], plain_finder(rules[rid]["regex"]))
        for rid, kind in (("keyward-api-key", "key"), ("keyward-service-credential", "credential"))
    ]


def trufflehog_rules(path: str) -> list[Rule]:
    with open(path) as f:
        config = yaml.safe_load(f)
    detectors = {d["name"]: d for d in config["detectors"]}
    assert sorted(detectors) == ["KeywardApiKey", "KeywardServiceCredential"], f"{path}: {sorted(detectors)}"
    out = []
    for name, kind in (("KeywardApiKey", "key"), ("KeywardServiceCredential", "credential")):
        d = detectors[name]
        assert "verify" not in d, f"{path}: {name}: no verify endpoint fits (see the file's comment)"
        assert list(d["regex"]) == ["key"], f"{path}: {name}: one regex, named key"
        out.append(Rule("trufflehog", name, kind, d["regex"]["key"], d["keywords"], plain_finder(d["regex"]["key"])))
    return out


def github_rules(path: str) -> tuple[list[Rule], list[tuple[str, str]]]:
    """The patterns of github-custom-pattern.md, and its test strings (kind, text)."""
    with open(path) as f:
        text = f.read()
    sections = dict(re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    rules, tests = [], []
    for title, kind in (("Keys", "key"), ("Service credentials", "credential")):
        assert title in sections, f"{path}: no section ## {title}"
        fields = dict(re.findall(r"^\*\*([^*\n]+)\*\*\n\n```text\n(.*?)\n```", sections[title], re.S | re.M))
        want = ["After secret", "Before secret", "Pattern name", "Secret format", "Test string"]
        assert sorted(fields) == want, f"{path}: {title}: fields {sorted(fields)}, want {want}"
        secret, before, after = fields["Secret format"], fields["Before secret"], fields["After secret"]
        # Hyperscan's syntax is PCRE's; keep to what RE2 and Python's re share too.
        for field in (secret, before, after):
            assert not NOT_RE2.search(field), f"{path}: {title}: {field!r} is not in the common subset"
        rules.append(Rule("github", fields["Pattern name"], kind, secret, [], github_finder(before, secret, after)))
        tests.append((kind, fields["Test string"]))
    return rules, tests


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def check_regex_rules(rules: list[Rule], corpus: str, manifest: dict, failures: list[str]) -> None:
    files = {}
    for name in sorted({o["file"] for o in manifest["occurrences"]}):
        with open(os.path.join(corpus, name)) as f:
            files[name] = f.read()
    # One occurrence a line: what a wrong match hit, whatever it took of the line.
    what = {(o["file"], o["line"]): f"{o['kind']} ({o['what']}: {o['token']})" for o in manifest["occurrences"]}
    for rule in rules:
        label = f"{rule.scanner} {rule.name}"
        if NOT_RE2.search(rule.pattern):
            failures.append(f"{label}: {rule.pattern!r} uses a construct RE2 (Go's regexp) lacks")
        if rule.scanner != "github":
            # Both scanners run a rule only on text holding one of its keywords, which
            # gitleaks compares in lowercase.
            if not rule.keywords or any(k != k.lower() for k in rule.keywords):
                failures.append(f"{label}: keywords {rule.keywords} must be given, in lowercase")
        prefixes = manifest["key_prefixes"] if rule.kind == "key" else [manifest["credential_prefix"]]
        for prefix in prefixes:
            if rule.kind == "key" and DOC_PREFIX not in rule.pattern:
                failures.append(f"{label}: {rule.pattern!r} has no {DOC_PREFIX} to replace")
            found: set[Occurrence] = set()
            for name, text in files.items():
                for start, token in rule.finder(text, prefix):
                    found.add((name, line_of(text, start), token))
            expected = {
                (o["file"], o["line"], o["token"])
                for o in manifest["occurrences"]
                if o["prefix"] == prefix and o["kind"] in ("real", "bad-checksum")
            }
            for file, line, _ in sorted(expected - found):
                failures.append(f"{label} [{prefix}] missed {what[file, line]} at {file}:{line}")
            for file, line, token in sorted(found - expected):
                failures.append(
                    f"{label} [{prefix}] matched {token} in {what.get((file, line), 'a line')} at {file}:{line}"
                )
            for token in {t for _, _, t in found}:
                keywords = [for_prefix(k, prefix) for k in rule.keywords]
                if keywords and not any(k in token.lower() for k in keywords):
                    failures.append(f"{label} [{prefix}]: no keyword of {keywords} in {token}")
            real = sum(1 for file, line, _ in expected if what[file, line].startswith("real"))
            print(f"{label} [{prefix}]: {real} real found, {len(expected) - real} bad-checksum lookalikes "
                  f"matched too and glued keys missed (documented), other lookalikes not matched")


def check_github_test_strings(rules: list[Rule], tests: list[tuple[str, str]], manifest: dict, failures: list[str]) -> None:
    for rule, (kind, test) in zip(rules, tests):
        prefix = DOC_PREFIX if kind == "key" else manifest["credential_prefix"]
        matches = rule.finder(test, prefix)
        if len(matches) != 1:
            failures.append(f"github {rule.name}: the test string {test!r} gives {matches}, not one match")
        elif checksum_ok(matches[0][1]):
            failures.append(f"github {rule.name}: the test string's checksum is right; the doc says it is made up")


def detect_secrets(plugin: str, corpus: str, prefix: str) -> dict:
    env = dict(os.environ, KEYWARD_KEY_PREFIX=prefix, PYTHONDONTWRITEBYTECODE="1")
    # One process (-c 1, before the action): the machine may have two cores.
    base = [sys.executable, "-m", "detect_secrets", "-c", "1", "scan", "--plugin", plugin]
    listed = subprocess.run(base + ["--list-all-plugins"], env=env, capture_output=True, text=True, check=True)
    plugins = listed.stdout.split()
    ours = {"KeywardKeyDetector", "KeywardCredentialDetector"}
    assert ours <= set(plugins), f"detect-secrets does not list the plugin's detectors: {plugins}"
    # Only ours: the built-in ones would only add noise to filter out.
    disable = [arg for name in plugins if name not in ours for arg in ("--disable-plugin", name)]
    scan = subprocess.run(
        base + disable + ["--all-files", "."],
        cwd=corpus, env=env, capture_output=True, text=True,
    )
    assert scan.returncode == 0, f"detect-secrets failed ({scan.returncode}):\n{scan.stderr}"
    return json.loads(scan.stdout)


def check_detect_secrets(plugin: str, corpus: str, manifest: dict, failures: list[str]) -> None:
    types = {"key": "keyward API Key", "credential": "keyward Service Credential"}
    credential = manifest["credential_prefix"]
    # detect-secrets reports the SHA-1 of what the plugin yielded: the key itself.
    sha1 = {t: hashlib.sha1(t.encode()).hexdigest() for o in manifest["occurrences"] for t in (o["token"], o["key"]) if t}
    described = {(o["file"], o["line"]): f"{o['kind']} ({o['what']}: {o['token']})" for o in manifest["occurrences"]}
    for prefix in manifest["key_prefixes"]:
        report = detect_secrets(plugin, corpus, prefix)
        for kind, wanted in (("key", prefix), ("credential", credential)):
            found = {
                (s["filename"], s["line_number"], s["hashed_secret"])
                for secrets in report["results"].values()
                for s in secrets
                if s["type"] == types[kind]
            }
            expected = {
                (o["file"], o["line"], sha1[o["key"]])
                for o in manifest["occurrences"]
                if o["prefix"] == wanted and o["kind"] in ("real", "glued")
            }
            label = f"detect-secrets {types[kind]} [KEYWARD_KEY_PREFIX={prefix}]"
            for file, line, _ in sorted(expected - found):
                failures.append(f"{label} missed {described[file, line]} at {file}:{line}")
            for file, line, _ in sorted(found - expected):
                failures.append(f"{label} reported {described.get((file, line), 'a line')} at {file}:{line}")
            glued = sum(1 for o in manifest["occurrences"] if o["prefix"] == wanted and o["kind"] == "glued")
            print(f"{label}: {len(found & expected) - glued} real found, {glued} glued to other "
                  f"characters found too, no lookalike")
        others = {s["type"] for secrets in report["results"].values() for s in secrets} - set(types.values())
        if others:
            failures.append(f"detect-secrets reported other types: {others}")
    # A prefix keyward would refuse is refused here too, loudly.
    env = dict(os.environ, KEYWARD_KEY_PREFIX=credential, PYTHONDONTWRITEBYTECODE="1")
    refused = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan", "--plugin", plugin, "--list-all-plugins"],
        env=env, capture_output=True, text=True,
    )
    if refused.returncode == 0 or "KEYWARD_KEY_PREFIX" not in refused.stderr:
        failures.append(f"KEYWARD_KEY_PREFIX={credential} was not refused: {refused.stderr[-300:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", required=True, help="docs/secret-scanning")
    parser.add_argument("--corpus", required=True, help="the corpus directory")
    parser.add_argument("--manifest", required=True, help="the corpus's manifest (JSON)")
    args = parser.parse_args()
    with open(args.manifest) as f:
        manifest = json.load(f)

    failures: list[str] = []
    lines = [(o["file"], o["line"]) for o in manifest["occurrences"]]
    assert len(set(lines)) == len(lines), "the manifest must have one occurrence a line"
    # The corpus is what it says it is (the CRC32 here is independent of keyward's).
    for o in manifest["occurrences"]:
        if o["kind"] in ("real", "bad-checksum") and checksum_ok(o["token"]) != (o["kind"] == "real"):
            failures.append(f"corpus: {o['token']} is {o['kind']} but its checksum says otherwise")
        if (o["key"] is not None) != (o["kind"] in ("real", "glued")) or (o["key"] and not checksum_ok(o["key"])):
            failures.append(f"corpus: {o['token']} ({o['kind']}) has key {o['key']}")

    github, tests = github_rules(os.path.join(args.docs, "github-custom-pattern.md"))
    rules = (
        gitleaks_rules(os.path.join(args.docs, "gitleaks.toml"))
        + trufflehog_rules(os.path.join(args.docs, "trufflehog.yaml"))
        + github
    )
    check_regex_rules(rules, args.corpus, manifest, failures)
    check_github_test_strings(github, tests, manifest, failures)
    check_detect_secrets(os.path.join(args.docs, "keyward_detect_secrets.py"), args.corpus, manifest, failures)

    for failure in failures:
        print(f"FAIL {failure}")
    print(f"{len(failures)} failures" if failures else "all rules behave as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
