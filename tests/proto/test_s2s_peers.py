"""Federation with the servers people run: xmppd (a.test) and a throwaway
Prosody (p.test) from Debian on loopback, each finding the other through
the SRV records of a throwaway dnsmasq (Prosody through libunbound with
dnsmasq as its forwarder).  Messages both ways, a subscription approved
across, presence, dialback with self-signed certificates.  Skipped with
the reason when Prosody or dnsmasq cannot be installed or started."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, free_ports
from test_s2s import (Dns, FedServer, domain_login, make_cert, records,
                      roster_of, wait_presence)
from xmpp_raw import NS_CLIENT, RawClient, assert_sasl_success, q, tostr


def install(pkg, binary):
    if shutil.which(binary):
        return
    r = subprocess.run(['sh', str(REPO / 'tests' / 'deps.sh'), pkg],
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not shutil.which(binary):
        pytest.skip('%s missing: %s' % (pkg, r.stdout.strip()[-200:]))


class Peer:
    """A server process of another implementation in its own temp dir:
    waiting for its c2s port, its log files, stopping it by PID."""

    logs = ()

    def wait_started(self, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                socket.create_connection(('127.0.0.1', self.c2s_port),
                                         timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        out = self.log()[-800:]
        self.stop()
        pytest.skip('%s did not start: %s' % (type(self).__name__, out))

    def log(self):
        text = ''
        for f in self.logs:
            try:
                text += (self.dir / f).read_text(errors='replace')
            except OSError:
                pass
        return text

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Prosody(Peer):
    """prosody -F in a temp dir: one host, c2s and s2s on loopback."""

    logs = ('prosody.log',)

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
        self.wait_started(20)

    def user(self, name, resource='r'):
        return domain_login(self.c2s_port, self.domain, name, resource)


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


class Ejabberd(Peer):
    """ejabberd from Debian as one Erlang VM in a temp dir (no node name,
    no epmd), its DNS through an inetrc naming the test's dnsmasq, and
    anonymous logins for the user on its side."""

    logs = ('server.out', 'log/ejabberd.log')

    def __init__(self, domain, dns_port, s2s_port):
        install('ejabberd', 'ejabberdctl')
        if shutil.which('erl') is None:
            pytest.skip('erl (from ejabberd\'s dependencies) missing')
        self.domain = domain
        self.dir = Path(tempfile.mkdtemp(prefix='ejabberd-'))
        for sub in ('spool', 'log'):
            (self.dir / sub).mkdir()
        self.c2s_port, = free_ports(1)
        cert, key = make_cert(self.dir, domain)
        pem = self.dir / 'ejabberd.pem'
        pem.write_text(Path(cert).read_text() + Path(key).read_text())
        (self.dir / 'inetrc').write_text(
            # resolv.conf and hosts unwatched: the kernel would replace
            # the name server with the system's at the first query
            '{resolv_conf, ""}.\n{hosts_file, ""}.\n'
            '{nameserver, {127,0,0,1}, %d}.\n{lookup, [dns]}.\n' % dns_port)
        (self.dir / 'ejabberd.yml').write_text('\n'.join([
            'hosts:', '  - %s' % domain,
            'loglevel: debug', 'log_rotate_count: 0',
            'certfiles:', '  - "%s"' % pem,
            'listen:',
            '  -', '    port: %d' % self.c2s_port, '    ip: "127.0.0.1"',
            '    module: ejabberd_c2s', '    starttls: true',
            '  -', '    port: %d' % s2s_port, '    ip: "127.0.0.1"',
            '    module: ejabberd_s2s_in',
            's2s_use_starttls: required',
            # anonymous logins, and accounts made by in-band
            # registration (ejabberd drops a subscription request to
            # an anonymous account, which "does not exist")
            'auth_method: [anonymous, internal]',
            'anonymous_protocol: sasl_anon',
            'acl:', '  local:', '    user_regexp: ""',
            'access_rules:', '  c2s:', '    allow: all',
            '  s2s:', '    allow: all', '  register:', '    allow: all',
            'modules:', '  mod_roster: {}', '  mod_disco: {}',
            '  mod_ping: {}', '  mod_s2s_dialback: {}',
            '  mod_register:', '    ip_access: all',
            '    access: register', '']))
        env = dict(os.environ,
                   EJABBERD_CONFIG_PATH=str(self.dir / 'ejabberd.yml'),
                   EJABBERD_LOG_PATH=str(self.dir / 'log' / 'ejabberd.log'),
                   ERL_CRASH_DUMP=str(self.dir / 'log' / 'erl_crash.dump'),
                   ERL_LIBS='/usr/lib/x86_64-linux-gnu',
                   ERL_INETRC=str(self.dir / 'inetrc'))
        self.proc = subprocess.Popen(
            ['erl', '-noinput', '-noshell', '-mnesia', 'dir',
             '"%s"' % (self.dir / 'spool'), '-s', 'ejabberd'],
            cwd=str(self.dir / 'spool'), env=env,
            stdout=open(self.dir / 'server.out', 'wb'),
            stderr=subprocess.STDOUT)
        self.wait_started(60)

    def registered(self, name, resource='r'):
        """name@DOMAIN registered in band (XEP-0077, password
        NAME-secret), then logged in like any account."""
        c = RawClient(self.c2s_port)
        c.open_stream(to=self.domain)
        c.starttls()
        c.open_stream(to=self.domain)
        c.send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'>"
               "<username>%s</username><password>%s-secret</password>"
               "</query></iq>" % (name, name))
        el = c.expect_stanza('iq', timeout=30)
        assert el.get('type') == 'result', tostr(el)
        c.close()
        return domain_login(self.c2s_port, self.domain, name, resource)

    def anonymous(self, resource='r'):
        c = RawClient(self.c2s_port)
        c.open_stream(to=self.domain)
        c.starttls()
        c.open_stream(to=self.domain)
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
               "mechanism='ANONYMOUS'/>")
        assert_sasl_success(c.next_element())
        c.open_stream(to=self.domain)
        jid = c.bind(resource)
        c.presence()
        return c, jid


@pytest.fixture
def with_ejabberd(tmp_path):
    pa, pe = free_ports(2)
    dns = Dns(records({'a.test': pa, 'e.test': pe}))
    srv = ejd = None
    try:
        cert = make_cert(tmp_path, 'a.test')
        srv = FedServer((str(cert[0]), str(cert[1])), 'a.test', pa,
                        dns.port).start()
        ejd = Ejabberd('e.test', dns.port, pe)
        yield srv, ejd
    finally:
        if ejd is not None:
            lines = [ln for ln in ejd.log().splitlines()
                     if 's2s' in ln or 'error' in ln.lower() or 'dns' in ln.lower() or 'resolv' in ln.lower()]
            print('--- ejabberd log (s2s, errors) ---\n' +
                  '\n'.join(lines[-60:]))
            ejd.stop()
        if srv is not None:
            srv.stop()
        dns.stop()


def test_ejabberd_messages_both_ways(with_ejabberd):
    srv, ejd = with_ejabberd
    alice = srv.user('alice')
    bob, bob_jid = ejd.anonymous()
    try:
        alice.message(bob_jid, 'hello ejabberd', mid='m1')
        m = bob.expect_stanza('message', timeout=30)
        assert m.get('from') == 'alice@a.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello ejabberd'
        bob.message('alice@a.test/r', 'hello xmppd', mid='m2')
        m = alice.expect_stanza('message', timeout=30)
        assert m.get('from') == bob_jid, tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello xmppd'
    finally:
        alice.close()
        bob.close()
    out = srv.ctl('s2s').stdout
    assert 'e.test' in out, out


def test_ejabberd_subscription_and_presence(with_ejabberd):
    """Both ways: alice (xmppd) subscribes to bob's presence on ejabberd,
    then bob to hers; each sees the other come and go."""
    srv, ejd = with_ejabberd
    bob = ejd.registered('bob')
    alice = srv.user('alice')
    bob_bare, bob_jid = 'bob@e.test', 'bob@e.test/r'
    try:
        roster_of(alice)
        roster_of(bob)
        alice.send("<presence to='%s' type='subscribe'/>" % bob_bare)
        wait_presence(bob, 'alice@a.test', 'subscribe', timeout=30)
        bob.send("<presence to='alice@a.test' type='subscribed'/>")
        wait_presence(alice, bob_bare, 'subscribed', timeout=30)
        wait_presence(alice, bob_jid, None, timeout=30)
        assert roster_of(alice).get(bob_bare) == 'to'
        bob.send("<presence to='alice@a.test' type='subscribe'/>")
        wait_presence(alice, bob_bare, 'subscribe', timeout=30)
        alice.send("<presence to='%s' type='subscribed'/>" % bob_bare)
        wait_presence(bob, 'alice@a.test', 'subscribed', timeout=30)
        wait_presence(bob, 'alice@a.test/r', None, timeout=30)
        assert roster_of(alice).get(bob_bare) == 'both'
        bob.send("<presence type='unavailable'/>")
        wait_presence(alice, bob_jid, 'unavailable', timeout=30)
        bob.send("<presence/>")
        wait_presence(alice, bob_jid, None, timeout=30)
        alice.send("<presence type='unavailable'/>")
        wait_presence(bob, 'alice@a.test/r', 'unavailable', timeout=30)
    finally:
        alice.close()
        bob.close()
