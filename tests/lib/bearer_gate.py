"""A loopback gate that lets through only requests carrying one bearer token.

Storage emulators do not check credentials (gcp-storage-emulator takes any request). Put
in front of one, this proves a client sends the token it was handed: a request with that
`Authorization: Bearer` is passed on unchanged and its answer passed back; any other gets
401 with Cloud Storage's own messages: "Anonymous caller ..." without credentials, "Invalid
Credentials" with others (which gcsfs retries, as a token that may have expired). Each
request's method, path and whether it passed are appended to a JSON-lines log.

    python bearer_gate.py --port N --upstream http://127.0.0.1:M --token T --log FILE
"""

from __future__ import annotations

import argparse
import http.client
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: Hop-by-hop headers are the connection's, not the request's: never passed on.
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Gate(BaseHTTPRequestHandler):
    upstream = urllib.parse.urlsplit("http://127.0.0.1")
    token = ""
    log = Path()
    protocol_version = "HTTP/1.1"

    def _pass(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        allowed = self.headers.get("Authorization") == f"Bearer {self.token}"
        with self.log.open("a", encoding="utf-8") as handle:
            entry = {"method": self.command, "path": self.path, "allowed": allowed}
            handle.write(json.dumps(entry) + "\n")
        if not allowed:
            message = (
                "Invalid Credentials"
                if self.headers.get("Authorization")
                else "Anonymous caller does not have storage.objects.list access to the "
                "Google Cloud Storage bucket."
            )
            data = json.dumps({"error": {"code": 401, "message": message, "errors": []}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        connection = http.client.HTTPConnection(
            self.upstream.hostname, self.upstream.port, timeout=60
        )
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            connection.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _pass

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the JSON-lines log is the record."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    Gate.upstream = urllib.parse.urlsplit(args.upstream)
    Gate.token, Gate.log = args.token, args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), Gate).serve_forever()


if __name__ == "__main__":
    main()
