"""Fixtures for the protocol tests: a real xmppd on private loopback ports
with a generated configuration and certificate, users created through
xmppctl, and checks on the daemon's exit (status 0, no sanitizer report).

    server          one daemon per test module (module attribute
                    SERVER_OPTIONS overrides the configuration)
    server_factory  daemons per test, for tests that stop or restart them
"""

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import unprivileged  # noqa: E402
import xmpp_raw  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
XMPPD_BIN = os.environ.get('XMPPD_BIN', str(REPO / 'build' / 'xmppd'))
XMPPCTL_BIN = os.environ.get('XMPPCTL_BIN', str(REPO / 'build' / 'xmppctl'))

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
SANITIZER_RE = re.compile(r'ERROR: (Address|Leak|Memory|Thread)Sanitizer|'
                          r'runtime error:')

# The users every module's daemon starts with.
USERS = {
    'alice@localhost': 'alice-secret',
    'bob@localhost': 'bob-secret',
}

_live_servers = []


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then
    released just before the daemon binds them)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope='session')
def certificate(tmp_path_factory):
    """A self-signed EC (prime256v1) certificate for localhost, made once
    per session; ecdsa-with-SHA256 so tls-server-end-point uses SHA-256."""
    d = tmp_path_factory.mktemp('cert')
    cert, key = d / 'cert.pem', d / 'key.pem'
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
         'ec_paramgen_curve:prime256v1', '-sha256', '-nodes', '-days', '30',
         '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
         '-keyout', str(key), '-out', str(cert)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


