"""A lax upstream for the smuggling suite: Python's own http.server, the way many small
apps and internal tools run. It never reads a body on GET, HEAD, DELETE, OPTIONS or
TRACE, reads Content-Length with int() (which accepts ' 5', '+5' and '05'), and knows
nothing of chunked bodies. Every request it parses is appended to the file named on the
command line as one JSON line; the port is printed on the first line of stdout.
"""

import http.server
import json
import socketserver
import sys

RECORD = open(sys.argv[1], "a", buffering=1, encoding="utf-8")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, read_body):
        body = b""
        if read_body:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = 0
            if length > 0:
                body = self.rfile.read(length)
        RECORD.write(
            json.dumps(
                {
                    "method": self.command,
                    "target": self.path,
                    "headers": [[k, v] for k, v in self.headers.items()],
                    "body": body.decode("latin-1"),
                }
            )
            + "\n"
        )
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    def do_GET(self):
        self.answer(False)

    def do_HEAD(self):
        self.answer(False)

    def do_DELETE(self):
        self.answer(False)

    def do_OPTIONS(self):
        self.answer(False)

    def do_TRACE(self):
        self.answer(False)

    def do_POST(self):
        self.answer(True)

    def do_PUT(self):
        self.answer(True)

    def do_PATCH(self):
        self.answer(True)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
print("listening on", server.server_address[1], flush=True)
server.serve_forever()
