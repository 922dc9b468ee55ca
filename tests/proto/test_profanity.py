"""Profanity (Debian's 0.13), a real terminal client, driven in tmux as a
person would: it logs in over STARTTLS, finds the message archive
(XEP-0313) and, with "/mam on", shows a contact's history from it when
the chat window opens.  Profanity 0.13 looks for urn:xmpp:mam:2 only on
the server's disco#info (test_mam.py checks the advertisement itself).

Skipped where profanity or tmux is not installed (make deps installs
both when run as root)."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

import xmpp_raw

pytestmark = pytest.mark.skipif(
    shutil.which('profanity') is None or shutil.which('tmux') is None,
    reason='profanity and tmux are needed (apt-get install profanity tmux)')

NO_MAM = "Server doesn't support MAM"


def tmux(*args):
    return subprocess.run(['tmux'] + list(args), capture_output=True,
                          text=True, timeout=10)


class Profanity:
    """profanity in a detached tmux session with a home of its own."""

    def __init__(self):
        self.home = tempfile.mkdtemp(prefix='profanity-test-')
        self.name = 'profanity-test-%d' % os.getpid()
        r = tmux('new-session', '-d', '-s', self.name, '-x', '200', '-y',
                 '50', 'env HOME=%s TERM=xterm profanity' % self.home)
        assert r.returncode == 0, r.stderr
        self.wait(lambda s: 'Profanity' in s or '/connect' in s)

    def screen(self):
        return tmux('capture-pane', '-p', '-t', self.name).stdout

    def wait(self, pred, timeout=15.0, what=None):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > deadline:
                raise AssertionError('profanity: no %s within %.0f s:\n%s'
                                     % (what or pred, timeout, s))
            time.sleep(0.1)

    def type(self, line):
        tmux('send-keys', '-t', self.name, '-l', line)
        tmux('send-keys', '-t', self.name, 'Enter')

    def close(self):
        tmux('send-keys', '-t', self.name, '/quit', 'Enter')
        time.sleep(0.3)
        tmux('kill-session', '-t', self.name)
        shutil.rmtree(self.home, ignore_errors=True)


@pytest.fixture
def profanity():
    p = Profanity()
    yield p
    p.close()


def test_profanity_loads_history_from_the_archive(server, profanity):
    # Some history between alice and bob, both online, then gone.
    a = server.login('alice@localhost', resource='earlier')
    b = server.login('bob@localhost', resource='earlier')
    try:
        a.presence()
        b.presence()
        for i in range(3):
            b.message('alice@localhost', 'archived from bob %d' % i)
            a.message('bob@localhost', 'archived from alice %d' % i)
        for c in (a, b):    # the messages crossed: each gets its three
            for _ in range(3):
                c.expect_stanza('message')
        a.end_stream()
        b.end_stream()
    finally:
        a.close()
        b.close()

    p = profanity
    p.type('/mam on')
    p.type('/connect alice@localhost server 127.0.0.1 port %d'
           % server.c2s_port)
    p.wait(lambda s: 'password' in s.lower(), what='password prompt')
    p.type(server.users['alice@localhost'])
    # the test certificate is self-signed
    p.wait(lambda s: '/tls allow' in s, what='certificate prompt')
    p.type('/tls allow')
    p.wait(lambda s: 'logged in successfully' in s, what='login')
    p.type('/msg bob@localhost')
    s = p.wait(lambda s: all('archived from %s %d' % (who, i) in s
                             for who in ('bob', 'alice') for i in range(3)),
               what='history from the archive')
    assert NO_MAM not in s, s
    p.type('/win 1')
    s = p.wait(lambda s: 'logged in successfully' in s, what='console')
    assert NO_MAM not in s, s
