"""Open a quality report in headless Chromium: check every image loads and the table sorts, take a screenshot.

    python scripts/report_screenshot.py demo-output/report/report.html -o docs/report-screenshot.png

Needs Chromium (Debian: ``apt-get install -y chromium``). The page is opened from a
file, with a fresh profile and Chromium's background networking off; the checks run
in the browser on a copy of the page with one extra script: how many images decoded
(``naturalWidth > 0``), and whether clicking the "CLIP score" column sorts the rows by
that column. Exit status 1 when a check fails. Not part of the test suite (it needs a browser).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]

# Runs in the page once it has loaded: counts decoded images, clicks the CLIP score header twice,
# and writes what it saw into a <pre id="browser-check"> as JSON.
CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const header = document.querySelector('#classes th[data-key="clip_score"]');
  const column = Array.from(header.parentNode.children).indexOf(header);
  const read = () => Array.from(document.querySelectorAll("#classes tbody tr")).map(
    row => row.cells[column].dataset.value === "" ? null : Number(row.cells[column].dataset.value));
  header.click(); const ascending = read();
  header.click(); const descending = read();
  const out = document.createElement("pre"); out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length,
    decoded: images.filter(image => image.complete && image.naturalWidth > 0).length,
    ascending: ascending, descending: descending});
  document.body.appendChild(out);
});
</script>
"""


class Sources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.sources.append(dict(attrs).get("src") or "")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: install it (Debian: apt-get install -y chromium)")


def run_browser(page: Path, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120)


def browser_checks(page: Path) -> list[str]:
    """Problems the browser finds: undecoded images, a column that does not sort."""
    with tempfile.TemporaryDirectory() as directory:
        probe = Path(directory) / "probe.html"
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"),
                         encoding="utf-8")
        dom = run_browser(probe, "--dump-dom", "--virtual-time-budget=10000").stdout
    start = dom.find('<pre id="browser-check">')
    if start < 0:
        return ["the browser did not run the check script"]
    found = json.loads(dom[start:].split(">", 1)[1].split("</pre>", 1)[0].replace("&quot;", '"'))
    problems = []
    if found["decoded"] != found["images"]:
        problems.append(f"only {found['decoded']} of {found['images']} images decoded")
    values = [v for v in found["ascending"] if v is not None]
    if values != sorted(values) or found["ascending"][len(values):] != [None] * (len(found["ascending"]) - len(values)):
        problems.append(f"clicking 'CLIP score' did not sort ascending: {found['ascending']}")
    values = [v for v in found["descending"] if v is not None]
    if values != sorted(values, reverse=True):
        problems.append(f"clicking 'CLIP score' again did not sort descending: {found['descending']}")
    print(f"browser: {found['decoded']} of {found['images']} images decoded; "
          f"CLIP score column sorts both ways over {len(found['ascending'])} rows")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report.html written by `diffii-datasets report`")
    parser.add_argument("-o", "--output", type=Path, default=Path("docs/report-screenshot.png"))
    parser.add_argument("--window-size", default="1280,2000", help="width,height in pixels (default: %(default)s)")
    args = parser.parse_args()
    sources = Sources()
    sources.feed(args.report.read_text(encoding="utf-8"))
    problems = [f"image not embedded: {src[:60]}" for src in sources.sources if not src.startswith("data:image/")]
    problems += browser_checks(args.report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = run_browser(args.report, f"--screenshot={args.output.resolve()}", f"--window-size={args.window_size}")
    if not args.output.is_file():
        problems.append(f"no screenshot was written: {result.stderr[-500:]}")
    for problem in problems:
        print(f"PROBLEM {problem}")
    print(f"{len(sources.sources)} images in the page, all embedded" if not problems else "NOT OK")
    print(f"screenshot: {args.output}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
