"""The e2e suites' own reading of a server's plain access log.

An answer computed apart from dlcount: a small parser of the plain log a
real server (Apache, nginx) wrote beside the one it fed to dlcount, applying
DESIGN.md's counting rules (GET/HEAD, status 200/206, a normalised path that
ends in .iso; one download per client, path and day). The suites compare
`dlcount-pipe report` with what this module computes, so it must never share
code with dlcount. The lines come from curl, wget and aria2 only, which keeps
the parser small; a line it cannot read stops the suite rather than being
skipped.

Also a command: `python3 plainlog.py json-equal A B` exits 0 when the two
JSON files are equal whatever their key order and layout.
"""

import json
import re
import sys
import urllib.parse

MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

# Apache's combined-style lines (the suites' plain logs): client, day, month,
# year, request line, status, bytes; the rest of the line is not needed.
APACHE = re.compile(
    r'^(\S+) \S+ \S+ \[(\d\d)/(\w{3})/(\d{4}):[^\]]+\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) ')

# nginx's recommended `log_format dlcount` (src/logformat/nginx.rs), whole.
NGINX_DLCOUNT = re.compile(
    r'^(\S+) - \S+ \[(\d\d)/(\w{3})/(\d{4}):[^\]]+\] "([^"]*)" (\d{3}) (\d+) '
    r'"[^"]*" "[^"]*" [\d.]+ [\d.]+ "[^"]*" "[^"]*"$')


def norm(target):
    """The URL path a request names: query dropped, %-escapes decoded,
    empty and `.` segments dropped, `..` resolved."""
    segs = []
    for s in urllib.parse.unquote(target.split("?", 1)[0]).split("/"):
        if s in ("", "."):
            continue
        if s == "..":
            if segs:
                segs.pop()
        else:
            segs.append(s)
    return "/" + "/".join(segs)


def counted_lines(log, line_re, name="the plain log"):
    """Yields (client, path, day, month, bytes) for each line of `log` that
    counts; `day` is (year, month, day), `month` is "YYYY-MM"."""
    for line in open(log, encoding="utf-8", errors="replace"):
        m = line_re.match(line.rstrip("\n"))
        if not m:
            sys.exit("unparsed line in %s: %s" % (name, line))
        ip, day, mon, year, request, status, nbytes = m.groups()
        parts = request.split(" ")
        if len(parts) < 2:
            continue
        method, path = parts[0], norm(parts[1])
        if method not in ("GET", "HEAD") or status not in ("200", "206") or not path.endswith(".iso"):
            continue
        month = "%s-%02d" % (year, MONTHS.index(mon) + 1)
        yield ip, path, (year, mon, day), month, 0 if nbytes == "-" else int(nbytes)


def cell(tree, *keys):
    """The {"downloads", "requests", "bytes"} cell at tree[k1][k2]..., made
    on first use."""
    for k in keys[:-1]:
        tree = tree.setdefault(k, {})
    return tree.setdefault(keys[-1], {"downloads": 0, "requests": 0, "bytes": 0})


def json_equal(a, b):
    with open(a) as fa, open(b) as fb:
        return json.load(fa) == json.load(fb)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "json-equal":
        try:
            sys.exit(0 if json_equal(sys.argv[2], sys.argv[3]) else 1)
        except (OSError, ValueError):
            sys.exit(1)
    sys.exit("usage: plainlog.py json-equal A B")
