// How a guard answers each verdict: the same status and sentence as keyward-guard (Rust),
// the Python client's FastAPI dependency and keyward's forward authentication.
// The table between the markers is JSON that keyward's own tests compare with
// `keyward_core::verify::Refusal` for every verdict code (crates/core/src/verify.rs):
// one source of truth, rendered here.

/** A refusal: its HTTP status and the `detail` sentence a client reads. */
export interface RefusalText {
  status: number;
  detail: string;
}

// refusals: begin
export const REFUSALS = {
  "refusals": {
    "MISSING_KEY": { "status": 401, "detail": "Missing API key" },
    "INVALID": { "status": 401, "detail": "Invalid API key" },
    "MISSING_PERMISSIONS": { "status": 403, "detail": "Missing required permission(s): {missing}" },
    "RATE_LIMITED": { "status": 429, "detail": "Rate limit exceeded" },
    "USAGE_EXCEEDED": { "status": 403, "detail": "API key usage credits exhausted" },
    "IP_NOT_ALLOWED": { "status": 403, "detail": "The API key may not be used from this address" },
    "UNAVAILABLE": { "status": 503, "detail": "The API key cannot be checked right now" },
    "UNRECOGNIZED": { "status": 401, "detail": "The API key was refused ({code})" }
  },
  "codes": {
    "VALID": null,
    "MALFORMED": "INVALID",
    "NOT_FOUND": "INVALID",
    "SUSPENDED": "INVALID",
    "REVOKED": "INVALID",
    "EXPIRED": "INVALID",
    "INSUFFICIENT_PERMISSIONS": "MISSING_PERMISSIONS",
    "RATE_LIMITED": "RATE_LIMITED",
    "USAGE_EXCEEDED": "USAGE_EXCEEDED",
    "IP_NOT_ALLOWED": "IP_NOT_ALLOWED"
  }
} as const;
// refusals: end

export type RefusalKind = keyof typeof REFUSALS.refusals;

/** The refusal for `kind`, its placeholders filled in. */
export function refusal(
  kind: RefusalKind,
  fill: { missing?: readonly string[]; code?: string } = {},
): RefusalText {
  const { status, detail } = REFUSALS.refusals[kind];
  return {
    status,
    detail: detail
      .replace("{missing}", (fill.missing ?? []).join(", "))
      .replace("{code}", fill.code ?? ""),
  };
}

/** What a verdict code means for a request: `null` lets it through. */
export function refusalKindOf(code: string): RefusalKind | null {
  const codes: Record<string, RefusalKind | null> = REFUSALS.codes;
  // Own names only: `toString` or `__proto__` is no verdict code.
  return Object.prototype.hasOwnProperty.call(codes, code) ? (codes[code] ?? null) : "UNRECOGNIZED";
}
