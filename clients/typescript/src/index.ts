// keyward's API for TypeScript: one method per route, typed from keyward's own OpenAPI
// document (src/schema.ts, generated), on the web `fetch` through openapi-fetch.
//
//   const keyward = new KeywardClient({ baseUrl: "http://127.0.0.1:8080", token });
//   const verdict = await keyward.verifyKey(key, { permissions: ["READ_GRAPH"] });
//
// User routes take the user's JWT as `token` (`client.withToken(jwt)`); service routes
// take the service token or a service credential holding the route's scope.
// There is no cache of verdicts here: keyward's own cache answers in microseconds.

import createClient from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
export { REFUSALS, refusal, refusalKindOf } from "./refusals.js";
export type { RefusalKind, RefusalText } from "./refusals.js";

type Schemas = components["schemas"];
export type ApiKey = Schemas["ApiKeyResponse"];
export type CreateKeyRequest = Schemas["CreateKeyRequest"];
export type CreatedKey = Schemas["CreateKeyResponse"];
export type UpdateKeyRequest = Schemas["PatchKeyRequest"];
export type RotatedKey = Schemas["RotateKeyResponse"];
export type EventPage = Schemas["EventPage"];
export type UsageSeries = Schemas["UsageSeries"];
export type VerifyCode = Schemas["VerifyCodeName"];
export type Verdict = Schemas["VerifyResponse"];
export type UserLimits = Schemas["UserLimitsResponse"];
export type UserLimitsRequest = Schemas["UserLimitsRequest"];
export type DeletedUser = Schemas["DeletedUserResponse"];
export type Credential = Schemas["CredentialResponse"];
export type CreatedCredential = Schemas["CreatedCredentialResponse"];
export type CreateCredentialRequest = Schemas["CreateCredentialRequest"];
export type Webhook = Schemas["WebhookResponse"];
export type CreatedWebhook = Schemas["CreatedWebhookResponse"];
export type CreateWebhookRequest = Schemas["CreateWebhookRequest"];
export type UpdateWebhookRequest = Schemas["PatchWebhookRequest"];
export type Delivery = Schemas["DeliveryResponse"];
export type WhoAmI = Schemas["WhoAmIResponse"];
export type ErrorBody = Schemas["ErrorBody"];

type Query<Op extends keyof operations> = NonNullable<operations[Op]["parameters"]["query"]>;
export type EventQuery = Query<"list_events">;
export type EventPaging = Query<"list_api_key_events">;
export type UsageQuery = Query<"get_api_key_usage">;
export type DeploymentUsageQuery = Query<"get_usage">;

/** A request keyward refused, or could not answer. */
export class KeywardError extends Error {
  /** The HTTP status; 0 when keyward could not be reached. */
  readonly status: number;
  /** keyward's specifics of this occurrence, and what to do about it. */
  readonly detail: string | null;
  readonly hint: string | null;
  /** With a 429: seconds until the same request may pass (`Retry-After`). */
  readonly retryAfter: number | null;

  constructor(
    status: number,
    message: string,
    detail: string | null = null,
    hint: string | null = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "KeywardError";
    this.status = status;
    this.detail = detail;
    this.hint = hint;
    this.retryAfter = retryAfter;
  }

  /** keyward could not be reached, or answered something that is not keyward's. */
  get unavailable(): boolean {
    return this.status === 0 || this.status >= 500;
  }
}

export interface KeywardClientOptions {
  /** Where keyward answers, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A user's JWT, the service token, or a service credential's secret. */
  token?: string;
  /** A `fetch` of your own (a proxy agent, a test double); the global one otherwise. */
  fetch?: typeof fetch;
  /** Milliseconds a request may take before it fails with status 0; default 10,000. */
  timeoutMs?: number;
}

export interface VerifyOptions {
  /** Every one of these must be held, else `INSUFFICIENT_PERMISSIONS`. */
  permissions?: readonly string[];
  /** The end client's address, for keys bound to networks and the failed-attempt limit. */
  clientIp?: string;
  /** Usage credits this request takes from a key that has them (default 1). */
  cost?: number;
}

type Fetched<T> = { data?: T; error?: unknown; response: Response };

