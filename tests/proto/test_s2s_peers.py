"""Federation with the servers people run: xmppd (a.test) and a throwaway
Prosody (p.test) from Debian on loopback, each finding the other through
the SRV records of a throwaway dnsmasq (Prosody through libunbound with
dnsmasq as its forwarder).  Messages both ways, a subscription approved
across, presence, dialback with self-signed certificates.  Skipped with
the reason when Prosody or dnsmasq cannot be installed or started."""

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, free_ports
from test_s2s import (Dns, FedServer, make_cert, records, roster_of,
                      wait_presence)
from xmpp_raw import NS_CLIENT, RawClient, assert_sasl_success, q, tostr


def install(pkg, binary):
    if shutil.which(binary):
        return
    r = subprocess.run(['sh', str(REPO / 'tests' / 'deps.sh'), pkg],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not shutil.which(binary):
        pytest.skip('%s missing: %s' % (pkg, r.stdout.strip()[-200:]))


class Prosody:
    """prosody -F in a temp dir: one host, c2s and s2s on loopback."""

    def __init__(self, domain, dns_port, s2s_port):
        install('prosody', 'prosody')
        self.domain = domain
        self.dir = Path(tempfile.mkdtemp(prefix='prosody-'))
        (self.dir / 'data').mkdir()
        self.c2s_port, = free_ports(1)
        self.s2s_port = s2s_port
        self.cert, self.key = make_cert(self.dir, domain)
        self.conf = self.dir / 'prosody.cfg.lua'
        d = str(self.dir)
        self.conf.write_text('\n'.join([
            'run_as_root = true',
            'pidfile = "%s/prosody.pid"' % d,
            'data_path = "%s/data"' % d,
            'log = { { levels = { min = "debug" }, to = "file", '
            'filename = "%s/prosody.log" } }' % d,
            'interfaces = { "127.0.0.1" }',
            'c2s_ports = { %d }' % self.c2s_port,
            's2s_ports = { %d }' % self.s2s_port,
            'c2s_direct_tls_ports = {}', 's2s_direct_tls_ports = {}',
            'http_ports = {}', 'https_ports = {}',
            'modules_enabled = { "roster", "saslauth", "tls", "dialback", '
            '"disco", "ping", "presence" }',
            's2s_secure_auth = false',
            'c2s_require_encryption = false',
            'authentication = "internal_plain"',
            # libunbound: dnsmasq as the forwarder, on loopback, for a
            # special-use domain it would otherwise answer itself
            'unbound = { resolvconf = false, hoststxt = false, '
            'forward = "127.0.0.1@%d", options = { '
            '["local-zone:"] = "test. transparent", '
            '["do-not-query-localhost:"] = "no" } }' % dns_port,
            'VirtualHost "%s"' % domain,
            '  ssl = { certificate = "%s", key = "%s" }' % (self.cert,
                                                            self.key),
            '']))
        r = subprocess.run(['prosodyctl', '--config', str(self.conf),
                            'register', 'bob', domain, 'bob-secret'],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            pytest.skip('prosodyctl register failed: %s' % r.stderr[-200:])
        self.proc = subprocess.Popen(
            ['prosody', '--config', str(self.conf), '-F'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.time() + 20
        while time.time() < end:
            try:
                import socket
                socket.create_connection(('127.0.0.1', self.c2s_port),
                                         timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        pytest.skip('prosody did not start: %s' % self.log()[-500:])

    def log(self):
        try:
            return (self.dir / 'prosody.log').read_text(errors='replace')
        except OSError:
            return ''

    def user(self, name, resource='r'):
        c = RawClient(self.c2s_port)
        c.open_stream(to=self.domain)
        c.starttls()
        c.open_stream(to=self.domain)
        assert_sasl_success(c.sasl_plain(name, name + '-secret'))
        c.open_stream(to=self.domain)
        c.bind(resource)
        c.presence()
        return c

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def with_prosody(tmp_path):
    pa, pp = free_ports(2)
    dns = Dns(records({'a.test': pa, 'p.test': pp}))
    srv = prosody = None
    try:
        cert = make_cert(tmp_path, 'a.test')
        srv = FedServer((str(cert[0]), str(cert[1])), 'a.test', pa,
                        dns.port).start()
        prosody = Prosody('p.test', dns.port, pp)
        yield srv, prosody
    finally:
        if prosody is not None:
            log = prosody.log()
            lines = [ln for ln in log.splitlines()
                     if 's2s' in ln or 'dns' in ln.lower() or
                     'unbound' in ln or 'error' in ln]
            print('--- prosody log (s2s, dns, errors) ---\n' +
                  '\n'.join(lines[-60:]))
            prosody.stop()
        if srv is not None:
            srv.stop()
        dns.stop()


def test_prosody_messages_both_ways(with_prosody):
    srv, prosody = with_prosody
    alice = srv.user('alice')
    bob = prosody.user('bob')
    try:
        alice.message('bob@p.test/r', 'hello prosody', mid='m1')
        m = bob.expect_stanza('message', timeout=30)
        assert m.get('from') == 'alice@a.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello prosody'
        bob.message('alice@a.test/r', 'hello xmppd', mid='m2')
        m = alice.expect_stanza('message', timeout=30)
        assert m.get('from') == 'bob@p.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello xmppd'
    finally:
        alice.close()
        bob.close()
    out = srv.ctl('s2s').stdout
    assert 'p.test' in out and 'dialback' in out, out


def test_prosody_subscription_and_presence(with_prosody):
    srv, prosody = with_prosody
    alice = srv.user('alice')
    bob = prosody.user('bob')
    try:
        roster_of(alice)
        roster_of(bob)
        alice.send("<presence to='bob@p.test' type='subscribe'/>")
        wait_presence(bob, 'alice@a.test', 'subscribe', timeout=30)
        bob.send("<presence to='alice@a.test' type='subscribed'/>")
        wait_presence(alice, 'bob@p.test', 'subscribed', timeout=30)
        wait_presence(alice, 'bob@p.test/r', None, timeout=30)
        assert roster_of(alice).get('bob@p.test') == 'to'
        bob.send("<presence type='unavailable'/>")
        wait_presence(alice, 'bob@p.test/r', 'unavailable', timeout=30)
    finally:
        alice.close()
        bob.close()
