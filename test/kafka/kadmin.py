#!/usr/bin/env python3
"""kadmin.py — Admin API chores of the tests on a real Kafka (confluent-kafka).

    kadmin.py reset BOOTSTRAP
        Gives the next integration test an exchange of its own on a shared
        cluster: deletes every exb.* topic, every consumer group, every ACL
        and every SCRAM user but `admin`, waits until the topics are gone,
        then creates exb.control (1 partition, compacted) and exb.audit
        (1 partition), as `exbus broker` does on the embedded broker, and
        waits until the broker serves them. A group still holding a member (a role killed
        with -9 by the previous test) cannot be deleted until the broker
        expires that member: its session timeout, 6 s in exbus. It is retried
        for up to 60 s.
    kadmin.py delete-topics BOOTSTRAP
        Deletes every exb.* topic and nothing else (clients keep running).
    kadmin.py add-user BOOTSTRAP NAME
        Creates or updates the SCRAM-SHA-512 credential of principal NAME;
        the password is read from the environment variable EXB_KAFKA_PASSWORD
        (never from the command line, so it does not show in `ps`).
    kadmin.py grant-txn BOOTSTRAP PRINCIPAL PREFIX
        Allows PRINCIPAL (e.g. User:exbus-router) WRITE and DESCRIBE on the
        transactional ids starting with PREFIX: what `exbus acl sync` tells
        the operator to grant with kafka-acls for exactly-once routing
        (librdkafka 2.0.2, which exbus uses, has no TransactionalId ACLs).

BOOTSTRAP is a PLAINTEXT listener (its clients are User:ANONYMOUS, a super
user of the test broker). confluent-kafka is installed into the virtualenv
$EXB_VENV (default: <source dir>/.cache/venv) on first use, as
test/integration/avro_interop.py does for avro. Exit status 0 on success,
1 with a message on stderr otherwise.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pyvenv  # noqa: E402  (test/pyvenv.py)
REQUIREMENT = "confluent-kafka>=2.3,<3"  # alter_user_scram_credentials came in 2.2


pyvenv.ensure("kadmin", ["confluent_kafka.admin"], [REQUIREMENT])
from confluent_kafka import KafkaException  # noqa: E402
from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo,  # noqa: E402
                                   ScramMechanism, UserScramCredentialUpsertion)

TIMEOUT = 30.0


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})


def exb_topics(adm):
    md = adm.list_topics(timeout=TIMEOUT)
    return sorted(t for t in md.topics if t.startswith("exb."))


def wait_futures(futs, what, ignore=()):
    """Waits for a dict of futures; returns {name: KafkaError} of the failures
    not in `ignore` (error codes)."""
    failed = {}
    for name, f in futs.items():
        try:
            f.result(timeout=TIMEOUT)
        except KafkaException as e:
            err = e.args[0]
            if err.code() not in ignore:
                failed[name] = err
    return failed


def delete_groups(adm, deadline):
    while True:
        groups = [g.group_id for g in adm.list_consumer_groups(request_timeout=TIMEOUT)
                  .result().valid]
        if not groups:
            return
        failed = wait_futures(adm.delete_consumer_groups(groups, request_timeout=TIMEOUT),
                              "delete group")
        if not failed:
            return
        if time.monotonic() > deadline:
            raise SystemExit("kadmin reset: cannot delete consumer groups: %s" %
                             "; ".join("%s: %s" % (g, e.str()) for g, e in failed.items()))
        time.sleep(0.5)  # NON_EMPTY_GROUP: a killed member not yet expired


def delete_topics(adm):
    from confluent_kafka import KafkaError
    topics = exb_topics(adm)
    if topics:
        failed = wait_futures(adm.delete_topics(topics, operation_timeout=TIMEOUT),
                              "delete topic", ignore=(KafkaError.UNKNOWN_TOPIC_OR_PART,))
        if failed:
            raise SystemExit("kadmin: cannot delete topics: %s" %
                             "; ".join("%s: %s" % (t, e.str()) for t, e in failed.items()))
    return topics


def reset(bootstrap):
    from confluent_kafka import KafkaError
    adm = admin(bootstrap)
    deadline = time.monotonic() + 60
    topics = delete_topics(adm)
    delete_groups(adm, deadline)
    acls = delete_acls(adm)
    users = delete_users(adm)
    while exb_topics(adm):
        if time.monotonic() > deadline:
            raise SystemExit("kadmin reset: topics still listed after deletion: %s" %
                             " ".join(exb_topics(adm)))
        time.sleep(0.2)
    base = [NewTopic("exb.control", 1, 1, config={"cleanup.policy": "compact"}),
            NewTopic("exb.audit", 1, 1)]
    while True:
        failed = wait_futures(adm.create_topics(base, operation_timeout=TIMEOUT),
                              "create topic", ignore=(KafkaError.TOPIC_ALREADY_EXISTS,))
        if not failed:
            break
        if time.monotonic() > deadline:
            raise SystemExit("kadmin reset: cannot create topics: %s" %
                             "; ".join("%s: %s" % (t, e.str()) for t, e in failed.items()))
        time.sleep(0.5)  # the deletion of the old partitions still in progress
    retries = wait_served(bootstrap, ["exb.control", "exb.audit"], deadline)
    print("reset: deleted %d exb.* topics, %d ACLs, %d SCRAM users; created exb.control, exb.audit "
          "(served after %d retries)" % (len(topics), acls, users, retries))


def delete_acls(adm):
    """Deletes every ACL (`exbus acl sync` of an earlier test). Returns the count."""
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    any_acl = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                               AclOperation.ANY, AclPermissionType.ANY)
    try:
        deleted = adm.delete_acls([any_acl], request_timeout=TIMEOUT)[any_acl].result()
    except KafkaException as e:
        if "SECURITY_DISABLED" in e.args[0].name():  # a broker without an authorizer
            return 0
        raise SystemExit("kadmin reset: cannot delete ACLs: %s" % e.args[0].str())
    return len(deleted)


def delete_users(adm):
    """Deletes every SCRAM user but `admin` (created at format time). Returns the count."""
    from confluent_kafka.admin import UserScramCredentialDeletion
    try:
        creds = adm.describe_user_scram_credentials(request_timeout=TIMEOUT).result()
    except KafkaException as e:
        raise SystemExit("kadmin reset: cannot list SCRAM users: %s" % e.args[0].str())
    dels = [UserScramCredentialDeletion(user, info.mechanism)
            for user, d in creds.items() if user != "admin" for info in d.scram_credential_infos]
    if dels:
        failed = wait_futures(adm.alter_user_scram_credentials(dels, request_timeout=TIMEOUT),
                              "delete user")
        if failed:
            raise SystemExit("kadmin reset: cannot delete SCRAM users: %s" %
                             "; ".join("%s: %s" % (u, e.str()) for u, e in failed.items()))
    return len({d.user for d in dels})


def wait_served(bootstrap, topics, deadline):
    """Waits until partition 0 of each topic answers ListOffsets: CreateTopics
    returns when the controller has committed the topic, and the broker takes
    a moment more (longer while it deletes the old partitions) to become its
    leader; until then a reader gets NOT_LEADER_OR_FOLLOWER or
    UNKNOWN_TOPIC_OR_PART. Returns how many queries failed first."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "exbus-kadmin-probe",
                  "enable.auto.commit": False})
    retries = 0
    try:
        for t in topics:
            while True:
                try:
                    c.get_watermark_offsets(TopicPartition(t, 0), timeout=5, cached=False)
                    break
                except KafkaException as e:
                    if time.monotonic() > deadline:
                        raise SystemExit("kadmin reset: %s [0] not served: %s" % (t, e.args[0].str()))
                    retries += 1
                    time.sleep(0.1)
    finally:
        c.close()
    return retries


