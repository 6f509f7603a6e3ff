// Next.js route handlers (app router), or any handler of a web `Request`:
//
//   export const GET = withKeyward(
//     async (request, context, key) => Response.json({ user: key.userId }),
//     { client, permissions: ["READ_GRAPH"] },
//   );
//
// The handler runs only for a key keyward let through; refusals are answered here.

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

export interface NextGuardOptions extends GuardOptions {
  /**
   * The end client's address, for keys bound to networks and keyward's failed-attempt
   * limit: where your platform puts it (e.g. the last `X-Forwarded-For` entry your own
   * proxy added). Without it, keys bound to networks are refused.
   */
  clientIp?: (request: Request) => string | undefined;
}

export function withKeyward<Context>(
  handler: (request: Request, context: Context, key: VerifiedKey) => Response | Promise<Response>,
  options: NextGuardOptions,
): (request: Request, context: Context) => Promise<Response> {
  if (!options.clientIp) warnNoAddress();
  return async (request, context) => {
    const key = presentedKey(request.headers.get("x-api-key"), request.headers.get("authorization"));
    const outcome = await check(options, key, clientIpOf(options.clientIp, request));
    if (!outcome.ok) return refusalResponse(outcome);
    return handler(request, context, outcome.key);
  };
}
