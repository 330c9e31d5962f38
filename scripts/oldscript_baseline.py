#!/usr/bin/env python3
"""Speed baseline: what the old nightly cron job did, as a typical admin wrote it.

A regex per line over Apache `combined` logs (plain, or gzip when the name
ends in .gz), GET/HEAD with status 200/206 on a path ending in .iso, one
download per (ip, file, day) kept in an in-memory set, monthly counts per file.
Prints {"<path>": {"YYYY-MM": downloads}}. It keeps the old script's quirks
(posixpath.normpath keeps a leading '//', absolute-form targets and Apache's
\\xhh escapes are not undone): it is the timing baseline, not the reference
answer.

usage: oldscript_baseline.py FILE...
"""
import gzip
import json
import posixpath
import re
import sys
from urllib.parse import unquote

LINE = re.compile(
    r'^(\S+) \S+ \S+ \[(\d{2})/(\w{3})/(\d{4}):[^\]]+\] "(\S+) (\S+)[^"]*" (\d{3}) '
)
MONTHS = {m: f"{i:02d}" for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

seen = set()
counts = {}
for name in sys.argv[1:]:
    opener = gzip.open if name.endswith(".gz") else open
    with opener(name, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            ip, day, mon, year, method, target, status = m.groups()
            if method not in ("GET", "HEAD") or status not in ("200", "206"):
                continue
            path = posixpath.normpath(unquote(target.split("?", 1)[0]))
            if not path.lower().endswith(".iso"):
                continue
            month = f"{year}-{MONTHS.get(mon, '00')}"
            key = (ip, path, f"{month}-{day}")
            if key in seen:
                continue
            seen.add(key)
            per_file = counts.setdefault(path, {})
            per_file[month] = per_file.get(month, 0) + 1

json.dump(counts, sys.stdout, indent=2, sort_keys=True)
print()
