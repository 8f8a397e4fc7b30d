#!/usr/bin/env python3
"""The department's HTTP service in test 0010-http-sink: receives the exbus
HTTP sink's batches, keeps each accepted body once by its Idempotency-Key,
and fails in scripted ways.

  http_receiver.py PORT_FILE STATE_FILE SCRIPT [CERT KEY CLIENT_CA]

Listens on an ephemeral loopback port (written to PORT_FILE); with CERT and
KEY it speaks HTTPS only, and with CLIENT_CA it also requires a client
certificate signed by that CA (mutual TLS). After every
request the state is written to STATE_FILE (atomically, JSON):
  posts        POSTs received
  statuses     {"200": n, "503": n, "400": n, "slow": n, "drop": n, ...}
  accepted     bodies accepted (distinct keys)
  repeats      bodies received again with a key already accepted (not applied)
  events       {event_id: times accepted} — exactly once means every value is 1
  rows         {key: data}: the department's table, built by applying the
               accepted records in arrival order (upsert, or delete by key)
  bad_key      bodies whose Idempotency-Key is not the documented SHA-256 of
               their records, or differs from the body's idempotency_key
  bad_auth     requests without the expected Authorization header
  bad_body     requests that are not a well-formed batch
  mode         "up" or "down"

SCRIPT, by the sequence number of the POST (1-based), e.g.
"1-3:503,6:slow,9:accept-drop,12:drop":
  503          answer 503, accept nothing
  slow         accept, then answer only after SLOW_S seconds (past the
               client's timeout: the client retries the same body)
  accept-drop  accept, then close the connection without a response
  drop         close the connection without a response, accept nothing
Otherwise: a body holding a record whose data.name contains "BAD" gets 400
with a JSON error naming it (nothing of that body is accepted; a "slow" or
"accept-drop" due on it moves to the next POST); anything else is accepted:
200.

POST /control {"mode": "down"} makes every POST a 503 until {"mode": "up"}.
Expected auth: the header line in the environment variable EXB_HTTP_AUTH.
"""
import hashlib
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_S = 3.0
MAX_BODY = 64 << 20

lock = threading.Lock()
state = {"posts": 0, "statuses": {}, "accepted": 0, "repeats": 0, "events": {},
         "bad_key": 0, "bad_auth": 0, "bad_body": 0, "mode": "up", "rows": {}}
keys = set()
script = {}


def parse_script(s):
    for part in filter(None, s.split(",")):
        span, action = part.split(":")
        lo, _, hi = span.partition("-")
        for n in range(int(lo), int(hi or lo) + 1):
            script[n] = action


def save():
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, STATE_FILE)


def count(what):
    state["statuses"][what] = state["statuses"].get(what, 0) + 1


def idem_key(doc):
    """The key as exb_sink_http.c documents it, computed independently."""
    h = hashlib.sha256()
    h.update(b"exbus-http-v1\n" + doc["subscriber"].encode() + b"\n" +
             doc["resource"].encode() + b"\n")
    for r in doc["records"]:
        ident = r["event_id"] or f'{r["topic"]}/{r["partition"]}/{r["offset"]}'
        b = ident.encode()
        h.update(str(len(b)).encode() + b":" + b + b",")
    return h.hexdigest()


def well_formed(doc):
    try:
        recs = doc["records"]
        return (isinstance(doc["subscriber"], str) and isinstance(doc["resource"], str)
                and doc["count"] == len(recs) and len(recs) > 0
                and all(r["op"] in ("CREATE", "UPDATE", "DELETE", "SNAPSHOT")
                        and isinstance(r["data"], dict) and isinstance(r["event_id"], str)
                        and r["topic"].endswith("." + doc["resource"])
                        and isinstance(r["offset"], int) for r in recs))
    except (KeyError, TypeError, AttributeError):
        return False


def accept(key, doc):
    """Applies the body once per key. Call with the lock held."""
    if key in keys:
        state["repeats"] += 1
        return
    keys.add(key)
    state["accepted"] += 1
    for r in doc["records"]:
        state["events"][r["event_id"]] = state["events"].get(r["event_id"], 0) + 1
        if r["op"] == "DELETE":
            state["rows"].pop(r["key"], None)
        else:
            state["rows"][r["key"]] = r["data"]


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one connection per request, so a dropped connection reaches
    # the sink as such (libcurl silently re-sends a request once when a
    # reused keep-alive connection turns out dead).
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/control":
            with lock:
                state["mode"] = json.loads(raw)["mode"]
                save()
            return self.reply(200, {"mode": state["mode"]})
        with lock:
            state["posts"] += 1
            seq = state["posts"]
            action = "503" if state["mode"] == "down" else script.get(seq)
            try:
                doc = json.loads(raw)
            except (TypeError, ValueError):
                doc = None
            key = self.headers.get("Idempotency-Key", "")
            if doc is None or not well_formed(doc):
                state["bad_body"] += 1
                count("422")
                save()
                return self.reply(422, {"error": "not a batch"})
            if key != doc.get("idempotency_key") or key != idem_key(doc):
                state["bad_key"] += 1
            if os.environ.get("EXB_HTTP_AUTH") and \
                    self.headers.get("Authorization") != \
                    os.environ["EXB_HTTP_AUTH"].split(":", 1)[1].strip():
                state["bad_auth"] += 1
                count("401")
                save()
                return self.reply(401, {"error": "unauthorized"})
            if action == "drop":
                count("drop")
                save()
                self.close_connection = True
                return
            if action == "503":
                count("503")
                save()
                return self.reply(503, {"error": "busy, try later"})
            bad = [r for r in doc["records"] if "BAD" in str(r["data"].get("name"))]
            if bad:
                if action in ("slow", "accept-drop"):  # cannot accept this one: the next
                    nxt = seq + 1
                    while nxt in script:
                        nxt += 1
                    script[nxt] = action
                count("400")
                save()
                return self.reply(400, {"error": "invalid name", "event_id": bad[0]["event_id"],
                                        "detail": "x" * 8000})  # longer than the 4 KiB kept
            accept(key, doc)
            count(action or "200")
            save()
        if action == "accept-drop":
            self.close_connection = True
            return
        if action == "slow":
            time.sleep(SLOW_S)
        try:
            self.reply(200, {"accepted": len(doc["records"])})
        except OSError:
            pass  # the client gave up (slow): it will send the same body again


def main():
    global STATE_FILE
    port_file, STATE_FILE, spec = sys.argv[1:4]
    parse_script(spec)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if len(sys.argv) > 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        if len(sys.argv) > 6:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(sys.argv[6])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with lock:
        save()
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
