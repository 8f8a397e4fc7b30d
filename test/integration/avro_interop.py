#!/usr/bin/env python3
"""Interop check of exbus's Avro schemas and codec against Apache Avro (Python).

exbus writes its own Avro binary codec (schemas/exb_codec.c). This script
proves it speaks the same Avro as the official Apache implementation, the
PyPI package `avro`, used here as an independent oracle:

  1. schemas derived by exbus (exb_codec_tool schema) parse with Apache Avro
     and have exactly the shape DESIGN.md §3 describes; exb_schema_parse()
     turns a reformatted copy back into the same canonical text and SHA-256;
  2. ours -> Apache: records given as JSON lines are encoded by
     exb_codec_tool; Apache Avro decodes every frame (magic, schema id, datum,
     nothing left over) to the expected values, and its own encoding of the
     same record is byte for byte the same;
  3. Apache -> ours: Apache Avro encodes records; exb_codec_tool decodes each
     to the expected JSON;
  4. hostile frames (truncated, bad union index, huge length, trailing
     bytes) made from Apache's encodings are rejected by exb_codec_tool with
     a message, one line each, without crashing.

Usage: avro_interop.py PATH_TO_exb_codec_tool

Apache Avro is installed into a virtualenv at $EXB_VENV (default:
<source dir>/.cache/venv) when the running interpreter lacks it; the script
then re-executes itself with that venv's python. Prints "N passed, M failed"
and exits non-zero on any failure.
"""

import base64
import datetime
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pyvenv  # noqa: E402  (test/pyvenv.py)


pyvenv.ensure("avro_interop", ["avro.io", "avro.schema"], ["avro>=1.11,<2"])
import avro.io  # noqa: E402
import avro.schema  # noqa: E402

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
DAY0 = datetime.date(1970, 1, 1)
OPS = ["CREATE", "UPDATE", "DELETE", "SNAPSHOT"]
TS_MIN = -62135596800000  # 0001-01-01T00:00:00.000Z: Python's datetime range
TS_MAX = 253402300799999  # 9999-12-31T23:59:59.999Z
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

passed = 0
failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s" % what, flush=True)
    return ok


# ---------------------------------------------------------------- schemas

POPULATION = [
    {"name": "id_number", "title": "公民身份号码", "type": "C", "nullable": False},
    {"name": "name", "title": "姓名", "type": "C", "nullable": True},
    {"name": "birth_date", "title": "出生日期", "type": "D", "nullable": True},
    {"name": "address", "title": "户籍地址", "type": "C", "nullable": True},
    {"name": "region", "title": "行政区划代码", "type": "C", "nullable": True},
]

ALL_TYPES = [{"name": "key", "title": "键 \"quoted\" \\ /", "type": "C", "nullable": False}]
for _t in "CNIDTLB":
    ALL_TYPES.append({"name": "r_" + _t, "type": _t, "nullable": False})
    ALL_TYPES.append({"name": "n_" + _t, "type": _t, "nullable": True})

AVRO_TYPE = {
    "C": "string",
    "N": "double",
    "I": "long",
    "D": {"type": "int", "logicalType": "date"},
    "T": {"type": "long", "logicalType": "timestamp-millis"},
    "L": "boolean",
    "B": "bytes",
}


def expected_schema(name, items):
    """The envelope as DESIGN.md §3 / exb_schema.h describe it, built here
    independently of the C code."""
    fields = []
    for it in items:
        f = {"name": it["name"]}
        if it["nullable"]:
            f["type"] = ["null", AVRO_TYPE[it["type"]]]
            f["default"] = None
        else:
            f["type"] = AVRO_TYPE[it["type"]]
        if it.get("title") is not None:
            f["doc"] = it["title"]
        fields.append(f)
    return {
        "type": "record",
        "name": name,
        "namespace": "exbus",
        "fields": [
            {"name": "op", "type": {"type": "enum", "name": "Op", "symbols": OPS}},
            {"name": "event_id", "type": "string"},
            {"name": "source", "type": "string"},
            {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "data", "type": {"type": "record", "name": name + "_data",
                                      "fields": fields}},
        ],
    }


