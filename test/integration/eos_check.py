#!/usr/bin/env python3
"""eos_check.py — an independent reader that counts event ids on topics.

    eos_check.py --brokers B --topic T [--topic T2 ...] [--expect N]
                 [--expect-topic T=N ...] [--peek] [--timeout S] [-X key=value ...]
                 [--key-partitions INGEST=DELIVERY ...]

Reads every partition of each topic from the beginning to the high
watermark it had when the check started, with isolation.level=read_committed
(records of aborted transactions are not counted, as a transactional
consumer would not see them), using confluent-kafka (librdkafka) and Apache
Avro (Python): nothing of exbus's own C code is involved.

Each value is Confluent-framed (byte 0 = 0, bytes 1-4 = the schema id, big
endian, DESIGN §3); the writer schema is the `avro` member of the control
record whose offset on exb.control equals that id (keys "schema/..."). The
whole datum is decoded with Apache Avro and its event_id taken; a value that
cannot be decoded is counted as undecodable. --peek reads only the
envelope's first two fields (op, event_id) without a schema: much faster,
for very large runs.

Prints one JSON object to stdout:
    {"<topic>": {"partitions": P, "messages": N, "distinct_event_ids": D,
                 "ops": {"CREATE": n, "UPDATE": n, "DELETE": n, "SNAPSHOT": n},
                 "undecodable": U, "duplicate_count": K,
                 "duplicates": [{"event_id": E, "count": C,
                                 "at": ["<partition>:<offset>", ...]}, ...],
                 "expected": X}, ...}
("ops" counts distinct event ids by the op of their first record)
(the duplicates list is cut at 50 entries; duplicate_count is the full
number of event ids seen more than once) and a one-line summary per topic
on stderr.

--key-partitions INGEST=DELIVERY (both also given as --topic) checks where
the router put each delivery: on the partition Kafka's default partitioner
(murmur2, computed here in Python) gives the key of the ingest record with the
same event id, whatever the delivery key (a masked key must not move a
record). The topic's report gains "key_partitions": {"checked": N,
"misplaced": M, "examples": [...]}.

Exit status: 0 when no topic has a duplicate event id, an undecodable value,
a misplaced delivery, or a distinct count other than expected (--expect N applies to every topic,
--expect-topic T=N to one); 1 otherwise; 2 on a usage or broker error
(e.g. a partition not read to its end within --timeout seconds, default 120).

confluent-kafka and avro are installed into the virtualenv $EXB_VENV
(default: <source dir>/.cache/venv) when the running interpreter lacks them,
as test/integration/avro_interop.py and test/kafka/kadmin.py do; the script
then re-executes itself with that venv's python.
"""

import argparse
import collections
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pyvenv  # noqa: E402  (test/pyvenv.py)
REQUIREMENTS = ["confluent-kafka>=2.3,<3", "avro>=1.11,<2"]
CONTROL_TOPIC = "exb.control"
OPS = ["CREATE", "UPDATE", "DELETE", "SNAPSHOT"]


pyvenv.ensure("eos_check", ["avro.io", "confluent_kafka"], REQUIREMENTS)
import avro.io  # noqa: E402
import avro.schema  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition  # noqa: E402


class BrokerError(Exception):
    pass


def consumer(conf):
    c = dict(conf)
    c.update({"group.id": "eos-check-%d" % os.getpid(), "enable.auto.commit": False,
              "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
              "isolation.level": "read_committed", "enable.partition.eof": False})
    return Consumer(c)


def read_all(conf, topic, timeout, on_msg):
    """Calls on_msg(msg) for every record of every partition of topic, from
    the beginning to the high watermarks of now. Returns the partition count."""
    c = consumer(conf)
    try:
        md = c.list_topics(topic, timeout=30)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise BrokerError("topic %s: %s" % (topic, t.error if t else "not found"))
        ends = {}
        for p in t.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if hi > lo:
                ends[p] = hi
        if not ends:
            return len(t.partitions)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        left = dict(ends)
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise BrokerError("topic %s: partition(s) %s not read to their high watermark "
                                  "within %d s (an open transaction?)" % (topic, sorted(left), timeout))
            msgs = c.consume(num_messages=5000, timeout=1.0)
            for m in msgs:
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise BrokerError("topic %s: %s" % (topic, m.error()))
                if m.offset() < ends.get(m.partition(), 0):
                    on_msg(m)
            # read_committed skips transaction markers and aborted records:
            # the position, not the last offset seen, says when a partition is done.
            for tp in c.position([TopicPartition(topic, p) for p in list(left)]):
                if tp.offset >= left[tp.partition]:
                    del left[tp.partition]
        return len(t.partitions)
    finally:
        c.close()


def load_schemas(conf, timeout):
    """Schema id (the control record's offset) -> parsed Avro schema."""
    schemas = {}

    def on_msg(m):
        key = (m.key() or b"").decode("utf-8", "replace")
        if not key.startswith("schema/") or m.value() is None:
            return
        try:
            rec = json.loads(m.value())
            schemas[m.offset()] = avro.schema.parse(rec["avro"])
        except (ValueError, KeyError, avro.schema.SchemaParseException):
            pass

    read_all(conf, CONTROL_TOPIC, timeout, on_msg)
    return schemas


def zigzag(buf, pos):
    """Avro long at buf[pos:]: (value, next pos); raises ValueError."""
    shift = result = 0
    for i in range(10):
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
    raise ValueError("varint longer than 10 bytes")


