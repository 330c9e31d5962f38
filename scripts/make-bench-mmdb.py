#!/usr/bin/env python3
"""Writes a country database in MaxMind DB format shaped like a real one
(thousands of IPv4 and IPv6 networks, so a lookup walks a deep tree) for
scripts/bench.sh's BENCH_GEOIP: the cost of --geoip without downloading
GeoLite2 or DB-IP. Not real data: networks and countries are drawn from a
seeded generator.

    pip install mmdb-writer   # PyPI; brings netaddr
    scripts/make-bench-mmdb.py /tmp/bench-countries.mmdb [NETWORKS]
"""
import random
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPNetwork, IPSet

CODES = "DE FR US GB NL JP BR IN CN RU IT ES PL SE CA AU KR MX AR ZA".split()


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/bench-countries.mmdb"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    rng = random.Random(1)
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="dlcount-bench-Country",
        languages=["en"],
        description="dlcount benchmark countries (not real data)",
    )
    by_code = {c: [] for c in CODES}
    for _ in range(n):
        prefix = rng.randint(14, 24)
        addr = rng.getrandbits(32) >> (32 - prefix) << (32 - prefix)
        net = IPNetwork(f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}.{addr & 255}/{prefix}")
        by_code[rng.choice(CODES)].append(net)
    for _ in range(n // 10):
        prefix = rng.randint(29, 48)
        addr = (0x2000 << 112) | (rng.getrandbits(108) >> (128 - prefix) << (128 - prefix))
        by_code[rng.choice(CODES)].append(IPNetwork((addr, prefix), version=6))
    for code, nets in by_code.items():
        writer.insert_network(IPSet(nets), {"country": {"iso_code": code}})
    writer.to_db_file(out)


if __name__ == "__main__":
    main()