class Server:
    """One xmppd process and its private directory."""

    def __init__(self, certificate, directory=None, starttls='required',
                 limits=None, extra='', users=USERS, host_extra='',
                 components=None):
        self.dir = Path(directory or tempfile.mkdtemp(prefix='xmppd-test-'))
        self.cert = self.dir / 'cert.pem'
        self.key = self.dir / 'key.pem'
        if not self.cert.exists():
            shutil.copy(certificate[0], self.cert)
            shutil.copy(certificate[1], self.key)
            os.chmod(self.key, 0o600)
        self.db = self.dir / 'xmppd.db'
        self.sock = self.dir / 'xmppd.sock'
        self.conf = self.dir / 'xmppd.conf'
        self.stderr_path = self.dir / 'xmppd.stderr'
        self.starttls = starttls
        self.limits = {'stanza-size': 262144, 'connections-per-ip': 0,
                       # many deliberate SASL failures come from 127.0.0.1
                       'auth-failures-per-ip': 100000}
        self.limits.update(limits or {})
        self.extra = extra
        self.host_extra = host_extra    # lines inside the host block
        # XEP-0114: {domain: secret or (secret, 'lines in the block')}, a
        # "listen component" on component_port when given
        self.components = dict(components or {})
        self.component_port = None
        self.users = dict(users)
        self.proc = None
        self.c2s_port = self.tls_port = None
        self._stderr = None
        self.checked_exit = False

    # -- configuration --

    def config_text(self):
        lines = [
            'log-level debug',
            'storage "%s"' % self.db,
            'control-socket "%s"' % self.sock,
            'scram-iterations 4096',
            'listen c2s %d address 127.0.0.1 starttls %s'
            % (self.c2s_port, self.starttls),
            'listen c2s-tls %d address 127.0.0.1' % self.tls_port,
            'limits {',
        ]
        for k, v in self.limits.items():
            lines.append('\t%s %s' % (k, v))
        lines += [
            '}',
            'host "localhost" {',
            '\tcertificate "%s"' % self.cert,
            '\tkey "%s"' % self.key,
        ]
        if self.host_extra:
            lines.append(self.host_extra)
        lines += [
            '}',
        ]
        if self.components:
            lines.append('listen component %d' % self.component_port)
            for domain, v in self.components.items():
                secret, more = (v, '') if isinstance(v, str) else v
                lines += ['component "%s" {' % domain,
                          '\tsecret "%s"' % secret]
                if more:
                    lines.append(more)
                lines.append('}')
        if self.extra:
            lines.append(self.extra)
        return '\n'.join(lines) + '\n'

    # -- process --

    def start(self, create_users=True):
        """Start the daemon (new ports each time), wait for the c2s port to
        accept, create the users."""
        assert self.proc is None or self.proc.poll() is not None
        argv = self.prepare()
        self._stderr = open(self.stderr_path, 'ab')
        self._stderr.write(b'--- %s\n' % ' '.join(argv).encode())
        self._stderr.flush()
        self.proc = subprocess.Popen(argv,
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._stderr,
                                     stderr=self._stderr, cwd=self.dir)
        self.checked_exit = False
        _live_servers.append(self)
        self._wait_ready()
        if create_users:
            for jid, password in self.users.items():
                r = self.ctl('adduser', jid, '--password-stdin',
                             input=password)
                assert r.returncode == 0, (
                    'xmppctl adduser %s: exit %d\n%s%s\n%s'
                    % (jid, r.returncode, r.stdout, r.stderr,
                       self.stderr_tail()))
        return self

    def prepare(self):
        """Choose the ports, write the configuration; the command line."""
        self.c2s_port, self.tls_port, self.component_port = free_ports(3)
        self.conf.write_text(self.config_text())
        return [XMPPD_BIN, '-d', '-f', str(self.conf)]

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail('xmppd exited with status %d during start-up\n%s'
                            % (self.proc.returncode, self.stderr_tail()),
                            pytrace=False)
            try:
                socket.create_connection(('127.0.0.1', self.c2s_port),
                                         timeout=0.5).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail('xmppd did not accept on port %d within %.0fs\n%s'
                            % (self.c2s_port, START_TIMEOUT,
                               self.stderr_tail()), pytrace=False)
            time.sleep(0.05)
        while not self.sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the daemon to exit; returns its status or None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, check=True):
        """SIGTERM; the daemon must exit 0 within STOP_TIMEOUT and without
        sanitizer reports.  Returns a list of problems (empty if clean);
        with check, fails the test on problems."""
        problems = []
        if self.proc is None:
            return problems
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.wait_exit()
        if status is None:
            problems.append('xmppd did not exit within %.0fs of SIGTERM'
                            % STOP_TIMEOUT)
            self.kill()
        elif status != 0:
            problems.append('xmppd exited with status %d' % status)
        problems += self.check_stderr()
        self.checked_exit = True
        self._close()
        if check and problems:
            pytest.fail('; '.join(problems) + '\n' + self.stderr_tail(),
                        pytrace=False)
        return problems

    def check_stderr(self):
        text = self.stderr_text()
        m = SANITIZER_RE.search(text)
        if m:
            return ['sanitizer report on stderr: %s' % text[
                max(0, m.start() - 200):m.start() + 3000]]
        return []

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        if self in _live_servers:
            _live_servers.remove(self)
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors='replace')
        except OSError:
            return ''

    def stderr_tail(self, lines=80):
        text = self.stderr_text().splitlines()
        return ('--- xmppd stderr (%s, last %d lines) ---\n%s'
                % (self.stderr_path, lines, '\n'.join(text[-lines:])))

    # -- xmppctl --

    def ctl(self, *args, input=None, socket_path=None, timeout=30):
        """Run xmppctl -s SOCKET args...; returns CompletedProcess (text)."""
        cmd = [XMPPCTL_BIN, '-s', str(socket_path or self.sock)] + list(args)
        return subprocess.run(cmd, input=input, capture_output=True,
                              text=True, timeout=timeout)

    def adduser(self, jid, password):
        r = self.ctl('adduser', jid, '--password-stdin', input=password)
        assert r.returncode == 0, 'adduser %s: exit %d: %s' % (
            jid, r.returncode, r.stderr)
        self.users[jid] = password

    # -- clients --

    def login(self, jid='alice@localhost', password=None, resource=None,
              tls='starttls', **kw):
        """A bound RawClient for jid (password from the users table)."""
        user = jid.split('@')[0]
        if password is None:
            password = self.users[jid]
        port = self.tls_port if tls == 'direct' else self.c2s_port
        return xmpp_raw.login(port, user, password, resource=resource,
                              tls=tls, **kw)

    def client(self, tls=False, **kw):
        """An unauthenticated RawClient on the c2s (or c2s-tls) port."""
        return xmpp_raw.RawClient(self.tls_port if tls else self.c2s_port,
                                  tls=tls, **kw)

    def assert_serves(self):
        """Robustness check: a fresh client logs in, binds, and gets an
        answer to an IQ addressed to the server."""
        assert self.proc.poll() is None, (
            'xmppd exited with status %s\n%s' % (self.proc.returncode,
                                                 self.stderr_tail()))
        c = self.login('alice@localhost', resource='fresh-check')
        try:
            c.send("<iq type='get' id='alive' to='localhost'>"
                   "<query xmlns='urn:example:alive-check'/></iq>")
            el = c.expect(xmpp_raw.q(xmpp_raw.NS_CLIENT, 'iq'))
            assert el.get('id') == 'alive' and el.get('type') in (
                'result', 'error'), xmpp_raw.tostr(el)
            c.end_stream()
        finally:
            c.close()


