#!/usr/bin/env python3
"""Open licvault's verification page in headless Chromium (Debian's chromium and chromedriver,
driven by Selenium) as a phone would, and check what it shows.

Usage: page_check.py OUT_DIR BASE_URL VALID_LINK REVOKED_LINK FORGED_PAYLOAD SECRET...
  OUT_DIR         where the screenshots go: page-valid.png, page-revoked.png, page-forged.png
  BASE_URL        the server, e.g. http://127.0.0.1:8080
  VALID_LINK      the link QR's URL of a valid licence
  REVOKED_LINK    the link QR's URL of a revoked licence
  FORGED_PAYLOAD  an LV1: payload whose signature does not verify, pasted into the form at /v/
  SECRET...       values that must appear nowhere on any page (citizen ID numbers, full names)

Checks, for each page: the verdict element says 有效 VALID, 已吊销 REVOKED and 无效 INVALID
respectively; the page loaded no resource besides itself and has no script; the viewport is a
phone's (412 x 915) and the page fits it without horizontal scrolling; no SECRET is in the page.
Exit 0 when all hold.
"""
import os
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait


def driver(profile: str):
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=412,915", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def check(d, name: str, want: str, secrets, out_dir: str) -> None:
    verdict = d.find_element(By.ID, "verdict").text
    if want not in verdict:
        raise SystemExit(f"{name}: the verdict reads {verdict!r}, not {want!r}")
    html = d.page_source
    for s in secrets:
        if s in html:
            raise SystemExit(f"{name}: the page shows {s!r}")
    resources = d.execute_script("return performance.getEntriesByType('resource').length")
    scripts = d.execute_script("return document.scripts.length")
    if resources or scripts:
        raise SystemExit(f"{name}: the page loaded {resources} resource(s) and has {scripts} script(s)")
    wide = d.execute_script("return document.documentElement.scrollWidth > window.innerWidth")
    if wide:
        raise SystemExit(f"{name}: the page is wider than a phone's screen")
    d.save_screenshot(os.path.join(out_dir, f"page-{name}.png"))
    print(f"OK {name}: {verdict}")


def main(out_dir, base, valid, revoked, forged, *secrets) -> int:
    with tempfile.TemporaryDirectory() as profile:
        d = driver(profile)
        try:
            d.get(valid)
            check(d, "valid", "有效 VALID", secrets, out_dir)
            d.get(revoked)
            check(d, "revoked", "已吊销 REVOKED", secrets, out_dir)
            d.get(base.rstrip("/") + "/v/")
            d.find_element(By.ID, "payload").send_keys(forged)
            d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            # The click starts a navigation that may not have finished: wait for the answer page.
            WebDriverWait(d, 20).until(lambda d: d.find_elements(By.ID, "verdict"))
            check(d, "forged", "无效 INVALID", secrets, out_dir)
        finally:
            d.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
