"""Server-to-server between two xmppd daemons (a.test and b.test) on
loopback, found through DNS SRV records served by a throwaway dnsmasq:
TLS, dialback (XEP-0220) with self-signed certificates, SASL EXTERNAL
(XEP-0178) with certificates from a test CA, messages both ways, and the
errors for a domain that does not resolve.  Skipped with the reason when
dnsmasq cannot be installed or started."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import xmpp_raw
from conftest import REPO, Server, free_ports
from xmpp_raw import NS_CLIENT, q, tostr


def install_dnsmasq():
    if shutil.which('dnsmasq'):
        return
    r = subprocess.run(['sh', str(REPO / 'tests' / 'deps.sh'),
                        'dnsmasq-base'], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0 or not shutil.which('dnsmasq'):
        pytest.skip('dnsmasq missing: ' + r.stdout.strip()[-200:])


class Dns:
    """dnsmasq on 127.0.0.1:port answering for *.test only."""

    def __init__(self, records):
        install_dnsmasq()
        self.dir = Path(tempfile.mkdtemp(prefix='dnsmasq-'))
        self.port, = free_ports(1)
        argv = [shutil.which('dnsmasq'), '--no-daemon', '-C', '/dev/null',
                '--port=%d' % self.port, '--listen-address=127.0.0.1',
                '--bind-interfaces', '--no-resolv', '--no-hosts',
                '--local=/test/',
                '--pid-file=%s' % (self.dir / 'pid'), '--user=%s' % (
                    'root' if os.geteuid() == 0 else os.environ.get(
                        'USER', 'nobody')),
                '--log-queries', '--log-facility=%s' % (self.dir / 'log')]
        argv += records
        # Not a pipe: dnsmasq --no-daemon logs every query to stderr too,
        # and blocks (answering nothing more) once a pipe nobody reads
        # is full, after some 550 queries.
        self.stderr = self.dir / 'stderr'
        with open(self.stderr, 'wb') as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                         stderr=err)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            err = self.stderr.read_text(errors='replace')
            pytest.skip('dnsmasq cannot start: %s' % err[-300:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


def make_cert(d, domain, ca=None):
    """A key and certificate for domain in d: self-signed, or signed by
    ca (its (cert, key))."""
    key, cert = d / ('%s.key' % domain), d / ('%s.crt' % domain)
    if ca is None:
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec',
                        '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                        '-nodes', '-days', '30', '-subj', '/CN=' + domain,
                        '-addext', 'subjectAltName=DNS:' + domain,
                        '-keyout', str(key), '-out', str(cert)],
                       check=True, capture_output=True)
        return cert, key
    csr = d / ('%s.csr' % domain)
    ext = d / ('%s.ext' % domain)
    ext.write_text('subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n'
                   % domain)
    subprocess.run(['openssl', 'req', '-new', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-subj',
                    '/CN=' + domain, '-keyout', str(key), '-out', str(csr)],
                   check=True, capture_output=True)
    subprocess.run(['openssl', 'x509', '-req', '-in', str(csr), '-CA',
                    str(ca[0]), '-CAkey', str(ca[1]), '-CAcreateserial',
                    '-days', '30', '-extfile', str(ext), '-out', str(cert)],
                   check=True, capture_output=True)
    return cert, key


def make_ca(d):
    key, cert = d / 'ca.key', d / 'ca.crt'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:prime256v1', '-nodes', '-days', '30',
                    '-subj', '/CN=xmppd test CA', '-keyout', str(key),
                    '-out', str(cert)], check=True, capture_output=True)
    return cert, key


class FedServer(Server):
    """A daemon for one domain with an s2s listener on a chosen port."""

    def __init__(self, certificate, domain, s2s_port, dns_port, extra='',
                 direct_tls=False):
        super().__init__(certificate, users={
            'alice@%s' % domain: 'alice-secret',
            'bob@%s' % domain: 'bob-secret'})
        self.domain = domain
        self.s2s_port = s2s_port
        self.direct_tls = direct_tls
        self.dns_port = dns_port
        self.fed_extra = extra

    def config_text(self):
        return '\n'.join([
            'log-level debug',
            'storage "%s"' % self.db,
            'control-socket "%s"' % self.sock,
            'scram-iterations 4096',
            'listen c2s %d address 127.0.0.1' % self.c2s_port,
            'listen c2s-tls %d address 127.0.0.1' % self.tls_port,
            'listen %s %d address 127.0.0.1' % (
                's2s-tls' if self.direct_tls else 's2s', self.s2s_port),
            'dns-server 127.0.0.1:%d' % self.dns_port,
            self.fed_extra,
            'host "%s" {' % self.domain,
            '\tcertificate "%s"' % self.cert,
            '\tkey "%s"' % self.key,
            '}', ''])

    def user(self, name, resource='r'):
        return domain_login(self.c2s_port, self.domain, name, resource)


def domain_login(port, domain, name, resource='r'):
    """A bound, available raw client name@domain (password NAME-secret)
    on a c2s port with STARTTLS, for any server."""
    c = xmpp_raw.RawClient(port)
    c.open_stream(to=domain)
    c.starttls()
    c.open_stream(to=domain)
    xmpp_raw.assert_sasl_success(c.sasl_plain(name, name + '-secret'))
    c.open_stream(to=domain)
    c.bind(resource)
    c.presence()
    return c


def records(ports, direct_tls=()):
    """SRV records for each domain's s2s port (_xmpps-server for the
    domains in direct_tls); the target is localhost, which the system's
    resolver finds in /etc/hosts too (ejabberd looks SRV targets up with
    getaddrinfo, not through its own resolver)."""
    out = ['--host-record=localhost,127.0.0.1']
    for domain, port in ports.items():
        service = '_xmpps-server' if domain in direct_tls else \
            '_xmpp-server'
        out += ['--srv-host=%s._tcp.%s,localhost,%d,0,5' % (
            service, domain, port)]
    return out


def federation(d, ca=None, extras=('', ''), direct_tls=(), more=None,
               dns_args=()):
    """A generator of [a.test, b.test] daemons finding each other through
    a dnsmasq of their own (with the records of more too, {domain:
    port}, and dns_args), with certificates self-signed or from ca,
    b.test over direct TLS if named in direct_tls; stops them all when
    closed."""
    pa, pb = free_ports(2)
    ports = {'a.test': pa, 'b.test': pb}
    ports.update(more or {})
    dns = Dns(records(ports, direct_tls) + list(dns_args))
    servers = []
    try:
        for (domain, port), extra in zip((('a.test', pa), ('b.test', pb)),
                                         extras):
            cert = make_cert(d, domain, ca)
            if ca is not None:
                extra += '\ntls-ca-file "%s"\ns2s-secure-auth on' % ca[0]
            servers.append(FedServer((str(cert[0]), str(cert[1])), domain,
                                     port, dns.port, extra=extra,
                                     direct_tls=domain in direct_tls
                                     ).start())
        yield servers
    finally:
        for s in servers:
            s.stop()
        dns.stop()


@pytest.fixture
def pair(tmp_path):
    """a.test and b.test with self-signed certificates (dialback)."""
    yield from federation(tmp_path)


@pytest.fixture
def ca_pair(tmp_path):
    """a.test and b.test with certificates from one CA both trust
    (tls-ca-file): SASL EXTERNAL."""
    d = tmp_path / 'ca'
    d.mkdir()
    yield from federation(d, make_ca(d))


def chat(a, b):
    alice = a.user('alice')
    bob = b.user('bob')
    try:
        alice.message('bob@b.test/r', 'hello from a', mid='m1')
        m = bob.expect_stanza('message', timeout=20)
        assert m.get('from') == 'alice@a.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello from a'
        bob.message('alice@a.test/r', 'hello from b', mid='m2')
        m = alice.expect_stanza('message', timeout=20)
        assert m.get('from') == 'bob@b.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello from b'
    finally:
        alice.close()
        bob.close()


def s2s_rows(srv):
    r = srv.ctl('s2s', '--json')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_dialback_with_self_signed_certificates(pair):
    a, b = pair
    chat(a, b)
    rows = s2s_rows(a)
    out = [r for r in rows if r['direction'] == 'out']
    assert out and out[0]['remote'] == 'b.test', rows
    assert out[0]['local'] == 'a.test' and out[0]['state'] == 'ready'
    assert out[0]['auth'] == 'dialback' and out[0]['tls'].startswith('TLS')
    assert out[0]['certificate'] == 'not valid'
    assert out[0]['stanzas_out'] >= 1 and out[0]['queued'] == 0
    ins = [r for r in rows if r['direction'] == 'in']
    assert ins and ins[0]['remote'] == 'b.test', rows
    assert ins[0]['stanzas_in'] >= 1
    assert 'authenticated for b.test (dialback)' in b.stderr_text() or \
        'authenticated for a.test (dialback)' in b.stderr_text(), \
        b.stderr_tail()


def test_xmpptop_federation_panel(pair):
    """xmpptop -b -f prints the server-to-server streams (the f key's
    screen): the same facts as xmppctl s2s, one line per stream."""
    a, b = pair
    chat(a, b)
    top = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))
    r = subprocess.run([top, '-b', '-f', '-s', str(a.sock)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    rows = s2s_rows(a)
    assert lines[0] == 'xmpptop: s2s %d' % len(rows), r.stdout
    assert lines[1].split() == ['LOCAL', 'REMOTE', 'DIR', 'STATE', 'AUTH',
                                'TLS', 'CERT', 'QUEUED', 'SINCE', 'IN',
                                'OUT'], r.stdout
    out = [ln.split() for ln in lines[2:] if ' out ' in ln]
    assert out and out[0][:5] == ['a.test', 'b.test', 'out', 'ready',
                                  'dialback'], r.stdout
    # OUT, then QUEUED (counted from the end: CERT may be two words)
    assert out[0][-1] != '0' and out[0][-4] == '0', r.stdout
    r = subprocess.run([top, '-b', '-f', '-c', '-s', str(a.sock)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and 'one at a time' in r.stderr


def test_sasl_external_with_trusted_certificates(ca_pair):
    a, b = ca_pair
    chat(a, b)
    assert 'a.test authenticated for b.test (SASL EXTERNAL)' in \
        b.stderr_text(), b.stderr_tail()
    out = [r for r in s2s_rows(a) if r['direction'] == 'out']
    assert out[0]['auth'] == 'SASL EXTERNAL', out
    assert out[0]['certificate'] == 'valid', out
    # XEP-0288: b answered over a's stream, opening none of its own
    rows = s2s_rows(b)
    assert [r['direction'] for r in rows] == ['in'], rows
    assert rows[0]['stanzas_out'] >= 1, rows
    assert 'used both ways (XEP-0288)' in b.stderr_text()


def test_unknown_domain_bounces(pair):
    a, _ = pair
    alice = a.user('alice')
    try:
        alice.message('carol@nowhere.test', 'anyone?', mid='x1')
        el = alice.expect_stanza('message', timeout=30)
        assert el.get('type') == 'error', tostr(el)
        assert el.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}'
                       'remote-server-not-found') is not None, tostr(el)
    finally:
        alice.close()


NS_ROSTER = 'jabber:iq:roster'


def roster_of(c):
    c.send("<iq type='get' id='r1'><query xmlns='%s'/></iq>" % NS_ROSTER)
    while True:
        el = c.expect_stanza('iq', timeout=10)
        if el.get('id') == 'r1':
            break
    return {i.get('jid'): i.get('subscription')
            for i in el.iter('{%s}item' % NS_ROSTER)}


def wait_presence(c, frm, ptype=None, timeout=20):
    """The next presence from frm (bare or full prefix) of type."""
    end = time.time() + timeout
    while time.time() < end:
        el = c.next_element(timeout=max(end - time.time(), 0.1))
        if el.tag != q(NS_CLIENT, 'presence'):
            continue
        if el.get('from', '').startswith(frm) and el.get('type') == ptype:
            return el
    raise AssertionError('no presence %s from %s' % (ptype, frm))


def test_subscription_and_presence_across_domains(pair):
    a, b = pair
    alice = a.user('alice')
    bob = b.user('bob')
    try:
        # roster requested: "interested" resources (RFC 6121 §2.1.6)
        roster_of(alice)
        roster_of(bob)
        # alice asks; bob's server processes it and bob gets the request
        alice.send("<presence to='bob@b.test' type='subscribe'/>")
        req = wait_presence(bob, 'alice@a.test', 'subscribe')
        assert req.get('from') == 'alice@a.test'
        # bob approves: alice learns it and sees bob online
        bob.send("<presence to='alice@a.test' type='subscribed'/>")
        wait_presence(alice, 'bob@b.test', 'subscribed')
        wait_presence(alice, 'bob@b.test/r', None)
        assert roster_of(alice).get('bob@b.test') == 'to'
        assert roster_of(bob).get('alice@a.test') == 'from'
        # a subscriber may discover the account (its PEP service)
        r = iq(alice, 'bob@b.test', "<query xmlns='http://jabber.org/"
               "protocol/disco#info'/>", 'di')
        assert r.get('type') == 'result', tostr(r)
        ids = {(i.get('category'), i.get('type')) for i in r.iter(
            '{http://jabber.org/protocol/disco#info}identity')}
        assert ('pubsub', 'pep') in ids, tostr(r)
        # bob goes away: alice sees it
        bob.send("<presence type='unavailable'/>")
        wait_presence(alice, 'bob@b.test/r', 'unavailable')
        # bob comes back with a new session: a probe-free broadcast
        bob.presence()
        wait_presence(alice, 'bob@b.test/r', None)
    finally:
        alice.close()
        bob.close()
    # a new session of alice probes bob's server and learns bob is on
    bob = b.user('bob', resource='again')
    alice = a.user('alice', resource='later')
    try:
        wait_presence(alice, 'bob@b.test/again', None)
    finally:
        alice.close()
        bob.close()


def iq(c, to, payload, iq_id, itype='get'):
    c.send("<iq type='%s' id='%s'%s>%s</iq>" % (
        itype, iq_id, " to='%s'" % to if to else '', payload))
    while True:
        el = c.expect_stanza('iq', timeout=20)
        if el.get('id') == iq_id:
            return el


def test_iqs_across_domains(pair):
    a, b = pair
    alice = a.user('alice')
    bob = b.user('bob')
    try:
        # to the remote server: ping, disco#info, disco#items
        r = iq(alice, 'b.test', "<ping xmlns='urn:xmpp:ping'/>", 'p1')
        assert r.get('type') == 'result' and r.get('from') == 'b.test'
        r = iq(alice, 'b.test', "<query xmlns='http://jabber.org/"
               "protocol/disco#info'/>", 'd1')
        assert r.get('type') == 'result', tostr(r)
        feats = {f.get('var') for f in r.iter(
            '{http://jabber.org/protocol/disco#info}feature')}
        assert 'urn:xmpp:ping' in feats, feats
        r = iq(alice, 'b.test', "<query xmlns='http://jabber.org/"
               "protocol/disco#items'/>", 'd2')
        items = {i.get('jid') for i in r.iter(
            '{http://jabber.org/protocol/disco#items}item')}
        assert 'conference.b.test' in items, tostr(r)
        # what the remote server cannot answer for a remote asker
        r = iq(alice, 'b.test', "<query xmlns='jabber:iq:nothing'/>",
               'u1')
        assert r.get('type') == 'error'
        assert r.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}'
                      'service-unavailable') is not None, tostr(r)
        # to a remote client: delivered, its answer comes back
        alice.send("<iq type='get' id='v1' to='bob@b.test/r'>"
                   "<query xmlns='jabber:iq:version'/></iq>")
        req = bob.expect_stanza('iq', timeout=20)
        assert req.get('from') == 'alice@a.test/r'
        bob.send("<iq type='result' id='v1' to='alice@a.test/r'><query "
                 "xmlns='jabber:iq:version'><name>raw</name></query></iq>")
        r = alice.expect_stanza('iq', timeout=20)
        assert r.get('id') == 'v1' and r.get('type') == 'result'
        assert r.findtext('.//{jabber:iq:version}name') == 'raw'
    finally:
        alice.close()
        bob.close()


def test_message_to_offline_user_is_kept(pair):
    a, b = pair
    alice = a.user('alice')
    try:
        alice.message('bob@b.test', 'while you were away', mid='o1')
        time.sleep(1.0)
    finally:
        alice.close()
    bob = b.user('bob')
    try:
        m = bob.expect_stanza('message', timeout=20)
        assert m.get('from') == 'alice@a.test/r', tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'while you were away'
    finally:
        bob.close()


def test_incoming_rate_limit_pauses_without_loss(tmp_path):
    """limits s2s-stanzas-per-second: a peer sending faster is read more
    slowly (burst: 2 s of the rate), nothing is lost or reordered."""
    fed = federation(tmp_path, extras=(
        '', 'limits {\n\ts2s-stanzas-per-second 50\n}'))
    try:
        a, b = next(fed)
        alice = a.user('alice')
        bob = b.user('bob')
        try:
            start = time.time()
            for i in range(300):
                alice.message('bob@b.test/r', 'n%d' % i, mid='r%d' % i)
            got = []
            while len(got) < 300:
                m = bob.expect_stanza('message', timeout=30)
                got.append(m.findtext(q(NS_CLIENT, 'body')))
            took = time.time() - start
            assert got == ['n%d' % i for i in range(300)]
            # 100 at once (the burst: 2 s of it), 200 more at 50 a second
            assert took >= 2.0, took
        finally:
            alice.close()
            bob.close()
        assert 'over its rate: reading paused' in b.stderr_text()
    finally:
        fed.close()


def check_rows(srv):
    r = srv.ctl('check', '--json')
    return json.loads(r.stdout)


def test_check_warns_about_certificates_peers_refuse(pair, ca_pair):
    """xmppctl check with federation on: a self-signed certificate is one
    other servers will not accept; one from a trusted CA naming the host
    is fine."""
    rows = check_rows(pair[0])
    warn = [r for r in rows if r['level'] == 'warning' and
            'other servers will not accept' in r['message']]
    assert warn and warn[0]['subject'] == 'a.test', rows
    rows = check_rows(ca_pair[0])
    assert any(r['level'] == 'ok' and 'valid for federation' in
               r['message'] for r in rows), rows
    assert not any('other servers will not accept' in r['message']
                   for r in rows), rows


def test_remote_iqs_to_accounts(pair):
    """What anyone may read of an account is answered for other servers'
    users too: vCard (XEP-0054), a PEP node with the open access model;
    what is private is not."""
    a, b = pair
    alice = a.user('alice')
    bob = b.user('bob')
    try:
        r = iq(bob, None, "<vCard xmlns='vcard-temp'><FN>Bob B</FN>"
               "</vCard>", 'vs', itype='set')
        assert r.get('type') == 'result', tostr(r)
        r = iq(bob, None, "<pubsub xmlns='http://jabber.org/protocol/"
               "pubsub'><publish node='urn:xmpp:test:open'><item id='1'>"
               "<x xmlns='urn:xmpp:test'/></item></publish>"
               "<publish-options><x xmlns='jabber:x:data' type='submit'>"
               "<field var='FORM_TYPE' type='hidden'><value>http://"
               "jabber.org/protocol/pubsub#publish-options</value></field>"
               "<field var='pubsub#access_model'><value>open</value>"
               "</field></x></publish-options></pubsub>", 'pp',
               itype='set')
        assert r.get('type') == 'result', tostr(r)
        r = iq(alice, 'bob@b.test', "<vCard xmlns='vcard-temp'/>", 'vg')
        assert r.get('type') == 'result', tostr(r)
        assert r.findtext('.//{vcard-temp}FN') == 'Bob B'
        # disco#info of an account: for those who see its presence only
        # (XEP-0030 §3.1), as for local users
        r = iq(alice, 'bob@b.test', "<query xmlns='http://jabber.org/"
               "protocol/disco#info'/>", 'di')
        assert r.get('type') == 'error', tostr(r)
        r = iq(alice, 'bob@b.test', "<pubsub xmlns='http://jabber.org/"
               "protocol/pubsub'><items node='urn:xmpp:test:open'/>"
               "</pubsub>", 'pi')
        assert r.get('type') == 'result', tostr(r)
        assert r.find('.//{urn:xmpp:test}x') is not None, tostr(r)
        # the archive and sets are not for others
        r = iq(alice, 'bob@b.test', "<query xmlns='urn:xmpp:mam:2'/>",
               'mq', itype='set')
        assert r.get('type') == 'error', tostr(r)
        r = iq(alice, 'bob@b.test', "<vCard xmlns='vcard-temp'><FN>x</FN>"
               "</vCard>", 'vx', itype='set')
        assert r.get('type') == 'error', tostr(r)
        # the server's software version
        r = iq(alice, 'b.test', "<query xmlns='jabber:iq:version'/>", 'sv')
        assert r.get('type') == 'result', tostr(r)
    finally:
        alice.close()
        bob.close()


def test_direct_tls_both_ways(tmp_path):
    """XEP-0368 for servers: b.test has only an s2s-tls listener and an
    _xmpps-server record; a.test reaches it with TLS from the first byte
    (ALPN xmpp-server), b.test answers over its own stream to a."""
    fed = federation(tmp_path, direct_tls=('b.test',))
    try:
        a, b = next(fed)
        chat(a, b)
        out = [r for r in s2s_rows(a) if r['direction'] == 'out']
        assert out and out[0]['tls'].startswith('TLS'), out
        assert 'direct TLS' in a.stderr_text()
    finally:
        fed.close()


def test_streams_outlive_the_negotiation_timeout(tmp_path):
    """s2s-timeout bounds the negotiation only: authenticated streams go
    on (idle ones close after 10 minutes)."""
    fed = federation(tmp_path, extras=('limits {\n\ts2s-timeout 2s\n}',
                                       'limits {\n\ts2s-timeout 2s\n}'))
    try:
        a, b = next(fed)
        chat(a, b)
        before = {(r['direction'], r['since']) for r in s2s_rows(a)}
        time.sleep(3)
        chat(a, b)
        after = {(r['direction'], r['since']) for r in s2s_rows(a)}
        assert before == after, (before, after)
        assert 'negotiation timeout' not in a.stderr_text() + \
            b.stderr_text()
    finally:
        fed.close()


class BadPeer:
    """A TCP server on loopback that accepts and then stalls (says
    nothing) or answers garbage."""

    def __init__(self, garbage):
        import threading
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.garbage = garbage
        self.conns = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.garbage:
                try:
                    c.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n<<<>>>')
                except OSError:
                    pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def bounced_while_local_chat_goes_on(fed, to, cond, timeout):
    """From a.test of fed, a message to 'to' comes back with the error
    cond (within timeout) while a message between two users of a.test
    is delivered at once: the failing route never holds the loop."""
    a, _ = next(fed)
    alice = a.user('alice')
    bob = a.user('bob')
    try:
        start = time.time()
        alice.message(to, 'are you there', mid='b1')
        bob.message('alice@a.test/r', 'still here', mid='l1')
        m = alice.expect_stanza('message', timeout=5)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'still here'
        assert time.time() - start < 2
        el = alice.expect_stanza('message', timeout=timeout)
        assert el.get('type') == 'error' and el.get('id') == 'b1', \
            tostr(el)
        assert el.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}%s'
                       % cond) is not None, tostr(el)
        return a
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize('garbage', [False, True])
def test_bad_peer_bounces_and_local_traffic_goes_on(tmp_path, garbage):
    """A peer that stalls (times out: remote-server-timeout) or answers
    garbage (remote-server-not-found) gets what was sent to it bounced;
    meanwhile users of the same server talk as usual."""
    peer = BadPeer(garbage)
    fed = federation(tmp_path, more={'bad.test': peer.port}, extras=(
        'limits {\n\ts2s-timeout 3s\n}', ''))
    try:
        bounced_while_local_chat_goes_on(
            fed, 'carol@bad.test', 'remote-server-not-found' if garbage
            else 'remote-server-timeout', 20)
    finally:
        fed.close()
        peer.close()


def test_dns_that_never_answers_bounces_and_local_traffic_goes_on(
        tmp_path):
    """The resolver forwards dead.test to a server that never answers:
    the route waits for DNS without holding the loop (users of the same
    server talk at once), and what was sent there comes back with
    remote-server-timeout (RFC 6120 §8.3.3.16) once DNS gives up."""
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(('127.0.0.1', 0))         # reads nothing, answers nothing
    fed = federation(tmp_path, dns_args=[
        '--server=/dead.test/127.0.0.1#%d' % dead.getsockname()[1]])
    try:
        a = bounced_while_local_chat_goes_on(
            fed, 'carol@dead.test', 'remote-server-timeout', 60)
        assert 'dead.test' in a.stderr_text()
    finally:
        fed.close()
        dead.close()


def test_streams_go_on_after_idle_parsers_are_released(pair):
    """A stream quiet for two seconds frees its parser (as c2s does) and
    the next stanza primes a fresh one: chat, stay idle past the sweep on
    both servers, chat again over the same streams."""
    a, b = pair
    chat(a, b)
    before = [(r['direction'], r['stanzas_in'], r['stanzas_out'])
              for r in s2s_rows(a)]
    time.sleep(4.5)
    for srv in (a, b):
        assert 'idle streams released their parser' in srv.stderr_text()
    chat(a, b)
    after = s2s_rows(a)
    assert len(after) == len(before), (before, after)
    assert sum(r['stanzas_in'] + r['stanzas_out'] for r in after) > \
        sum(x[1] + x[2] for x in before), (before, after)