def run(tool, args, stdin_text):
    p = subprocess.run([tool] + args, input=stdin_text.encode("utf-8"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode < 0:
        raise SystemExit("exb_codec_tool %s died with signal %d" % (args[0], -p.returncode))
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


# ------------------------------------------------------- values and JSON

def ts_text(dt):
    # not strftime: glibc's %Y writes year 1 as "1"
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (dt.year, dt.month, dt.day, dt.hour,
                                                   dt.minute, dt.second, dt.microsecond // 1000)


def ms_to_dt(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def to_json_value(t, v):
    """A Python Avro datum value -> what exb_codec_to_json() writes."""
    if v is None:
        return None
    if t == "D":
        return "%04d-%02d-%02d" % (v.year, v.month, v.day)
    if t == "T":
        return ts_text(v)
    if t == "B":
        return base64.b64encode(v).decode("ascii")
    return v


def record_json(items, rec):
    return {
        "op": rec["op"],
        "event_id": rec["event_id"],
        "source": rec["source"],
        "ts_ms": (rec["ts_ms"] - EPOCH) // datetime.timedelta(milliseconds=1),
        "data": {it["name"]: to_json_value(it["type"], rec["data"][it["name"]]) for it in items},
    }


def same(a, b):
    """Deep equality that tells -0.0 from 0.0 and compares floats bit for bit."""
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        return struct.pack("<d", float(a)) == struct.pack("<d", float(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, datetime.datetime)
                                       and isinstance(b, datetime.datetime)):
        return False
    return a == b


def rnd_text(rng, n=None):
    if n is None:
        n = rng.choice([0, 1, 2, 5, 18, 40, 70, 200])
    out = []
    for _ in range(n):
        k = rng.randrange(6)
        if k == 0:
            cp = rng.randrange(0x00, 0x80)          # ASCII incl. NUL and controls
        elif k == 1:
            cp = rng.randrange(0x80, 0x800)
        elif k == 2:
            cp = rng.randrange(0x4E00, 0xA000)      # CJK
        elif k == 3:
            cp = rng.randrange(0x10000, 0x110000)   # astral
        elif k == 4:
            cp = rng.randrange(0xE000, 0x10000)
        else:
            cp = rng.randrange(0x20, 0x7F)
        out.append(chr(cp))
    return "".join(out)


def rnd_long(rng):
    bits = rng.randrange(65)
    v = rng.getrandbits(bits) if bits else 0
    v = -v if rng.random() < 0.5 else v
    return max(INT64_MIN, min(INT64_MAX, v))


def rnd_double(rng):
    while True:
        d = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if d == d and d not in (float("inf"), float("-inf")):
            return d


def rnd_value(rng, t):
    if t == "C":
        return rnd_text(rng)
    if t == "B":
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 2, 3, 10, 100])))
    if t == "N":
        return rng.choice([rnd_double(rng), rng.uniform(-1e6, 1e6), 0.0, -0.0, 1.5])
    if t == "I":
        return rnd_long(rng)
    if t == "D":
        return DAY0 + datetime.timedelta(days=rng.randrange(-719162, 2932897))
    if t == "T":
        return ms_to_dt(rng.randrange(TS_MIN, TS_MAX + 1))
    if t == "L":
        return rng.random() < 0.5
    raise ValueError(t)


def rnd_record(rng, items):
    data = {}
    for it in items:
        if it["nullable"] and rng.random() < 0.25:
            data[it["name"]] = None
        else:
            data[it["name"]] = rnd_value(rng, it["type"])
    return {"op": rng.choice(OPS), "event_id": rnd_text(rng, rng.randrange(40)),
            "source": rnd_text(rng, rng.randrange(8)),
            "ts_ms": ms_to_dt(rng.randrange(TS_MIN, TS_MAX + 1)), "data": data}


