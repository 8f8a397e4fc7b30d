#!/usr/bin/env python3
"""Independent Kafka and SQLite probes of the fault-injection tests
(0021-broker-outage, 0022-sink-faults, 0023-hostile-ingest).

Everything here goes around exbus: confluent-kafka (a librdkafka build of
its own) for Kafka, Apache Avro (the PyPI package `avro`) to decode frames,
Python's sqlite3 for databases. Both packages live in the virtualenv
$EXB_VENV (default <source dir>/.cache/venv), installed on first use as
avro_interop.py and kadmin.py do.

  faults_kafka.py events BOOTSTRAP TOPIC
      Reads every partition of TOPIC from the start to its high watermark
      with isolation.level=read_committed, decodes each value with Apache
      Avro by the schema its frame names (schema id = offset of the schema
      record on exb.control, DESIGN §2) and prints one line per record:
      "<event_id> <op>". Exit 1 if a value is not a well-formed frame.
  faults_kafka.py committed BOOTSTRAP GROUP TOPIC
      The committed offsets of GROUP on every partition of TOPIC, summed
      (a partition without a commit counts 0).
  faults_kafka.py count BOOTSTRAP TOPIC
      The number of records of TOPIC (read_committed, every partition; a
      transaction's commit marker takes an offset but is no record).
  faults_kafka.py max-bytes BOOTSTRAP TOPIC BYTES
      Sets max.message.bytes of TOPIC (IncrementalAlterConfigs) and waits
      until DescribeConfigs shows it.
  faults_kafka.py dump BOOTSTRAP TOPIC
      JSON list of the records of TOPIC (read_committed, every partition):
      key, value length, SHA-256 of the value, headers (decoded as UTF-8).
  faults_kafka.py stream DB STOPFILE COUNTFILE [RATE]
      Writes changes into table person of DB (gen.py's rows: 70 % inserts,
      25 % updates, 5 % deletes, one transaction each) at RATE changes/s
      (default 40) until STOPFILE exists; after each change COUNTFILE holds
      the number of changes written.
  faults_kafka.py lock DB SECONDS READYFILE
      Holds BEGIN EXCLUSIVE on DB for SECONDS (READYFILE is created once the
      lock is held), then rolls back.
"""
import hashlib
import io
import json
import os
import random
import sqlite3
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pyvenv  # noqa: E402  (test/pyvenv.py)
REQUIREMENTS = ["confluent-kafka>=2.3,<3", "avro>=1.11,<2"]
TIMEOUT = 30.0


def consumer(bootstrap):
    from confluent_kafka import Consumer
    return Consumer({"bootstrap.servers": bootstrap, "group.id": "exbus-faults-probe",
                     "enable.auto.commit": False, "isolation.level": "read_committed",
                     "enable.partition.eof": True, "auto.offset.reset": "earliest",
                     "fetch.max.bytes": 64 * 1024 * 1024,
                     "max.partition.fetch.bytes": 64 * 1024 * 1024,
                     "receive.message.max.bytes": 80 * 1024 * 1024})