@pytest.fixture(scope='module')
def server(request, certificate):
    """One daemon for the module; SERVER_OPTIONS in the module overrides
    Server() keyword arguments (starttls, limits, extra)."""
    opts = getattr(request.module, 'SERVER_OPTIONS', {})
    srv = Server(certificate, **opts).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def server_factory(certificate):
    """Start daemons for one test: server_factory(**options) -> Server.
    Each is stopped (and checked) at teardown unless the test already did."""
    servers = []

    def make(start=True, **opts):
        srv = Server(certificate, **opts)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    problems = []
    for srv in servers:
        if not srv.checked_exit:
            problems += [p + '\n' + srv.stderr_tail()
                         for p in srv.stop(check=False)]
    if problems:
        pytest.fail('\n'.join(problems), pytrace=False)
    for srv in servers:
        shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the stderr of the running daemons to failed tests."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in list(_live_servers):
            report.sections.append(('xmppd stderr (%s)' % srv.dir,
                                    srv.stderr_tail(120)))


def pytest_sessionfinish(session, exitstatus):
    for srv in list(_live_servers):
        srv.kill()


def pytest_configure(config):
    if not os.access(XMPPD_BIN, os.X_OK):
        # Tests will fail at start-up with the path; say it once up front.
        sys.stderr.write('note: %s is not executable yet (run make)\n'
                         % XMPPD_BIN)


# -- another uid, for the control socket's permission tests --

@pytest.fixture(scope='session')
def other_user():
    """A throwaway unprivileged user and control group for the session
    (unprivileged.py).  Needs root, as CI has: skips otherwise, saying so;
    as root a missing tool fails the test instead, so that CI never leaves
    the permission tests out silently."""
    if os.geteuid() != 0:
        pytest.skip('needs root to create a user and act as it (CI runs '
                    'as root)')
    missing = unprivileged.missing_tools()
    if missing:
        pytest.fail('running as root, but %s missing (Debian packages '
                    'util-linux, passwd)' % ', '.join(missing))
    user = unprivileged.OtherUser()
    yield user
    user.delete()


def assert_control_socket(srv, uid, gid):
    """The control socket is a socket, mode 0660, owned by uid (the
    daemon's, or its 'user') and gid (the daemon's group, or
    'control-group')."""
    st = os.lstat(srv.sock)
    assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (uid, gid), (st.st_uid, st.st_gid)


def control_group_server(server_factory, user):
    """A daemon whose control-group is user's control group (other_user),
    its socket checked, in a directory anyone may pass through (0711)."""
    srv = server_factory(extra='control-group "%s"' % user.ctl_group)
    assert_control_socket(srv, os.geteuid(), user.ctl_gid)
    os.chmod(srv.dir, 0o711)
    return srv
