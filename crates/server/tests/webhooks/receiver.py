"""A webhook consumer for keyward's tests, written as a platform would write one:
every delivery is verified with the official Standard Webhooks library from PyPI
(`standardwebhooks`), never with keyward's own code.

    python receiver.py --secrets FILE --log FILE [--port N] [--delay S] [--status N]

Listens on 127.0.0.1 (port 0: any free one) and prints the port on its first line.
Each request is logged as one JSON line: the headers' id, the event's type and key,
and whether it verified under each secret listed in FILE (one `whsec_` per line,
read on every request, so a test can write it once the endpoint exists). It answers
`--status` (default 204) after `--delay` seconds; an unverified delivery gets 400.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--status", type=int, default=204)
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with open(args.secrets) as f:
                secrets = [line.strip() for line in f if line.strip()]
            verified = []
            for secret in secrets:
                try:
                    Webhook(secret).verify(body, dict(self.headers))
                    verified.append(True)
                except WebhookVerificationError:
                    verified.append(False)
            event = json.loads(body) if body else {}
            data = event.get("data", {})
            entry = {
                "id": self.headers.get("webhook-id"),
                "timestamp": self.headers.get("webhook-timestamp"),
                "type": event.get("type"),
                "key_id": (data.get("key") or {}).get("id"),
                "verified": verified,
                "body": event,
                "received": time.time(),
            }
            with lock, open(args.log, "a") as log:
                log.write(json.dumps(entry) + "\n")
            time.sleep(args.delay)
            status = args.status if any(verified) else 400
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