def add_user(bootstrap, name):
    password = os.environ.get("EXB_KAFKA_PASSWORD")
    if not password:
        raise SystemExit("kadmin add-user: set EXB_KAFKA_PASSWORD to the password of %s" % name)
    adm = admin(bootstrap)
    up = UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
                                      password.encode())
    failed = wait_futures(adm.alter_user_scram_credentials([up], request_timeout=TIMEOUT),
                          "add user")
    if failed:
        raise SystemExit("kadmin add-user: %s: %s" % (name, failed[name].str()))
    print("user %s: SCRAM-SHA-512 credential set" % name)


def grant_txn(bootstrap, principal, prefix):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    adm = admin(bootstrap)
    acls = [AclBinding(ResourceType.TRANSACTIONAL_ID, prefix, ResourcePatternType.PREFIXED,
                       principal, "*", op, AclPermissionType.ALLOW)
            for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    for acl, fut in adm.create_acls(acls, request_timeout=TIMEOUT).items():
        fut.result()
    print("%s: WRITE, DESCRIBE on transactional ids %s*" % (principal, prefix))


def main(argv):
    if len(argv) == 3 and argv[1] == "reset":
        reset(argv[2])
    elif len(argv) == 4 and argv[1] == "add-user":
        add_user(argv[2], argv[3])
    elif len(argv) == 3 and argv[1] == "delete-topics":
        print("deleted %d exb.* topics" % len(delete_topics(admin(argv[2]))))
    elif len(argv) == 5 and argv[1] == "grant-txn":
        grant_txn(argv[2], argv[3], argv[4])
    else:
        raise SystemExit("usage: kadmin.py reset BOOTSTRAP | delete-topics BOOTSTRAP | "
                         "add-user BOOTSTRAP NAME | grant-txn BOOTSTRAP PRINCIPAL PREFIX")


if __name__ == "__main__":
    main(sys.argv)