def edge_records(items):
    """Hand-picked edges: extremes of every type, all nulls, long values."""
    def rec(op, values):
        return {"op": op, "event_id": "evt-边界", "source": "GA", "ts_ms": ms_to_dt(0),
                "data": values}

    lo = {"C": "", "N": -1.7976931348623157e308, "I": INT64_MIN, "D": datetime.date(1, 1, 1),
          "T": ms_to_dt(TS_MIN), "L": False, "B": b""}
    hi = {"C": "中" * 5000 + "\U0001F600", "N": 5e-324, "I": INT64_MAX,
          "D": datetime.date(9999, 12, 31), "T": ms_to_dt(TS_MAX), "L": True,
          "B": bytes(range(256)) * 40}
    mid = {"C": "a\u0000b\"\\\n\t/é", "N": -0.0, "I": -1, "D": DAY0 - datetime.timedelta(1),
           "T": ms_to_dt(-1), "L": True, "B": b"\x00"}
    out = []
    for op, table in (("CREATE", lo), ("UPDATE", hi), ("SNAPSHOT", mid)):
        out.append(rec(op, {it["name"]: table[it["type"]] for it in items}))
    nulls = {}
    for it in items:
        nulls[it["name"]] = None if it["nullable"] else mid[it["type"]]
    out.append(rec("DELETE", nulls))
    r = rec("CREATE", {it["name"]: lo[it["type"]] for it in items})
    r["ts_ms"] = ms_to_dt(TS_MAX)
    r["event_id"] = "x" * 64  # length 64: the first two-byte length varint
    out.append(r)
    return out


def apache_encode(schema, rec, schema_id):
    bio = io.BytesIO()
    avro.io.DatumWriter(schema).write(rec, avro.io.BinaryEncoder(bio))
    return b"\x00" + struct.pack(">I", schema_id) + bio.getvalue()


def apache_decode(schema, frame, schema_id):
    if len(frame) < 5 or frame[0] != 0 or struct.unpack(">I", frame[1:5])[0] != schema_id:
        raise ValueError("bad frame header %s" % frame[:5].hex())
    bio = io.BytesIO(frame[5:])
    rec = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(bio))
    if bio.tell() != len(frame) - 5:
        raise ValueError("%d bytes left over" % (len(frame) - 5 - bio.tell()))
    return rec


# ------------------------------------------------------------------ main

