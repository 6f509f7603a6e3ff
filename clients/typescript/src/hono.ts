// Hono: `app.get("/graphs", keyward({ client, permissions: ["READ_GRAPH"] }), handler)`;
// the handler finds the verified key with `c.get("keyward")`. Unlike a middleware that
// leaves refusals to the user, this one answers them itself: nothing passes otherwise.

import type { Context, MiddlewareHandler } from "hono";
import {
  check,
  clientIpOf,
  warnNoAddress,
  presentedKey,
  refusalResponse,
  type GuardOptions,
  type VerifiedKey,
} from "./guard.js";

export type { GuardOptions, VerifiedKey } from "./guard.js";

export interface HonoGuardOptions extends GuardOptions {
  /**
   * The end client's address, for keys bound to networks and keyward's failed-attempt
   * limit (Hono has no runtime-independent one: e.g. `getConnInfo(c).remote.address`
   * from `hono/<runtime>`). Without it, keys bound to networks are refused.
   */
  clientIp?: (c: Context) => string | undefined;
}

export type KeywardEnv = { Variables: { keyward: VerifiedKey } };

export function keyward(options: HonoGuardOptions): MiddlewareHandler<KeywardEnv> {
  if (!options.clientIp) warnNoAddress();
  return async (c, next) => {
    const key = presentedKey(c.req.header("x-api-key"), c.req.header("authorization"));
    const outcome = await check(options, key, clientIpOf(options.clientIp, c));
    if (!outcome.ok) return refusalResponse(outcome);
    c.set("keyward", outcome.key);
    await next();
  };
}
