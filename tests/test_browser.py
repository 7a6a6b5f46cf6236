"""Every page of the built book, opened in headless Chromium with the network off.

For each HTML page of ``_build/html`` (built by ``make book``) this asserts what a reader needs:

* the math is typeset: every ``.math`` element Sphinx wrote holds a MathJax rendering, and no raw TeX
  delimiters are left in the text;
* every image loaded;
* no console errors and no uncaught page errors;
* no request leaves the machine (every non-``file:``/``data:`` request is blocked and recorded);
* nothing is wider than the page at 1280 pixels: the document does not scroll sideways and no code block,
  table or equation needs a horizontal scrollbar.

The test needs the built book and Debian's Chromium (``make book``; ``make browser-deps`` installs
Chromium). Without them it is skipped, unless ``MMBOOK_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets), when it
fails instead.
"""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
REQUIRED = os.environ.get("MMBOOK_REQUIRE_BROWSER") == "1"
WIDTH = 1280


def _chromium() -> str | None:
    """Debian's chromium, or another Chromium build named by MMBOOK_CHROMIUM or on the PATH."""
    if os.environ.get("MMBOOK_CHROMIUM"):
        return os.environ["MMBOOK_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _missing() -> str | None:
    if not (HTML / "index.html").exists():
        return "the book is not built (make book)"
    if _chromium() is None:
        return "Debian's chromium is not installed (make browser-deps)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


def _pages() -> list[Path]:
    if not HTML.exists():
        return []
    skip = {"genindex.html", "search.html", "py-modindex.html"}
    return sorted(p for p in HTML.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts and p.name not in skip)


REASON = _missing()
if REASON and REQUIRED:
    pytest.fail(f"browser test required (MMBOOK_REQUIRE_BROWSER=1) but {REASON}", pytrace=False)
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND"])
        yield b
        b.close()


# What the page reports about itself once MathJax has finished.
_INSPECT = """async () => {
  if (!document.body || document.readyState !== 'complete') { throw new Error('not loaded'); }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = [...document.querySelectorAll('.math')];
  const untypeset = math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60));
  const main = document.querySelector('main') || document.body;
  const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const t = n.textContent;
    if (n.parentElement.closest('pre, code, script, style, mjx-container')) continue;
    if (/\\\\\\(|\\\\\\[|\\$\\$/.test(t)) raw.push(t.trim().slice(0, 60));
  }
  const images = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const wide = [...main.querySelectorAll('pre, table, mjx-container[display="true"], img, .output')]
    .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.tagName.toLowerCase() + ': ' + (e.textContent || e.src || '').trim().slice(0, 50));
  return {untypeset, raw, images, wide, docWidth: document.documentElement.scrollWidth};
}"""


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(HTML)))
def test_page_reads_offline(browser, page):
    ctx = browser.new_context(viewport={"width": WIDTH, "height": 900})
    remote, errors = [], []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            remote.append(url)
            r.abort()

    ctx.route("**/*", route)
    pg = ctx.new_page()
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    try:
        pg.goto(page.as_uri(), wait_until="load")
        report = None
        for _ in range(20):  # a redirecting page (the book's index.html): inspect where it lands
            try:
                report = pg.evaluate(_INSPECT)
                break
            except Exception:
                pg.wait_for_timeout(250)
                pg.wait_for_load_state("load")
        assert report is not None, "the page never finished loading"
    finally:
        ctx.close()
    problems = []
    if report["untypeset"]:
        problems.append(f"math not typeset: {report['untypeset'][:3]}")
    if report["raw"]:
        problems.append(f"raw TeX in the text: {report['raw'][:3]}")
    if report["images"]:
        problems.append(f"images not loaded: {report['images'][:3]}")
    if errors:
        problems.append(f"console errors: {errors[:3]}")
    if remote:
        problems.append(f"requests leaving the machine: {sorted(set(remote))[:3]}")
    if report["docWidth"] > WIDTH:
        problems.append(f"page is {report['docWidth']} px wide at a {WIDTH} px window")
    if report["wide"]:
        problems.append(f"wider than their box at {WIDTH} px: {report['wide'][:4]}")
    assert not problems, "\n".join(problems)
