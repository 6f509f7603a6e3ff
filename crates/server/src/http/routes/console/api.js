// The JSON API with the signed-in token as a bearer token. The token lives in this
// tab's sessionStorage only; a 401 forgets it and returns to sign-in.

const STORAGE = "keyward.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.detail = body?.detail || "";
    this.hint = body?.hint || "";
  }

  /** One line for the person: message, then the server's detail. */
  get text() {
    return this.detail ? `${this.message}: ${this.detail}` : this.message;
  }
}

export const session = {
  get token() {
    return sessionStorage.getItem(STORAGE);
  },
  set token(value) {
    if (value) sessionStorage.setItem(STORAGE, value);
    else sessionStorage.removeItem(STORAGE);
  },
  /** Called with the server's explanation when the token stops working. */
  onExpired: () => {},
};

/** A JWT's claims, or null when the token is not a JWT (the service token). */
export function jwtClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    const claims = JSON.parse(json);
    return claims && typeof claims === "object" && typeof claims.sub === "string" ? claims : null;
  } catch {
    return null;
  }
}

/** Calls the API; resolves to the JSON body, rejects with an ApiError. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { message: "keyward is unreachable", detail: "check the connection" });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (response.status === 401) {
    const error = new ApiError(401, json);
    session.token = null;
    session.onExpired(error);
    throw error;
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

/** A path segment, escaped. */
export const seg = (value) => encodeURIComponent(value);
