#!/usr/bin/env bash
# What an operator sees: catalog import is idempotent and refuses bad or
# incompatible files with errors naming file, resource and item; the
# subscription lifecycle refuses what it must; routes and lists answer in
# JSON; a role with a bad config stops before touching any data.
source "$(dirname "$0")/lib.sh"

start_broker
CAT=$EXB_SRC/ops/examples/catalog.json
check "first import creates everything" "12" "$(exbus catalog import "$CAT" | grep -c ' new$')"
check "second import changes nothing" "12" "$(exbus catalog import "$CAT" | grep -c 'unchanged$')"
check "six resources listed" "6" "$(exbus catalog list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"

# A typo in a check name: refused, naming file, resource and item; nothing written.
python3 - "$CAT" "$T/typo.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["resources"][0]["items"][0]["check"] = "gb1164"
json.dump(c, open(sys.argv[2], "w"), ensure_ascii=False)
PY
set +e
out=$(exbus catalog import "$T/typo.json" 2>&1); rc=$?
set -e
check "bad catalog exits 1" "1" "$rc"
check "bad catalog error names file, resource and item" "yes" \
        "$(echo "$out" | grep -q 'typo.json.*370600-GA-0001.*id_number.*gb1164' && echo yes)"

# An incompatible change (a new required item) is refused; a compatible one is a new version.
python3 - "$CAT" "$T/v2.json" "$T/bad-v2.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["resources"][0]["items"].append({"name": "email", "title": "电子邮箱", "type": "C", "length": 100})
json.dump(c, open(sys.argv[2], "w"), ensure_ascii=False)
c["resources"][0]["items"][-1]["required"] = True
json.dump(c, open(sys.argv[3], "w"), ensure_ascii=False)
PY
set +e
out=$(exbus catalog import "$T/bad-v2.json" 2>&1); rc=$?
set -e
check "incompatible version refused" "1" "$rc"
check "refusal says why" "yes" "$(echo "$out" | grep -q 'email' && echo yes)"
check "compatible change is version 2" "yes" "$(exbus catalog import "$T/v2.json" | grep -q '370600-GA-0001 *new version 2' && echo yes)"
check "catalog shows version 2" "2" "$(exbus catalog show 370600-GA-0001 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"

# Subscription lifecycle.
expect_fail() { # DESCRIPTION PATTERN COMMAND...
        local what=$1 pat=$2 out rc
        shift 2
        set +e
        out=$("$@" 2>&1); rc=$?
        set -e
        check "$what: refused" "1" "$rc"
        check "$what: says why" "yes" "$(echo "$out" | grep -q "$pat" && echo yes)"
}
expect_fail "a none resource" "不予共享" exbus sub request --subscriber RS --resource 370600-GA-0002 --items id_number --purpose x
expect_fail "an unknown item" 'no item "salary"' exbus sub request --subscriber RS --resource 370600-GA-0001 --items id_number,salary --purpose x
expect_fail "no purpose" "purpose" exbus sub request --subscriber RS --resource 370600-GA-0001 --items id_number --purpose ""
S=$(exbus sub request --subscriber RS --resource 370600-GA-0001 --items id_number,name,region --purpose "参保核验")
check "conditional request waits for a decision" "requested" "$(exbus sub list --json | python3 -c "import json,sys; print([s['state'] for s in json.load(sys.stdin) if s['id']=='$S'][0])")"
expect_fail "a second open request" "already has subscription $S" exbus sub request --subscriber RS --resource 370600-GA-0001 --items id_number --purpose y
expect_fail "approving an item not requested" 'item "phone" was not requested' exbus sub approve "$S" --items id_number,phone
expect_fail "a filter with a typo" 'unknown item "regon"' exbus sub approve "$S" --filter 'regon == "370602"'
expect_fail "redacting the key" "cannot be redacted" exbus sub approve "$S" --mask id_number=redact
expect_fail "a bad mask" "partial" exbus sub approve "$S" --mask id_number=partial:x
expect_fail "a rejection without reason" "reason" exbus sub reject "$S"
exbus sub approve "$S" --mask id_number=partial:6:4 --filter 'region in ("370602", "370611")' --until 2099-12-31 >/dev/null
exbus routes --json >"$T/routes.json"
check "routes show the delivery topic" "exb.deliver.RS.370600-GA-0001" \
        "$(python3 -c "import json,sys; print([d['topic'] for r in json.load(open(sys.argv[1])) for d in r['deliveries']][0])" "$T/routes.json")"
check "routes show masks and filter" "partial:6:4|region in (\"370602\", \"370611\")" \
        "$(python3 -c "import json,sys; d=[d for r in json.load(open(sys.argv[1])) for d in r['deliveries']][0]; print(d['masks']['id_number']+'|'+d['filter'])" "$T/routes.json")"
check "re-approval keeps the rules" "partial:6:4" \
        "$(exbus sub approve "$S" --until 2099-06-30 >/dev/null && exbus routes --json | python3 -c "import json,sys; print([d['masks'].get('id_number') for r in json.load(sys.stdin) for d in r['deliveries']][0])")"
exbus sub revoke "$S" --reason "测试结束" >/dev/null
expect_fail "approving a revoked subscription" "cannot become approved" exbus sub approve "$S"
U=$(exbus sub request --subscriber GJJ --resource 370600-SC-0001 --items credit_code,name --purpose "单位核验")
check "unconditional resource is approved at once" "approved" "$(exbus sub list --json | python3 -c "import json,sys; print([s['state'] for s in json.load(sys.stdin) if s['id']=='$U'][0])")"

# A bad role config stops before touching data.
SRC=$T/ga.db
sqlite3 "$SRC" "$(python3 "$EXB_SRC/test/integration/gen.py" ddl person)"
printf 'dept = GA\nsource.path = %s\nsource.table.person = 370600-GA-0001\nsorce.type = sqlite\n' "$SRC" >"$T/typo.conf"
expect_fail "unknown config key" 'typo.conf:4: unknown key "sorce.type"' exbus producer -c "$T/typo.conf"
printf 'dept = SC\ndata.dir = %s\nsource.path = %s\nsource.table.person = 370600-GA-0001\n' "$T" "$SRC" >"$T/wrong-dept.conf"
expect_fail "publishing another department's resource" "provide" exbus producer -c "$T/wrong-dept.conf"
check "no trigger was installed by a refused config" "0" "$(sql "$SRC" "SELECT count(*) FROM sqlite_master WHERE type='trigger'")"
expect_fail "router without a mask secret" "mask.secret" env -u EXBUS_MASK_SECRET "$EXBUS" router -c /dev/null
finish
