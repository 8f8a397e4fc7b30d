#!/usr/bin/env python3
"""Test data for the integration tests: department source databases with
valid citizen ids (GB 11643) and unified social credit codes (GB 32100).

The check characters are computed here independently of exbus's C code, so
a test that passes proves both agree.

  gen.py person DB N [--start K]       table person (370600-GA-0001 items)
  gen.py company DB N [--start K]      table company (370600-SC-0001 items)
  gen.py id SEQ [REGION] [BIRTH]       one citizen id
  gen.py uscc SEQ                      one credit code
"""
import sqlite3
import sys

W11643 = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
W32100 = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def citizen_id(seq, region="370602", birth="19900101"):
    body = f"{region}{birth}{seq % 1000:03d}"
    s = sum(int(c) * w for c, w in zip(body, W11643))
    return body + "10X98765432"[s % 11]


def credit_code(seq):
    body = f"91370600{seq:09d}"  # 9 = 工商, 1 = 企业, 370600 = 烟台
    s = sum(USCC_CHARS.index(c) * w for c, w in zip(body, W32100))
    return body + USCC_CHARS[(31 - s % 31) % 31]


PERSON_DDL = """CREATE TABLE IF NOT EXISTS person(
  id_number TEXT PRIMARY KEY, name TEXT NOT NULL, gender TEXT, birth_date TEXT,
  address TEXT, region TEXT, phone TEXT, updated_at TEXT)"""

COMPANY_DDL = """CREATE TABLE IF NOT EXISTS company(
  credit_code TEXT PRIMARY KEY, name TEXT NOT NULL, legal_rep TEXT, legal_rep_id TEXT,
  reg_capital REAL, established TEXT, status TEXT, region TEXT, updated_at INTEGER)"""


def person_row(i):
    # ids must be unique: vary the birth date with i, the sequence with i % 1000
    birth = f"{1950 + i // 12000 % 60:04d}{1 + i // 1000 % 12:02d}{1 + i % 28:02d}"
    regions = ["370602", "370611", "370612"]
    region = regions[i % 3]
    return (citizen_id(i, region, birth), f"居民{i}", "男" if i % 2 else "女",
            f"{birth[:4]}-{birth[4:6]}-{birth[6:]}", f"烟台市某区某路{i}号", region,
            f"1380000{i % 10000:04d}", "2026-01-15T08:30:00Z")


def company_row(i):
    return (credit_code(i), f"烟台示例企业{i}有限公司", f"法人{i}",
            citizen_id(i, "370602", "19800101"), 100000.0 + i, "2010-05-01",
            "存续", "370602", 1768465800000 + i)


def fill(db, ddl, table, row, n, start):
    con = sqlite3.connect(db)
    con.execute(ddl)
    rows = [row(i) for i in range(start, start + n)]
    marks = ",".join("?" * len(rows[0])) if rows else ""
    with con:
        con.executemany(f"INSERT INTO {table} VALUES({marks})", rows)
    con.close()


def main(argv):
    if len(argv) >= 3 and argv[1] in ("person", "company"):
        start = int(argv[argv.index("--start") + 1]) if "--start" in argv else 0
        n = int(argv[3])
        if argv[1] == "person":
            fill(argv[2], PERSON_DDL, "person", person_row, n, start)
        else:
            fill(argv[2], COMPANY_DDL, "company", company_row, n, start)
    elif len(argv) >= 3 and argv[1] == "id":
        print(citizen_id(int(argv[2]), *argv[3:5]))
    elif len(argv) == 3 and argv[1] == "uscc":
        print(credit_code(int(argv[2])))
    elif len(argv) >= 3 and argv[1] == "ddl":
        print(PERSON_DDL if argv[2] == "person" else COMPANY_DDL)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
