// Express: `app.get("/graphs", keyward({ client, permissions: ["READ_GRAPH"] }), handler)`;
// the handler finds the verified key in `req.keyward`. Refusals are answered here, as
// `{"detail": …}` with the status of keyward's shared table; nothing passes otherwise.

import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  check,
  clientIpOf,
  presentedKey,
  type GuardOptions,
  type VerifiedKey,
} from "./guard.js";

export type { GuardOptions, VerifiedKey } from "./guard.js";

declare module "express-serve-static-core" {
  interface Request {
    /** The key the keyward guard let through. */
    keyward?: VerifiedKey;
  }
}

export interface ExpressGuardOptions extends GuardOptions {
  /**
   * The end client's address, for keys bound to networks and keyward's failed-attempt
   * limit. Default: `req.ip`: the peer, or what Express's `trust proxy` setting vouches
   * for. Set `trust proxy` to your proxies' hop count or addresses, never `true`:
   * with `true`, a client's own `X-Forwarded-For` would pick the address keyward checks.
   */
  clientIp?: (req: Request) => string | undefined;
}

export function keyward(options: ExpressGuardOptions): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const key = presentedKey(req.get("x-api-key"), req.get("authorization"));
    const clientIp = options.clientIp ? clientIpOf(options.clientIp, req) : req.ip;
    check(options, key, clientIp)
      .then((outcome) => {
        if (outcome.ok) {
          req.keyward = outcome.key;
          next();
        } else {
          res.status(outcome.status).set(outcome.headers).json(outcome.body);
        }
      })
      .catch((err: unknown) => {
        console.error(`the keyward guard failed: ${err instanceof Error ? err.message : err}`);
        if (!res.headersSent) {
          res.status(503).json({ detail: "The API key cannot be checked right now" });
        }
      });
  };
}
