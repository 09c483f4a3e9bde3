#!/usr/bin/env python3
"""Threaded database workload for corpus/captures/sqlite-threads (see corpus/README.md).

THREADS threads share one process (one mm): each opens its own connection to one WAL-mode
SQLite file and runs ROUNDS transactions of inserts, an indexed range query and a delete. SQLite
releases the GIL while it works, so the threads run on both CPUs at once and the page cache,
malloc arenas and mmap'd WAL index are touched from both.
Usage: sqlite_threads.py DB_PATH [THREADS] [ROUNDS]
"""
import os
import sqlite3
import sys
import threading

path = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 60

for suffix in ("", "-wal", "-shm"):
    try:
        os.unlink(path + suffix)
    except FileNotFoundError:
        pass
db = sqlite3.connect(path)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, v TEXT)")
db.execute("CREATE INDEX tk ON t(k)")
db.commit()
db.close()


def worker(n):
    c = sqlite3.connect(path, timeout=30, check_same_thread=False)
    c.execute("PRAGMA mmap_size=16777216")
    c.execute("PRAGMA synchronous=OFF")
    for r in range(rounds):
        with c:
            c.executemany(
                "INSERT INTO t (k, v) VALUES (?, ?)",
                [((n * 7919 + r * 104729 + i) % 100000, "x" * (64 + i % 200)) for i in range(200)],
            )
        lo = (r * 977) % 100000
        c.execute("SELECT count(*), sum(length(v)) FROM t WHERE k BETWEEN ? AND ?", (lo, lo + 5000)).fetchone()
        if r % 5 == 4:
            with c:
                c.execute("DELETE FROM t WHERE k % 7 = ?", (n % 7,))
    c.close()


ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print("rows", sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0])