def interop(tool, tmp, name, items, schema_id, nrandom, rng):
    # 1. derivation
    rc, text, err = run(tool, ["schema", name], json.dumps(items, ensure_ascii=False))
    if not check(rc == 0, "%s: schema derivation failed: %s" % (name, err)):
        return
    text = text.rstrip("\n")
    schema = avro.schema.parse(text)
    check(json.loads(text) == expected_schema(name, items),
          "%s: derived schema differs from the DESIGN shape:\n%s" % (name, text))
    check("\\u" not in text and (name != "RPop" or "公民身份号码" in text),
          "%s: Chinese docs must stay UTF-8 in the canonical text" % name)
    path = os.path.join(tmp, name + ".avsc")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

    # canonical form from a reformatted copy
    pretty = os.path.join(tmp, name + ".pretty.avsc")
    with open(pretty, "w", encoding="ascii") as f:
        json.dump(json.loads(text), f, indent=3, ensure_ascii=True)
    rc, out, err = run(tool, ["canon", pretty], "")
    lines = out.split("\n")
    check(rc == 0 and lines[0] == text, "%s: canon of the reformatted schema: %s%s"
          % (name, err, out))
    check(rc == 0 and lines[1] == hashlib.sha256(text.encode("utf-8")).hexdigest(),
          "%s: fingerprint is not the SHA-256 of the canonical text" % name)

    records = edge_records(items) + [rnd_record(rng, items) for _ in range(nrandom)]

    # 2. ours -> Apache
    jsonl = "".join(json.dumps(record_json(items, r), ensure_ascii=False) + "\n"
                    for r in records)
    rc, out, err = run(tool, ["encode", path, str(schema_id)], jsonl)
    if not check(rc == 0, "%s: exb_codec_tool encode failed: %s" % (name, err)):
        return
    frames = [bytes.fromhex(h) for h in out.split()]
    check(len(frames) == len(records), "%s: %d frames for %d records"
          % (name, len(frames), len(records)))
    for i, (rec, frame) in enumerate(zip(records, frames)):
        try:
            got = apache_decode(schema, frame, schema_id)
        except Exception as e:  # noqa: BLE001 - any failure of the oracle is a mismatch
            check(False, "%s record %d: Apache Avro cannot decode our bytes: %r" % (name, i, e))
            continue
        check(same(got, rec), "%s record %d: Apache Avro decoded\n  %r\nexpected\n  %r"
              % (name, i, got, rec))
        theirs = apache_encode(schema, rec, schema_id)
        check(theirs == frame, "%s record %d: bytes differ\n ours   %s\n apache %s"
              % (name, i, frame.hex(), theirs.hex()))

    # 3. Apache -> ours
    theirs = [apache_encode(schema, r, schema_id) for r in records]
    rc, out, err = run(tool, ["decode", path, str(schema_id)],
                       "".join(f.hex() + "\n" for f in theirs))
    lines = out.split("\n")[:-1]
    check(rc == 0 and len(lines) == len(records), "%s: decode gave %d lines for %d records: %s"
          % (name, len(lines), len(records), err))
    for i, (rec, line) in enumerate(zip(records, lines)):
        if not check(not line.startswith("ERROR"), "%s record %d: we cannot decode Apache's "
                     "bytes %s: %s" % (name, i, theirs[i].hex(), line)):
            continue
        want = record_json(items, rec)
        got = json.loads(line)
        check(same(got, want), "%s record %d: decoded\n  %s\nexpected\n  %s"
              % (name, i, line, json.dumps(want, ensure_ascii=False)))

    # 4. hostile variants of Apache's bytes: each must be one ERROR line
    bad = []
    for f in theirs[:40]:
        for cut in sorted({0, 1, 4, 5, 6, len(f) // 2, len(f) - 1}):
            if cut < len(f):
                bad.append((f[:cut], "truncated at %d" % cut))
        bad.append((f + b"\x00", "trailing byte"))
        bad.append((b"\x01" + f[1:], "wrong magic"))
        bad.append((f[:1] + struct.pack(">I", schema_id + 1) + f[5:], "other schema id"))
    # huge string length for event_id (offset 6), bad op index, bad union index
    hdr = b"\x00" + struct.pack(">I", schema_id)
    bad.append((hdr + b"\x00" + b"\x80\xa4\xe8\x03" + b"ab", "huge length"))
    bad.append((hdr + b"\x08", "op index 4"))
    bad.append((hdr + b"\x00" + b"\x80" * 10 + b"\x01", "11-byte varint"))
    key_nullable = items[0]["nullable"]
    if not key_nullable:
        # op, event_id "", source "", ts 0, key "", then union index 2
        bad.append((hdr + b"\x00\x00\x00\x00\x00" + b"\x04", "union index 2"))
    rc, out, err = run(tool, ["decode", path, str(schema_id)],
                       "".join(b.hex() + "\n" for b, _ in bad))
    lines = out.split("\n")[:-1]
    check(rc == 0 and len(lines) == len(bad), "%s: hostile decode gave %d lines for %d inputs"
          % (name, len(lines), len(bad)))
    for (b, what), line in zip(bad, lines):
        check(line.startswith("ERROR ") and len(line) > 10,
              "%s: hostile input (%s) %s was not rejected: %s" % (name, what, b.hex(), line))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tool = sys.argv[1]
    rng = random.Random(20260115)
    with tempfile.TemporaryDirectory(prefix="exb-interop-") as tmp:
        interop(tool, tmp, "RPop", POPULATION, 42, 300, rng)
        interop(tool, tmp, "RAll", ALL_TYPES, 123456789, 700, rng)
        interop(tool, tmp, "RZero", ALL_TYPES[:3], 0, 50, rng)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
