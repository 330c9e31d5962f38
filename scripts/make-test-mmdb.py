#!/usr/bin/env python3
"""Writes tests/data/countries.mmdb: a tiny country database in MaxMind DB
format (the layout of GeoLite2-Country and DB-IP Lite country: country.iso_code)
for the tests, so no test downloads a real database.

    pip install mmdb-writer   # PyPI; brings netaddr
    scripts/make-test-mmdb.py tests/data/countries.mmdb

The networks are documentation ranges (RFC 5737, RFC 3849) plus a few
public blocks, each given a country by this file, not by any real database.
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

NETWORKS = [
    ("192.0.2.0/24", "DE"),
    ("198.51.100.0/24", "FR"),
    ("203.0.113.0/25", "JP"),
    # 203.0.113.128/25 is left out: an address with no entry is "unknown".
    ("8.8.8.0/24", "US"),
    ("2001:db8::/33", "NL"),
    ("2001:db8:8000::/33", "BR"),
]


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/countries.mmdb"
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="dlcount-test-Country",
        languages=["en"],
        description="dlcount test countries (not real data)",
    )
    for network, code in NETWORKS:
        writer.insert_network(IPSet([network]), {"country": {"iso_code": code}})
    writer.to_db_file(out)


if __name__ == "__main__":
    main()