function seconds(value: string | null): number | null {
  if (value === null) return null;
  const n = Number(value);
  return Number.isFinite(n) && n >= 0 ? n : null;
}

// The generated types list the default catalogue's names; a deployment may have its own
// (KEYWARD_PERMISSIONS), so any name is taken and keyward says which it does not know.
type Permission = Schemas["Permission"];
function names(permissions: readonly string[]): Permission[] {
  return [...permissions] as Permission[];
}

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** keyward's API. Each method resolves with the route's answer or throws a [[KeywardError]]. */
export class KeywardClient {
  readonly baseUrl: string;
  #token: string | undefined;
  #fetch: typeof fetch;
  #timeoutMs: number;
  #api: ReturnType<typeof createClient<paths>>;

  constructor(options: KeywardClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#token = options.token;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    const timeoutMs = this.#timeoutMs;
    const base = this.#fetch;
    this.#api = createClient<paths>({
      baseUrl: this.baseUrl,
      // A request never waits forever on a keyward that stopped answering.
      fetch: (request: Request) => base(request, { signal: AbortSignal.timeout(timeoutMs) }),
      headers: this.#token ? { Authorization: `Bearer ${this.#token}` } : {},
    });
  }

  /** The same client with another token (a user's JWT for the user routes, say). */
  withToken(token: string): KeywardClient {
    return new KeywardClient({
      baseUrl: this.baseUrl,
      token,
      fetch: this.#fetch,
      timeoutMs: this.#timeoutMs,
    });
  }

  /** Never the token. */
  toJSON(): { baseUrl: string } {
    return { baseUrl: this.baseUrl };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `KeywardClient { baseUrl: ${JSON.stringify(this.baseUrl)} }`;
  }

  async #call<T>(request: Promise<Fetched<T>>): Promise<T> {
    let fetched: Fetched<T>;
    try {
      fetched = await request;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new KeywardError(0, "keyward could not be reached", why);
    }
    const { data, error, response } = fetched;
    if (response.ok) return data as T;
    const body = (error ?? {}) as Partial<Record<string, unknown>>;
    throw new KeywardError(
      response.status,
      text(body.message) ?? `keyward answered ${response.status}`,
      text(body.detail),
      text(body.hint),
      response.status === 429 ? seconds(response.headers.get("retry-after")) : null,
    );
  }

  // Users' own keys (a user's JWT).

  createKey(request: CreateKeyRequest): Promise<CreatedKey> {
    return this.#call(this.#api.POST("/api/api-keys", { body: request }));
  }
  listKeys(): Promise<ApiKey[]> {
    return this.#call(this.#api.GET("/api/api-keys"));
  }
  getKey(id: string): Promise<ApiKey> {
    return this.#call(this.#api.GET("/api/api-keys/{id}", { params: { path: { id } } }));
  }
  updateKey(id: string, changes: UpdateKeyRequest): Promise<ApiKey> {
    return this.#call(
      this.#api.PATCH("/api/api-keys/{id}", { params: { path: { id } }, body: changes }),
    );
  }
  revokeKey(id: string): Promise<ApiKey> {
    return this.#call(this.#api.DELETE("/api/api-keys/{id}", { params: { path: { id } } }));
  }
  suspendKey(id: string): Promise<ApiKey> {
    return this.#call(
      this.#api.POST("/api/api-keys/{id}/suspend", { params: { path: { id } } }),
    );
  }
  reactivateKey(id: string): Promise<ApiKey> {
    return this.#call(
      this.#api.POST("/api/api-keys/{id}/reactivate", { params: { path: { id } } }),
    );
  }
  setPermissions(id: string, permissions: readonly string[]): Promise<ApiKey> {
    return this.#call(
      this.#api.PUT("/api/api-keys/{id}/permissions", {
        params: { path: { id } },
        body: { permissions: names(permissions) },
      }),
    );
  }
  setRateLimit(
    id: string,
    rateLimit: { requests: number; per_seconds: number } | null,
  ): Promise<ApiKey> {
    return this.#call(
      this.#api.PUT("/api/api-keys/{id}/rate-limit", {
        params: { path: { id } },
        body: { rate_limit: rateLimit },
      }),
    );
  }
  rotateKey(id: string, options: { graceSeconds?: number } = {}): Promise<RotatedKey> {
    return this.#call(
      this.#api.POST("/api/api-keys/{id}/rotate", {
        params: { path: { id } },
        body: { grace_seconds: options.graceSeconds },
      }),
    );
  }
  listKeyEvents(id: string, paging: EventPaging = {}): Promise<EventPage> {
    return this.#call(
      this.#api.GET("/api/api-keys/{id}/events", { params: { path: { id }, query: paging } }),
    );
  }
  keyUsage(id: string, query: UsageQuery = {}): Promise<UsageSeries> {
    return this.#call(
      this.#api.GET("/api/api-keys/{id}/usage", { params: { path: { id }, query } }),
    );
  }
  /** The permission names keyward knows (its catalogue). */
  async listPermissions(): Promise<string[]> {
    const catalogue = await this.#call(this.#api.GET("/api/permissions"));
    return [...catalogue.permissions];
  }

  // Verification (a service credential holding keys.verify).

  /** Verifies `key` and the permissions a request needs; the verdict, valid or not. */
  verifyKey(key: string, options: VerifyOptions = {}): Promise<Verdict> {
    return this.#call(
      this.#api.POST("/api/api-keys/verify", {
        body: {
          key,
          permissions: options.permissions ? names(options.permissions) : undefined,
          client_ip: options.clientIp,
          cost: options.cost,
        },
      }),
    );
  }
  /** Reports a key found where it should not be (anyone may; the answer says nothing). */
  async reportLeak(key: string, options: { url?: string } = {}): Promise<void> {
    await this.#call(this.#api.POST("/api/api-keys/report-leak", { body: { key, ...options } }));
  }

  // The platform's admin routes (the service token or a credential with the scope).

  whoami(): Promise<WhoAmI> {
    return this.#call(this.#api.GET("/api/admin/whoami"));
  }
  listKeysOfUser(userId: string): Promise<ApiKey[]> {
    return this.#call(
      this.#api.GET("/api/admin/users/{user_id}/api-keys", {
        params: { path: { user_id: userId } },
      }),
    );
  }
  createKeyForUser(userId: string, request: CreateKeyRequest): Promise<CreatedKey> {
    return this.#call(
      this.#api.POST("/api/admin/users/{user_id}/api-keys", {
        params: { path: { user_id: userId } },
        body: request,
      }),
    );
  }
  getKeyAsAdmin(id: string): Promise<ApiKey> {
    return this.#call(this.#api.GET("/api/admin/api-keys/{id}", { params: { path: { id } } }));
  }
  updateKeyAsAdmin(id: string, changes: UpdateKeyRequest): Promise<ApiKey> {
    return this.#call(
      this.#api.PATCH("/api/admin/api-keys/{id}", { params: { path: { id } }, body: changes }),
    );
  }
  revokeKeyAsAdmin(id: string): Promise<ApiKey> {
    return this.#call(
      this.#api.DELETE("/api/admin/api-keys/{id}", { params: { path: { id } } }),
    );
  }
  suspendKeyAsAdmin(id: string): Promise<ApiKey> {
    return this.#call(
      this.#api.POST("/api/admin/api-keys/{id}/suspend", { params: { path: { id } } }),
    );
  }
  reactivateKeyAsAdmin(id: string): Promise<ApiKey> {
    return this.#call(
      this.#api.POST("/api/admin/api-keys/{id}/reactivate", { params: { path: { id } } }),
    );
  }
  listKeyEventsAsAdmin(id: string, paging: EventPaging = {}): Promise<EventPage> {
    return this.#call(
      this.#api.GET("/api/admin/api-keys/{id}/events", {
        params: { path: { id }, query: paging },
      }),
    );
  }
  listEvents(query: EventQuery = {}): Promise<EventPage> {
    return this.#call(this.#api.GET("/api/admin/events", { params: { query } }));
  }
  usage(query: DeploymentUsageQuery = {}): Promise<UsageSeries> {
    return this.#call(this.#api.GET("/api/admin/usage", { params: { query } }));
  }
  deleteUser(userId: string): Promise<DeletedUser> {
    return this.#call(
      this.#api.DELETE("/api/admin/users/{user_id}", { params: { path: { user_id: userId } } }),
    );
  }
  getUserLimits(userId: string): Promise<UserLimits> {
    return this.#call(
      this.#api.GET("/api/admin/users/{user_id}/limits", {
        params: { path: { user_id: userId } },
      }),
    );
  }
  setUserLimits(userId: string, limits: UserLimitsRequest): Promise<UserLimits> {
    return this.#call(
      this.#api.PUT("/api/admin/users/{user_id}/limits", {
        params: { path: { user_id: userId } },
        body: limits,
      }),
    );
  }
  deleteUserLimits(userId: string): Promise<UserLimits> {
    return this.#call(
      this.#api.DELETE("/api/admin/users/{user_id}/limits", {
        params: { path: { user_id: userId } },
      }),
    );
  }

  listCredentials(): Promise<Credential[]> {
    return this.#call(this.#api.GET("/api/admin/credentials"));
  }
  createCredential(request: CreateCredentialRequest): Promise<CreatedCredential> {
    return this.#call(this.#api.POST("/api/admin/credentials", { body: request }));
  }
  getCredential(id: string): Promise<Credential> {
    return this.#call(
      this.#api.GET("/api/admin/credentials/{id}", { params: { path: { id } } }),
    );
  }
  revokeCredential(id: string): Promise<Credential> {
    return this.#call(
      this.#api.DELETE("/api/admin/credentials/{id}", { params: { path: { id } } }),
    );
  }
  rotateCredential(
    id: string,
    options: { graceSeconds?: number } = {},
  ): Promise<CreatedCredential> {
    return this.#call(
      this.#api.POST("/api/admin/credentials/{id}/rotate", {
        params: { path: { id } },
        body: { grace_seconds: options.graceSeconds },
      }),
    );
  }

  listWebhooks(): Promise<Webhook[]> {
    return this.#call(this.#api.GET("/api/admin/webhooks"));
  }
  createWebhook(request: CreateWebhookRequest): Promise<CreatedWebhook> {
    return this.#call(this.#api.POST("/api/admin/webhooks", { body: request }));
  }
  getWebhook(id: string): Promise<Webhook> {
    return this.#call(this.#api.GET("/api/admin/webhooks/{id}", { params: { path: { id } } }));
  }
  updateWebhook(id: string, changes: UpdateWebhookRequest): Promise<Webhook> {
    return this.#call(
      this.#api.PATCH("/api/admin/webhooks/{id}", { params: { path: { id } }, body: changes }),
    );
  }
  async deleteWebhook(id: string): Promise<void> {
    await this.#call(
      this.#api.DELETE("/api/admin/webhooks/{id}", { params: { path: { id } } }),
    );
  }
  rotateWebhookSecret(id: string): Promise<CreatedWebhook> {
    return this.#call(
      this.#api.POST("/api/admin/webhooks/{id}/rotate-secret", { params: { path: { id } } }),
    );
  }
  testWebhook(id: string): Promise<Schemas["TestQueuedResponse"]> {
    return this.#call(
      this.#api.POST("/api/admin/webhooks/{id}/test", { params: { path: { id } } }),
    );
  }
  listDeliveries(id: string): Promise<Delivery[]> {
    return this.#call(
      this.#api.GET("/api/admin/webhooks/{id}/deliveries", { params: { path: { id } } }),
    );
  }
  /** Makes a failed or pending delivery due now. */
  async retryDelivery(id: string, deliveryId: number): Promise<void> {
    await this.#call(
      this.#api.POST("/api/admin/webhooks/{id}/deliveries/{delivery_id}/retry", {
        params: { path: { id, delivery_id: deliveryId } },
      }),
    );
  }

  /** Whether keyward is ready (`/readyz` answers 200). */
  async ready(): Promise<boolean> {
    try {
      const answer = await this.#fetch(`${this.baseUrl}/readyz`, {
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      return answer.status === 200;
    } catch {
      return false;
    }
  }
}
