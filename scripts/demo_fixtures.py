#!/usr/bin/env python3
"""Another platform's fixtures for `make demo-federation`: the repository's catalogue and
departments with every department moved to another area code (its USCC's characters 3-8, the
check character recomputed by GB 32100-2015), so that each platform's departments are its own.

usage: demo_fixtures.py AREA CITY_NAME LOG_ORIGIN OUT_DIR
"""
import json
import pathlib
import sys

CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def uscc(first17: str) -> str:
    total = sum(CHARS.index(c) * w for c, w in zip(first17, WEIGHTS))
    return first17 + CHARS[(31 - total % 31) % 31]


def main() -> None:
    area, city, origin, out = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
    root = pathlib.Path(__file__).resolve().parent.parent / "fixtures"
    departments = json.loads((root / "departments.json").read_text())
    catalogue = (root / "catalogue.json").read_text()
    moved = {}
    for d in [departments["platform"], *departments["departments"]]:
        new = uscc(d["uscc"][:2] + area + d["uscc"][8:17])
        moved[d["uscc"]] = new
        d["uscc"] = new
        d["name"] = d["name"].replace("示例市", city)
        if "area_code" in d:
            d["area_code"] = area
    departments["log_origin"] = origin
    for old, new in moved.items():
        catalogue = catalogue.replace(old, new)
    out.mkdir(parents=True, exist_ok=True)
    (out / "departments.json").write_text(json.dumps(departments, ensure_ascii=False, indent=2))
    (out / "catalogue.json").write_text(catalogue)


if __name__ == "__main__":
    main()
