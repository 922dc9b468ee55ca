"""Profanity (Debian's 0.13), the terminal client, driven in tmux as a
person would: each instance in a detached tmux session of its own, with a
home (HOME and the XDG directories) of its own in a temporary directory,
its screen read with `tmux capture-pane`.  Used by test_profanity.py and
test_omemo_profanity.py.

Skipped where profanity or tmux is not installed (make deps installs
both when run as root): test modules take `needs_profanity` as their
pytestmark."""

import itertools
import os
import shutil
import subprocess
import tempfile
import time

import pytest

needs_profanity = pytest.mark.skipif(
    shutil.which('profanity') is None or shutil.which('tmux') is None,
    reason='profanity and tmux are needed (apt-get install profanity tmux)')

_seq = itertools.count(1)


def tmux(*args):
    return subprocess.run(['tmux'] + list(args), capture_output=True,
                          text=True, timeout=10)


class Profanity:
    """profanity in a detached tmux session with a home of its own.  With
    debug, profanity logs every stanza it sends and receives (libstrophe's
    "SENT:"/"RECV:" lines) to its log file (log_text)."""

    def __init__(self, debug=False):
        self.home = tempfile.mkdtemp(prefix='profanity-test-')
        self.name = 'profanity-test-%d-%d' % (os.getpid(), next(_seq))
        env = ('HOME={h} XDG_CONFIG_HOME={h}/.config '
               'XDG_DATA_HOME={h}/.local/share TERM=xterm'
               .format(h=self.home))
        r = tmux('new-session', '-d', '-s', self.name, '-x', '200', '-y',
                 '50', 'env %s profanity%s' % (env,
                                               ' -l DEBUG' if debug else ''))
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

    def connect(self, server, jid):
        """/connect jid to server's STARTTLS port, its password, and the
        test's self-signed certificate accepted once; waits for the
        login."""
        self.type('/connect %s server 127.0.0.1 port %d'
                  % (jid, server.c2s_port))
        self.wait(lambda s: 'password' in s.lower(), what='password prompt')
        self.type(server.users[jid])
        self.wait(lambda s: '/tls allow' in s, what='certificate prompt')
        self.type('/tls allow')
        self.wait(lambda s: 'logged in successfully' in s, what='login')

    def log_text(self):
        path = os.path.join(self.home, '.local', 'share', 'profanity',
                            'logs', 'profanity.log')
        try:
            with open(path, encoding='utf-8', errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def close(self):
        tmux('send-keys', '-t', self.name, '/quit', 'Enter')
        time.sleep(0.3)
        tmux('kill-session', '-t', self.name)
        shutil.rmtree(self.home, ignore_errors=True)
