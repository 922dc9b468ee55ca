"""A real browser: Converse.js (npm) in Debian's headless Chromium finds
the server's web endpoint through XEP-0156 host-meta, logs in over
WebSocket (RFC 7395) or BOSH (XEP-0206), chats with a raw XMPP user both
ways, and uploads a file over HTTPS (XEP-0363) that the other user
downloads intact.  Skipped with the reason where the browser cannot start
or the packages cannot be installed.

Converse asks https://DOMAIN/.well-known/host-meta, on port 443: the
browser is told to reach localhost:443 at the daemon's https port
(Chromium's --host-resolver-rules), so nothing needs port 443 here."""

import os
import ssl
import time
import urllib.request

import pytest

from browser_helpers import StaticSite, browser_log, chromium, converse_page
from conftest import Server, free_ports
from im_helpers import IMFactory, is_message
from xmpp_raw import NS_CLIENT, q


class WebServer(Server):
    """A daemon with http and https listeners serving one web transport
    ('websocket' or 'bosh'), host-meta and upload."""

    def __init__(self, certificate, transport='websocket', **kw):
        super().__init__(certificate, **kw)
        self.http_port = None
        self.transport = transport

    def config_text(self):
        return super().config_text() + '\n'.join([
            'listen http %d address 127.0.0.1' % self.http_port,
            'listen https %d address 127.0.0.1' % self.https_port,
            'upload-url "https://localhost:%d"' % self.https_port,
            'upload-dir "%s"' % (self.dir / 'files'),
            '%s on' % self.transport, '']) + '\n'

    def start(self, create_users=True):
        self.http_port, self.https_port = free_ports(2)
        return super().start(create_users)


@pytest.fixture(params=['websocket', 'bosh'])
def web(certificate, request):
    srv = WebServer(certificate, request.param).start()
    yield srv
    srv.stop()


SHOT = '/tmp/converse-%s.png'
# Click bob's roster entry (Converse renders it as an a.open-chat)
# unless his chat shows already; then whether it shows the text.
OPEN_BOB = """
if (!document.querySelector('converse-chat-message')) {
    const a = [...document.querySelectorAll('a.open-chat')]
        .find(e => e.textContent.includes('bob@'));
    if (a) a.click();
}
"""
SHOWN = """
return !!document.querySelector('converse-chat-message') &&
    document.body.innerText.includes('%s');
"""
# Type into the open chat's text area and press Enter.
SEND = """
const t = document.querySelector('textarea.chat-textarea');
if (!t) return false;
t.value = '%s';
t.dispatchEvent(new Event('input', {bubbles: true}));
t.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', keyCode: 13,
    bubbles: true}));
return true;
"""


def wait_js(driver, script, timeout=40.0):
    end = time.time() + timeout
    while time.time() < end:
        v = driver.execute_script(script)
        if v:
            return v
        time.sleep(0.2)
    return None


def test_converse_finds_logs_in_chats_uploads(web, tmp_path):
    driver = chromium(resolver_rules='MAP localhost:443 127.0.0.1:%d'
                      % web.https_port)
    site = None
    try:
        converse_page(tmp_path, {
            'auto_login': True, 'jid': 'alice@localhost',
            'password': web.users['alice@localhost'],
            'view_mode': 'fullscreen', 'discover_connection_methods': True,
            'allow_non_roster_messaging': True, 'loglevel': 'info'})
        site = StaticSite(tmp_path)
        driver.get(site.url('index.html'))
        # logged in: a websocket session of alice on the daemon
        end = time.time() + 30
        while time.time() < end:
            out = web.ctl('sessions').stdout
            if 'alice@localhost' in out:
                break
            time.sleep(0.3)
        assert 'alice@localhost' in out, (out, browser_log(driver)[-20:])
        # over the transport that host-meta offered
        info = web.ctl('sessions', '--json').stdout
        assert ('"%s"' % web.transport) in info, info
        # a message from bob shows in the browser
        f = IMFactory(web)
        try:
            cb = f('bob@localhost')
            full = [ln.split()[1] for ln in out.splitlines()
                    if 'alice@localhost/' in ln]
            cb.message('alice@localhost', 'hello from bob')
            # bob appears with an unread message; open the chat (again
            # until it shows: a click while the roster is still being
            # drawn may be lost)
            ok = wait_js(driver, OPEN_BOB + SHOWN % 'hello from bob')
            assert ok, (browser_log(driver)[-20:], driver.execute_script(
                "return [...document.querySelectorAll('a')].map(e => "
                "e.className + ':' + e.textContent.trim().slice(0, 30))"))
            # and alice answers from the browser
            assert wait_js(driver, SEND % 'hello from the browser'), \
                browser_log(driver)[-20:]
            cb.wait(is_message(body='hello from the browser'), timeout=15)
            # a file uploaded from the browser (XEP-0363): bob gets its
            # URL and downloads the same bytes
            data = os.urandom(3000)
            path = tmp_path / 'photo.bin'
            path.write_bytes(data)
            inp = wait_js(driver, "return document.querySelector("
                          "'input.fileupload')")
            assert inp, driver.execute_script(
                "return [...document.querySelectorAll('input, button')]"
                ".map(e => e.outerHTML.slice(0, 120))")
            inp.send_keys(str(path))
            try:
                m = cb.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
                            'photo.bin' in (el.findtext(q(NS_CLIENT,
                                                          'body')) or ''),
                            timeout=30)
            except AssertionError as e:
                raise AssertionError('%s\nbrowser: %s' % (
                    e, '\n'.join(browser_log(driver)[-30:])))
            url = m.findtext(q(NS_CLIENT, 'body')).strip()
            assert url.startswith('https://localhost:%d/' % web.https_port)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
                assert r.read() == data
            driver.save_screenshot(SHOT % web.transport)
            assert full
        finally:
            f.close_all()
    finally:
        if site is not None:
            site.close()
        driver.quit()
