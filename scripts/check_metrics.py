#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the reference parser (prometheus_client)
and prints one line per sample family: `name type samples`. Exits non-zero when it does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
families = list(text_string_to_metric_families(text))
if not families:
    sys.exit("no metric families")
for f in families:
    print(f.name, f.type, len(f.samples))