def peek_event_id(value):
    if value is None or len(value) < 5 or value[0] != 0:
        raise ValueError("not Confluent-framed")
    op, pos = zigzag(value, 5)
    if not 0 <= op < 4:
        raise ValueError("op %d" % op)
    n, pos = zigzag(value, pos)
    if n < 0 or pos + n > len(value):
        raise ValueError("event_id length %d" % n)
    return value[pos:pos + n].decode("utf-8"), OPS[op]


class Decoder:
    def __init__(self, schemas):
        self.schemas = schemas
        self.readers = {}

    def event_id(self, value):
        if value is None or len(value) < 5 or value[0] != 0:
            raise ValueError("not Confluent-framed")
        sid = int.from_bytes(value[1:5], "big")
        reader = self.readers.get(sid)
        if reader is None:
            schema = self.schemas.get(sid)
            if schema is None:
                raise ValueError("unknown schema id %d" % sid)
            reader = self.readers[sid] = avro.io.DatumReader(schema)
        buf = io.BytesIO(value[5:])
        rec = reader.read(avro.io.BinaryDecoder(buf))
        if buf.tell() != len(value) - 5:
            raise ValueError("%d trailing bytes" % (len(value) - 5 - buf.tell()))
        return rec["event_id"], rec["op"]


def murmur2(data):
    """Kafka's Utils.murmur2 (Java client), as an unsigned 32-bit value."""
    m, h = 0x5BD1E995, (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[4 * n4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def check_key_partitions(ingest, delivery):
    """Misplaced deliveries: partition != murmur2(ingest key) % partitions."""
    n, checked, bad = delivery["partitions"], 0, []
    for eid, at in delivery["where"].items():
        key = ingest["keys"].get(eid)
        want = None if key is None else (murmur2(key) & 0x7FFFFFFF) % n
        for place in at:
            checked += 1
            if int(place.split(":")[0]) != want:
                bad.append({"event_id": eid, "at": place, "want_partition": want})
    return {"checked": checked, "misplaced": len(bad), "examples": bad[:10]}


def check_topic(conf, topic, decode, timeout):
    seen = collections.defaultdict(list)
    keys = {}
    ops = collections.Counter()
    counts = {"messages": 0, "undecodable": 0}
    bad = []

    def on_msg(m):
        counts["messages"] += 1
        try:
            eid, op = decode(m.value())
        except Exception as e:  # any decode failure is reported, never fatal
            counts["undecodable"] += 1
            if len(bad) < 10:
                bad.append("%d:%d: %s" % (m.partition(), m.offset(), e))
            return
        if eid not in seen:
            ops[op] += 1
            keys[eid] = m.key() or b""
        seen[eid].append("%d:%d" % (m.partition(), m.offset()))

    partitions = read_all(conf, topic, timeout, on_msg)
    dups = [{"event_id": e, "count": len(at), "at": at[:10]}
            for e, at in seen.items() if len(at) > 1]
    dups.sort(key=lambda d: d["at"][0])
    out = {"partitions": partitions, "messages": counts["messages"],
           "distinct_event_ids": len(seen), "ops": {o: ops[o] for o in OPS},
           "undecodable": counts["undecodable"],
           "duplicate_count": len(dups), "duplicates": dups[:50]}
    if bad:
        out["undecodable_examples"] = bad
    return out, {"partitions": partitions, "keys": keys, "where": seen}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", action="append", required=True)
    ap.add_argument("--expect", type=int, help="distinct event ids every topic must have")
    ap.add_argument("--expect-topic", action="append", default=[], metavar="T=N")
    ap.add_argument("--peek", action="store_true",
                    help="read only op and event_id (no schema lookup, no full decode)")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--key-partitions", action="append", default=[], metavar="INGEST=DELIVERY")
    ap.add_argument("-X", action="append", default=[], metavar="key=value",
                    help="librdkafka property (e.g. security.protocol=SASL_PLAINTEXT)")
    args = ap.parse_args()
    conf = {"bootstrap.servers": args.brokers}
    for kv in args.X:
        k, _, v = kv.partition("=")
        conf[k] = v
    expect = {}
    for kv in args.expect_topic:
        t, _, n = kv.rpartition("=")
        expect[t] = int(n)
    try:
        if args.peek:
            decode = peek_event_id
        else:
            decode = Decoder(load_schemas(conf, args.timeout)).event_id
        report, ok, placed = {}, True, {}
        for topic in args.topic:
            t0 = time.monotonic()
            r, placed[topic] = check_topic(conf, topic, decode, args.timeout)
            want = expect.get(topic, args.expect)
            if want is not None:
                r["expected"] = want
            good = (r["duplicate_count"] == 0 and r["undecodable"] == 0
                    and (want is None or r["distinct_event_ids"] == want))
            ok &= good
            report[topic] = r
            print("eos_check: %s: %s: %d messages, %d distinct event ids%s, %d duplicated, "
                  "%d undecodable (%.1f s)" % (
                      "ok" if good else "FAIL", topic, r["messages"], r["distinct_event_ids"],
                      "" if want is None else " (expected %d)" % want, r["duplicate_count"],
                      r["undecodable"], time.monotonic() - t0), file=sys.stderr)
        for pair in args.key_partitions:
            ingest, _, delivery = pair.partition("=")
            if ingest not in placed or delivery not in placed:
                ap.error("--key-partitions %s: both topics must be given as --topic" % pair)
            r = check_key_partitions(placed[ingest], placed[delivery])
            report[delivery]["key_partitions"] = r
            ok &= r["misplaced"] == 0
            print("eos_check: %s: %s: %d deliveries on the partition of their ingest key, "
                  "%d misplaced" % ("ok" if not r["misplaced"] else "FAIL", delivery,
                                    r["checked"] - r["misplaced"], r["misplaced"]),
                  file=sys.stderr)
    except BrokerError as e:
        print("eos_check: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