def read_all(bootstrap, topic):
    """Every record of every partition of topic, up to the (last stable)
    high watermark at the time of the call, in partition/offset order."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition
    c = consumer(bootstrap)
    try:
        md = c.list_topics(topic, timeout=TIMEOUT)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise SystemExit("faults_kafka: topic %s: %s" % (topic, t.error if t else "missing"))
        ends = {}
        for p in t.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT, cached=False)
            if hi > lo:
                ends[p] = hi
        if not ends:
            return []
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out, done, deadline = [], set(), time.monotonic() + 120
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise SystemExit("faults_kafka: %s: timed out reading to the end" % topic)
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    done.add(m.partition())
                    continue
                raise KafkaException(m.error())
            out.append(m)
            if m.offset() + 1 >= ends[m.partition()]:
                done.add(m.partition())
        return out
    finally:
        c.close()


def control_schema(bootstrap, schema_id, cache):
    """Avro schema text of the schema record at offset schema_id of exb.control."""
    if schema_id in cache:
        return cache[schema_id]
    from confluent_kafka import TopicPartition
    c = consumer(bootstrap)
    try:
        c.assign([TopicPartition("exb.control", 0, schema_id)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is None or m.error():
                continue
            if m.offset() != schema_id or not m.key().startswith(b"schema/"):
                raise SystemExit("faults_kafka: exb.control offset %d is not a schema record "
                                 "(key %r, offset %d)" % (schema_id, m.key(), m.offset()))
            import avro.schema
            cache[schema_id] = avro.schema.parse(json.loads(m.value())["avro"])
            return cache[schema_id]
    finally:
        c.close()
    raise SystemExit("faults_kafka: exb.control offset %d not readable" % schema_id)


def cmd_events(bootstrap, topic):
    import avro.io
    cache, bad = {}, 0
    for m in read_all(bootstrap, topic):
        v = m.value() or b""
        if len(v) < 5 or v[0] != 0:
            print("faults_kafka: %s [%d] @%d: not a Confluent frame" %
                  (topic, m.partition(), m.offset()), file=sys.stderr)
            bad += 1
            continue
        (sid,) = struct.unpack(">i", v[1:5])
        buf = io.BytesIO(v[5:])
        rec = avro.io.DatumReader(control_schema(bootstrap, sid, cache)).read(
            avro.io.BinaryDecoder(buf))
        if buf.tell() != len(v) - 5:
            print("faults_kafka: %s [%d] @%d: %d bytes after the datum" %
                  (topic, m.partition(), m.offset(), len(v) - 5 - buf.tell()), file=sys.stderr)
            bad += 1
            continue
        print(rec["event_id"], rec["op"])
    return 1 if bad else 0


def cmd_committed(bootstrap, group, topic):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        md = c.list_topics(topic, timeout=TIMEOUT)
        parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        total = 0
        for tp in c.committed(parts, timeout=TIMEOUT):
            if tp.error:
                raise SystemExit("faults_kafka: committed %s [%d]: %s" %
                                 (topic, tp.partition, tp.error))
            total += max(tp.offset, 0)
        print(total)
    finally:
        c.close()
    return 0


def cmd_count(bootstrap, topic):
    print(len(read_all(bootstrap, topic)))
    return 0


def cmd_max_bytes(bootstrap, topic, nbytes):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ResourceType)
    adm = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", str(nbytes),
                    incremental_operation=AlterConfigOpType.SET)])
    for f in adm.incremental_alter_configs([res]).values():
        f.result(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        d = adm.describe_configs([ConfigResource(ResourceType.TOPIC, topic)])
        cfg = list(d.values())[0].result(timeout=TIMEOUT)
        if cfg["max.message.bytes"].value == str(nbytes):
            return 0
        time.sleep(0.2)
    raise SystemExit("faults_kafka: %s: max.message.bytes not applied" % topic)


def cmd_dump(bootstrap, topic):
    out = []
    for m in read_all(bootstrap, topic):
        v = m.value() or b""
        out.append({"partition": m.partition(), "offset": m.offset(),
                    "key": (m.key() or b"").decode("utf-8", "replace"),
                    "len": len(v), "sha256": hashlib.sha256(v).hexdigest(),
                    "headers": {k: (hv or b"").decode("utf-8", "replace")
                                for k, hv in (m.headers() or [])}})
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


def cmd_stream(db, stopfile, countfile, rate=40.0):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    rnd = random.Random(20260115)
    live, nxt, n = [], 1_000_000, 0
    t0 = time.monotonic()
    while not os.path.exists(stopfile):
        r = rnd.random()
        con.execute("BEGIN IMMEDIATE")
        if r < 0.70 or len(live) < 10:
            row = gen.person_row(nxt)
            nxt += 1
            con.execute("INSERT INTO person VALUES(?,?,?,?,?,?,?,?)", row)
            live.append(row[0])
        elif r < 0.95:
            con.execute("UPDATE person SET phone = ?, updated_at = ? WHERE id_number = ?",
                        ("139%08d" % n, "2026-02-01T08:00:00Z", rnd.choice(live)))
        else:
            con.execute("DELETE FROM person WHERE id_number = ?",
                        (live.pop(rnd.randrange(len(live))),))
        con.execute("COMMIT")
        n += 1
        with open(countfile + ".tmp", "w") as f:
            f.write("%d\n" % n)
        os.replace(countfile + ".tmp", countfile)
        delay = t0 + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    con.close()
    return 0


def cmd_lock(db, seconds, readyfile):
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    open(readyfile, "w").close()
    time.sleep(seconds)
    con.execute("ROLLBACK")
    con.close()
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd in ("stream", "lock"):  # sqlite only: no packages needed
        if cmd == "stream" and len(argv) in (5, 6):
            return cmd_stream(argv[2], argv[3], argv[4], *(float(a) for a in argv[5:]))
        if cmd == "lock" and len(argv) == 5:
            return cmd_lock(argv[2], float(argv[3]), argv[4])
    pyvenv.ensure("faults_kafka", ["avro.io", "confluent_kafka"], REQUIREMENTS)
    if cmd == "events" and len(argv) == 4:
        return cmd_events(argv[2], argv[3])
    if cmd == "committed" and len(argv) == 5:
        return cmd_committed(argv[2], argv[3], argv[4])
    if cmd == "count" and len(argv) == 4:
        return cmd_count(argv[2], argv[3])
    if cmd == "max-bytes" and len(argv) == 5:
        return cmd_max_bytes(argv[2], argv[3], int(argv[4]))
    if cmd == "dump" and len(argv) == 4:
        return cmd_dump(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
