"""Open the Snakemake report in headless Chromium and check that everything in it loads.

Debian's `chromium` is installed with apt-get when missing (needs root, as CI has); Playwright
drives it (its own browser download is not used: no internet). What is checked, in the browser:
- the page loads and the report's app renders without a JavaScript error or console error;
- every result the report embeds (Snakemake keeps them in the page's `results` object, each with a
  data URI and a MIME type) decodes in the browser: each image loads with a non-zero size, each
  SVG parses as SVG, each table (CSV) has a header and at least one row with the header's width,
  each text/HTML result is not empty;
- every figure can be opened from the report's own menu the way a reader does ("Figures", then
  each row's view button): the view then shows it as a decoded image.
A screenshot of the landing page and of one figure as the report shows it are written beside the
report, for a person to look at.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

# Runs in the page: every embedded result, decoded the way the browser does it.
CHECK_RESULTS_JS = """
async () => {
  const out = [];
  for (const [path, r] of Object.entries(results)) {
    const item = {path: path, name: r.name, mime: r.mime_type, category: (r.labels || null), ok: false, detail: ""};
    try {
      if (r.mime_type.startsWith("image/") && r.mime_type !== "image/svg+xml") {
        const img = new Image();
        await new Promise((resolve, reject) => { img.onload = resolve; img.onerror = () => reject(new Error("image did not decode")); img.src = r.data_uri; });
        item.ok = img.naturalWidth > 0 && img.naturalHeight > 0;
        item.detail = img.naturalWidth + "x" + img.naturalHeight;
      } else {
        const text = await (await fetch(r.data_uri)).text();
        if (r.mime_type === "image/svg+xml") {
          const doc = new DOMParser().parseFromString(text, "image/svg+xml");
          item.ok = doc.documentElement.nodeName === "svg" && !doc.querySelector("parsererror");
          item.detail = doc.documentElement.nodeName;
        } else if (r.mime_type === "text/csv" || r.mime_type === "text/tab-separated-values") {
          const sep = r.mime_type === "text/csv" ? "," : "\\t";
          const lines = text.split(/\\r?\\n/).filter(l => l.length > 0);
          const width = lines.length ? lines[0].split(sep).length : 0;
          item.ok = lines.length >= 2 && width >= 2;
          item.detail = (lines.length - 1) + " rows x " + width + " columns";
        } else {
          item.ok = text.trim().length > 0;
          item.detail = text.length + " characters";
        }
      }
    } catch (err) {
      item.detail = String(err);
    }
    out.push(item);
  }
  return out;
}
"""


def ensure_chromium() -> str:
    if not Path(CHROMIUM).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=900)
    if not Path(CHROMIUM).exists() or not shutil.which(CHROMIUM):
        raise RuntimeError(f"{CHROMIUM} is missing after apt-get install chromium")
    return CHROMIUM


def check_report(report: Path, shots: Path) -> dict:
    """Load `report` in headless Chromium; return what was seen (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=ensure_chromium(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.goto(report.resolve().as_uri(), wait_until="load")
        page.wait_for_function("typeof results === 'object' && document.body.innerText.length > 0")
        page.screenshot(path=str(shots / "landing.png"))
        items = page.evaluate(CHECK_RESULTS_JS)
        opened = _open_from_menu(page, items, shots)
        version = browser.version
        browser.close()
    return {"browser": version, "errors": errors, "results": items, "opened": opened}


def _open_from_menu(page, items: list[dict], shots: Path) -> list[dict]:
    """As a reader does: open the report's "Figures" list and click every PNG's view button (the
    eye icon in its row); each must then be shown as a decoded image. The first is screenshotted."""
    uris = page.evaluate("() => Object.fromEntries(Object.entries(results).map(([k, r]) => [k, r.data_uri]))")
    opened = []
    page.get_by_text("Figures", exact=True).first.click()
    rows = page.locator("tr", has=page.locator("a[iconname=eye]"))
    for k in range(rows.count()):
        row = rows.nth(k)
        path = row.locator("td").first.inner_text().strip()
        row.locator("a[iconname=eye]").click()
        try:  # the list stays; the view beside it shows the result
            page.wait_for_function(
                "uri => [...document.images].some(i => i.src === uri && i.complete && i.naturalWidth > 0)",
                arg=uris[path], timeout=10_000)
            shown = True
        except Exception:  # playwright's TimeoutError, or a row whose path is not a result
            shown = False
        opened.append({"path": path, "shown": shown})
        if k == 0:
            page.screenshot(path=str(shots / "figure.png"))
    return opened
