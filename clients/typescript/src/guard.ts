// What every guard does, whatever the framework: read the key from `X-API-Key` (else
// `Authorization: Bearer`), ask keyward, and turn the verdict into a pass or a refusal
// with the status and sentence of the shared table (refusals.ts). It fails closed:
// anything but keyward's VALID with the key's identity is a refusal, and a keyward
// that cannot be asked is a 503.

import { KeywardError, type KeywardClient, type Verdict } from "./index.js";
import { refusal, refusalKindOf, type RefusalText } from "./refusals.js";

/** The key a guard let through, and whose it is. */
export interface VerifiedKey {
  userId: string;
  keyId: string;
  permissions: string[];
  /** The key's metadata (its owner's JSON object), if it has some. */
  metadata: Record<string, unknown> | null;
  /** The key's usage credits left, if it has some. */
  remaining: number | null;
}

export interface GuardOptions {
  /** A client holding a service credential with the `keys.verify` scope. */
  client: KeywardClient;
  /** Every one of these the key must hold (names from keyward's catalogue). */
  permissions?: readonly string[];
  /** Usage credits a request takes from a key that has them (default 1). */
  cost?: number;
}

export type Outcome =
  | { ok: true; key: VerifiedKey }
  | { ok: false; status: number; body: { detail: string }; headers: Record<string, string> };

/** Longer than any key keyward makes or imports: refused without asking. */
const MAX_KEY_LENGTH = 1024;
/** keyward's rule for permission names, to name an unknown verdict code safely. */
const NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** The key a request presents: `X-API-Key` if sent (blank: none), else a bearer token. */
export function presentedKey(
  xApiKey: string | null | undefined,
  authorization: string | null | undefined,
): string | null {
  if (xApiKey !== null && xApiKey !== undefined) {
    const key = xApiKey.trim();
    return key === "" ? null : key;
  }
  if (!authorization) return null;
  const space = authorization.indexOf(" ");
  if (space < 0 || authorization.slice(0, space).toLowerCase() !== "bearer") return null;
  const token = authorization.slice(space + 1).trim();
  return token === "" ? null : token;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * `ip` if it is an IP address (an IPv4-mapped IPv6 one as IPv4, a zone dropped), else
 * undefined: a proxy's `unknown` or a garbled header is no address, rather than an
 * error of the whole request. Works where `node:net` does not (edge runtimes).
 */
export function address(ip: string | null | undefined): string | undefined {
  if (!ip) return undefined;
  let text = ip.trim().split("%")[0] ?? "";
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  if (mapped) text = mapped[1] ?? "";
  if (IPV4.test(text)) return text;
  // IPv6: hex digits, colons and an embedded IPv4's dots only, then parsed.
  if (!text.includes(":") || !/^[0-9a-f:.]+$/i.test(text)) return undefined;
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
}

function refused(text: RefusalText, headers: Record<string, string> = {}): Outcome {
  if (text.status === 401) headers = { "WWW-Authenticate": "Bearer", ...headers };
  return { ok: false, status: text.status, body: { detail: text.detail }, headers };
}

const internal: Outcome = { ok: false, status: 500, body: { detail: "Internal error" }, headers: {} };

/** The outcome of a request presenting `key` (as read by [[presentedKey]]). */
export async function check(
  options: GuardOptions,
  key: string | null,
  clientIp: string | undefined,
): Promise<Outcome> {
  if (key === null) return refused(refusal("MISSING_KEY"));
  if (key.length > MAX_KEY_LENGTH) return refused(refusal("INVALID"));
  const required = options.permissions ?? [];
  let verdict: Verdict;
  try {
    verdict = await options.client.verifyKey(key, {
      permissions: required,
      clientIp: address(clientIp),
      cost: options.cost,
    });
  } catch (err) {
    if (err instanceof KeywardError && (err.status === 401 || err.status === 403)) {
      console.error(
        `keyward refused this service's credential (${err.message}): give the KeywardClient a credential holding keys.verify`,
      );
      return internal;
    }
    if (err instanceof KeywardError && (err.status === 400 || err.status === 422)) {
      console.error(
        `keyward refused this route's permissions or cost (${err.detail ?? err.message}): use names from keyward's catalogue`,
      );
      return internal;
    }
    // Unreachable, failing, or anything unexpected: never a pass.
    console.warn(`keyward could not verify a key: ${err instanceof Error ? err.message : err}`);
    return refused(refusal("UNAVAILABLE"));
  }
  try {
    return decide(verdict, required);
  } catch (err) {
    // A 200 whose body is not a verdict (a proxy's page, say): refused, never a pass.
    console.warn(`keyward's answer was not a verdict: ${err instanceof Error ? err.message : err}`);
    return refused(refusal("UNAVAILABLE"));
  }
}

/** A verdict as a pass or a refusal. */
export function decide(verdict: Verdict, required: readonly string[]): Outcome {
  if (typeof verdict !== "object" || verdict === null || typeof verdict.code !== "string") {
    throw new TypeError("no verdict code");
  }
  const kind = refusalKindOf(verdict.code);
  if (kind === null) {
    if (verdict.valid && verdict.user_id && verdict.key_id) {
      return {
        ok: true,
        key: {
          userId: verdict.user_id,
          keyId: verdict.key_id,
          permissions: [...(verdict.permissions ?? [])],
          metadata: (verdict.metadata as Record<string, unknown> | null | undefined) ?? null,
          remaining: verdict.remaining ?? null,
        },
      };
    }
    console.warn("keyward answered VALID without the key's identity");
    return refused(refusal("UNAVAILABLE"));
  }
  switch (kind) {
    case "MISSING_PERMISSIONS": {
      const held = verdict.permissions ?? [];
      const missing = required.filter((name) => !(held as readonly string[]).includes(name));
      return refused(refusal(kind, { missing }));
    }
    case "RATE_LIMITED": {
      const seconds = Math.max(1, Math.ceil(verdict.retry_after ?? 1));
      return refused(refusal(kind), { "Retry-After": String(seconds) });
    }
    case "UNRECOGNIZED":
      // A code newer than this client: refused by its name, never taken for another.
      return refused(
        refusal(kind, { code: NAME.test(verdict.code) ? verdict.code : "an unknown code" }),
      );
    default:
      return refused(refusal(kind));
  }
}

/** A refusal as a web `Response` (Hono, Next.js and other fetch-style handlers). */
export function refusalResponse(outcome: Extract<Outcome, { ok: false }>): Response {
  return new Response(JSON.stringify(outcome.body), {
    status: outcome.status,
    headers: { "Content-Type": "application/json", ...outcome.headers },
  });
}

/** The end client's address from the user's `clientIp` option; none if it throws. */
export function clientIpOf<T>(pick: ((from: T) => string | undefined) | undefined, from: T) {
  try {
    return pick?.(from);
  } catch {
    return undefined;
  }
}

let warnedNoAddress = false;

/**
 * Without the end client's address, keys bound to networks are refused and keyward's
 * limit on failed attempts per client cannot count anyone: said once, at set-up.
 */
export function warnNoAddress(): void {
  if (warnedNoAddress) return;
  warnedNoAddress = true;
  console.warn(
    "keyward guard without a clientIp option: keys bound to networks are refused, and keyward cannot limit failed attempts per client. Pass clientIp (see @keyward/client's README).",
  );
}
