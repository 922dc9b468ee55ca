"""A real browser for the web tests: Debian's Chromium and ChromeDriver
driven by python3-selenium, and Converse.js from npm served on a local
page.  Everything is installed on first use (Debian packages as root
through tests/deps.sh; the npm package into build/npm/, kept between
runs); a test that cannot start the browser is skipped with the reason.
"""

import functools
import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import REPO

CONVERSE_VERSION = '14.0.0'
NPM_DIR = REPO / 'build' / 'npm'
DEBS = ('chromium', 'chromium-driver', 'python3-selenium')


def _install_debs():
    r = subprocess.run(['sh', str(REPO / 'tests' / 'deps.sh')] + list(DEBS),
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        pytest.skip('browser packages missing: ' + r.stdout.strip())


def converse_dist():
    """The directory of Converse.js's dist/ files (npm install once)."""
    dist = NPM_DIR / 'node_modules' / 'converse.js' / 'dist'
    if (dist / 'converse.min.js').exists():
        return dist
    if shutil.which('npm') is None:
        pytest.skip('npm is not installed: Converse.js cannot be fetched')
    NPM_DIR.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(['npm', 'install', '--no-audit', '--no-fund',
                        '--prefix', str(NPM_DIR),
                        'converse.js@' + CONVERSE_VERSION],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not (dist / 'converse.min.js').exists():
        pytest.skip('npm install converse.js failed: ' +
                    (r.stderr or r.stdout).strip()[-300:])
    return dist


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class StaticSite:
    """A directory served over plain HTTP on 127.0.0.1 (a free port)."""

    def __init__(self, root):
        handler = functools.partial(_Quiet, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                     handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return 'http://127.0.0.1:%d/%s' % (self.port, path.lstrip('/'))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def converse_page(root, settings):
    """Write root/index.html loading Converse.js (its dist/ copied beside)
    with settings (a dict, as JSON) for converse.initialize()."""
    import json
    root = Path(root)
    dst = root / 'dist'
    if not dst.exists():
        shutil.copytree(converse_dist(), dst)
    (root / 'index.html').write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        '<link rel="stylesheet" href="dist/converse.min.css">'
        '<script type="module" src="dist/converse.min.js"></script>'
        '</head><body><script type="module">'
        'converse.initialize(%s);</script></body></html>'
        % json.dumps(settings))
    return root / 'index.html'


def chromium(width=1200, height=800, resolver_rules=None):
    """A headless Chromium session (selenium WebDriver); skips the test
    when it cannot start.  resolver_rules: Chromium's
    --host-resolver-rules (e.g. 'MAP localhost:443 127.0.0.1:PORT').  The
    caller quits it."""
    _install_debs()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip('python3-selenium is not usable: %s' % e)
    o = webdriver.ChromeOptions()
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu',
              '--disable-dev-shm-usage', '--window-size=%d,%d'
              % (width, height), '--ignore-certificate-errors'):
        o.add_argument(a)
    if resolver_rules:
        o.add_argument('--host-resolver-rules=' + resolver_rules)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    o.binary_location = shutil.which('chromium') or '/usr/bin/chromium'
    try:
        return webdriver.Chrome(service=Service(
            shutil.which('chromedriver') or '/usr/bin/chromedriver'),
            options=o)
    except Exception as e:  # the browser could not start here
        pytest.skip('headless Chromium cannot start: %s' % str(e)[:300])


def browser_log(driver):
    try:
        return [e['message'] for e in driver.get_log('browser')]
    except Exception:
        return []
