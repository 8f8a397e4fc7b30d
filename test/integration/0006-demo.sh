#!/usr/bin/env bash
# `exbus demo` (the README's first command) runs to the end and leaves the
# databases it describes: masked rows at GJJ, hashed ids at RS, the rejected
# records at GA, nothing for MZ after its revocation.
source "$(dirname "$0")/lib.sh"
embedded_only "exbus demo always hosts its own embedded broker (it is the no-Kafka tour); it never talks to EXBUS_TEST_BROKERS"
exbus demo --data-dir "$T/demo" >"$T/demo.out" 2>"$T/demo.log" || { cat "$T/demo.out" "$T/demo.log"; fail "exbus demo failed"; }
D=$T/demo
check "GJJ copy: 70 people of region 370602" "70|370602" "$(sql "$D/GJJ.db" "SELECT count(*) || '|' || group_concat(DISTINCT region) FROM \"370600-GA-0001\"")"
check "GJJ ids are partially masked" "70" "$(sql "$D/GJJ.db" "SELECT count(*) FROM \"370600-GA-0001\" WHERE id_number GLOB '370602[*][*][*][*][*][*][*][*][0-9][0-9][0-9][0-9X]'")"
check "RS copy: 290 people with 64-hex hashed ids" "290" "$(sql "$D/RS.db" "SELECT count(*) FROM \"370600-GA-0001\" WHERE length(id_number) = 64")"
check "GA kept 3 rejected records with reasons" "3" "$(sql "$D/GA.db" "SELECT count(*) FROM exb_rejects WHERE reason <> ''")"
check "MZ got nothing after its revocation" "60" "$(sql "$D/MZ.db" "SELECT count(*) FROM \"370600-SC-0001\"")"
check "GJJ companies: only 存续" "75|存续" "$(sql "$D/GJJ.db" "SELECT count(*) || '|' || group_concat(DISTINCT status) FROM \"370600-SC-0001\"")"
check "summary lists the dead letters" "2" "$(grep -c '^exb.dlq.GA' "$T/demo.out")"
finish
