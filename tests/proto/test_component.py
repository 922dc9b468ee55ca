"""External components (XEP-0114) with raw XML: the handshake and its
errors, the 'from' check, routing both ways (the component's domain and
its subdomains), replacement on reconnect, disco#items, errors while the
component is gone, limits, and xmppctl components."""

import hashlib
import json

import pytest

import xmpp_raw
from xmpp_raw import NS_CLIENT, NS_STANZA_ERR, q, tostr

NS_COMPONENT = 'jabber:component:accept'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
DOMAIN = 'comp.localhost'
SECRET = 's3cret-component'

SERVER_OPTIONS = {
    'components': {
        DOMAIN: SECRET,
        'other.localhost': 'other-secret',
        'slow.localhost': ('slow-secret', '\tstanzas-per-second 2\n'
                           '\tstanza-burst 3'),
    },
    'limits': {'stanza-size': 16384, 'connections-per-ip': 0,
               'auth-failures-per-ip': 100000},
}


def cq(local):
    return q(NS_COMPONENT, local)


def header(to=DOMAIN, xmlns=NS_COMPONENT):
    return ("<stream:stream xmlns='%s' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>"
            % (xmlns, to))


def open_component(server, domain=DOMAIN, secret=SECRET):
    """A component connected and authenticated (XEP-0114 §3)."""
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header(domain))
    h = c.read_header()
    assert h.get('from') == domain, tostr(h)
    sid = h.get('id')
    assert sid and len(sid) >= 16, tostr(h)
    digest = hashlib.sha1((sid + secret).encode()).hexdigest()
    c.send('<handshake>%s</handshake>' % digest)
    el = c.expect(cq('handshake'))
    assert len(el) == 0 and not (el.text or '').strip(), tostr(el)
    return c


def wait_no_components(server):
    """Until the server has seen earlier tests' components close (it
    reads their EOF asynchronously)."""
    import time
    deadline = time.monotonic() + 5
    while json.loads(server.ctl('--json', 'components').stdout):
        assert time.monotonic() < deadline, 'components still connected'
        time.sleep(0.05)


def expect_component_stanza(c, name, timeout=None):
    el = c.next_element(timeout)
    assert el.tag == cq(name), 'expected <%s/>, got %s\n%s' % (
        name, tostr(el), c.history())
    return el


def stanza_condition(el, ns=NS_COMPONENT):
    err = el.find(q(ns, 'error'))
    assert err is not None, tostr(el)
    return [c.tag.split('}')[1] for c in err
            if c.tag.startswith('{%s}' % NS_STANZA_ERR)
            and not c.tag.endswith('}text')]


def test_handshake_and_header(server):
    c = open_component(server)
    assert c.header.tag == q(xmpp_raw.NS_STREAM, 'stream')
    c.end_stream()
    c.expect_stream_end()
    c.close()


def test_handshake_uppercase_hex_accepted(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header())
    sid = c.read_header().get('id')
    c.send('<handshake>%s</handshake>'
           % hashlib.sha1((sid + SECRET).encode()).hexdigest().upper())
    c.expect(cq('handshake'))
    c.close()


def test_bad_handshake_not_authorized(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header())
    sid = c.read_header().get('id')
    c.send('<handshake>%s</handshake>'
           % hashlib.sha1((sid + 'wrong').encode()).hexdigest())
    c.expect_stream_error('not-authorized')
    c.close()


def test_other_components_secret_refused(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header())
    sid = c.read_header().get('id')
    c.send('<handshake>%s</handshake>'
           % hashlib.sha1((sid + 'other-secret').encode()).hexdigest())
    c.expect_stream_error('not-authorized')
    c.close()


def test_stanza_before_handshake_not_authorized(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header())
    c.read_header()
    c.send("<message from='%s' to='alice@localhost'><body>x</body>"
           "</message>" % DOMAIN)
    c.expect_stream_error('not-authorized')
    c.close()


def test_unknown_domain_host_unknown(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header('nope.localhost'))
    c.read_header()
    c.expect_stream_error('host-unknown')
    c.close()


def test_host_domain_is_not_a_component(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header('localhost'))
    c.read_header()
    c.expect_stream_error('host-unknown')
    c.close()


def test_client_namespace_refused(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send(header(xmlns=NS_CLIENT))
    c.read_header()
    c.expect_stream_error('invalid-namespace')
    c.close()


def test_missing_to_improper_addressing(server):
    c = xmpp_raw.RawClient(server.component_port)
    c.send("<stream:stream xmlns='%s' "
           "xmlns:stream='http://etherx.jabber.org/streams'>" % NS_COMPONENT)
    c.read_header()
    c.expect_stream_error('improper-addressing')
    c.close()


def test_from_spoofing_invalid_from(server):
    c = open_component(server)
    c.send("<message from='bob@localhost/x' to='alice@localhost' "
           "type='chat'><body>spoof</body></message>")
    c.expect_stream_error('invalid-from')
    c.close()


def test_from_lookalike_domain_invalid_from(server):
    c = open_component(server)
    c.send("<message from='x@evilcomp.localhost' to='alice@localhost'>"
           "<body>spoof</body></message>")
    c.expect_stream_error('invalid-from')
    c.close()


def test_from_other_component_invalid_from(server):
    c = open_component(server)
    c.send("<message from='x@other.localhost' to='alice@localhost'>"
           "<body>spoof</body></message>")
    c.expect_stream_error('invalid-from')
    c.close()


def test_message_user_to_component_and_back(server):
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='r1')
    try:
        alice.presence()
        alice.send("<message to='bot@%s' type='chat' id='m1'>"
                   "<body>hello bot</body></message>" % DOMAIN)
        el = expect_component_stanza(comp, 'message')
        assert el.get('from') == 'alice@localhost/r1', tostr(el)
        assert el.get('to') == 'bot@%s' % DOMAIN
        assert el.findtext(cq('body')) == 'hello bot', tostr(el)
        comp.send("<message from='bot@%s' to='alice@localhost/r1' "
                  "type='chat' id='m2'><body>hello alice</body></message>"
                  % DOMAIN)
        m = alice.expect_stanza('message')
        assert m.get('from') == 'bot@%s' % DOMAIN, tostr(m)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hello alice'
        # to the bare JID: the available resource gets it
        comp.send("<message from='bot@%s' to='alice@localhost' "
                  "type='chat'><body>bare</body></message>" % DOMAIN)
        m = alice.expect_stanza('message')
        assert m.findtext(q(NS_CLIENT, 'body')) == 'bare', tostr(m)
    finally:
        alice.close()
        comp.close()


def test_missing_from_is_the_component_domain(server):
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='nf')
    try:
        comp.send("<message to='alice@localhost/nf' type='chat'>"
                  "<body>no from</body></message>")
        m = alice.expect_stanza('message')
        assert m.get('from') == DOMAIN, tostr(m)
    finally:
        alice.close()
        comp.close()


def test_subdomains_both_ways(server):
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='sub')
    try:
        alice.send("<presence to='room@chat.%s/alice'/>" % DOMAIN)
        p = expect_component_stanza(comp, 'presence')
        assert p.get('to') == 'room@chat.%s/alice' % DOMAIN, tostr(p)
        assert p.get('from') == 'alice@localhost/sub'
        comp.send("<presence from='room@chat.%s/alice' "
                  "to='alice@localhost/sub'/>" % DOMAIN)
        p = alice.expect(q(NS_CLIENT, 'presence'))
        assert p.get('from') == 'room@chat.%s/alice' % DOMAIN, tostr(p)
        comp.send("<message from='room@chat.%s' to='alice@localhost/sub' "
                  "type='groupchat'><body>in the room</body></message>"
                  % DOMAIN)
        m = alice.expect_stanza('message')
        assert m.findtext(q(NS_CLIENT, 'body')) == 'in the room'
    finally:
        alice.close()
        comp.close()


def test_iq_both_ways(server):
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='iq')
    try:
        alice.send("<iq to='%s' type='get' id='v1'>"
                   "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        iq = expect_component_stanza(comp, 'iq')
        assert iq.get('id') == 'v1' and iq.get('from') == \
            'alice@localhost/iq', tostr(iq)
        comp.send("<iq from='%s' to='alice@localhost/iq' type='result' "
                  "id='v1'><query xmlns='jabber:iq:version'><name>gw</name>"
                  "</query></iq>" % DOMAIN)
        r = alice.expect_stanza('iq')
        assert r.get('type') == 'result' and r.get('id') == 'v1', tostr(r)
        assert r.find('{jabber:iq:version}query/{jabber:iq:version}name'
                      ).text == 'gw'
        # and a request from the component to the user's resource
        comp.send("<iq from='%s' to='alice@localhost/iq' type='get' "
                  "id='p1'><ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)
        r = alice.expect_stanza('iq')
        assert r.get('from') == DOMAIN and r.get('id') == 'p1', tostr(r)
        alice.send("<iq to='%s' type='result' id='p1'/>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('type') == 'result' and r.get('id') == 'p1'
    finally:
        alice.close()
        comp.close()


def test_unroutable_errors_back_to_component(server):
    comp = open_component(server)
    try:
        # an IQ to a resource that is not online
        comp.send("<iq from='%s' to='alice@localhost/gone' type='get' "
                  "id='e1'><ping xmlns='urn:xmpp:ping'/></iq>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('type') == 'error' and r.get('id') == 'e1', tostr(r)
        assert r.get('to') == DOMAIN
        assert stanza_condition(r) == ['service-unavailable']
        # a remote domain: no server-to-server
        comp.send("<message from='x@%s' to='y@example.org' id='e2'>"
                  "<body>far</body></message>" % DOMAIN)
        r = expect_component_stanza(comp, 'message')
        assert r.get('type') == 'error' and r.get('id') == 'e2', tostr(r)
        assert stanza_condition(r) == ['remote-server-not-found']
        # no 'to'
        comp.send("<iq from='%s' type='get' id='e3'>"
                  "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('id') == 'e3' and \
            stanza_condition(r) == ['bad-request'], tostr(r)
        # a malformed 'to'
        comp.send("<message from='x@%s' to='a@b@c' id='e4'><body>x</body>"
                  "</message>" % DOMAIN)
        r = expect_component_stanza(comp, 'message')
        assert stanza_condition(r) == ['jid-malformed'], tostr(r)
        # an IQ for the server: answered where anyone may ask (the
        # software version), else refused rather than unanswered
        comp.send("<iq from='%s' to='localhost' type='get' id='e5'>"
                  "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('id') == 'e5' and r.get('type') == 'result', tostr(r)
        comp.send("<iq from='%s' to='localhost' type='get' id='e7'>"
                  "<query xmlns='jabber:iq:register'/></iq>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('id') == 'e7' and \
            stanza_condition(r) == ['service-unavailable'], tostr(r)
        # an IQ to the other component while it is not connected
        comp.send("<iq from='%s' to='other.localhost' type='get' "
                  "id='e6'><query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        r = expect_component_stanza(comp, 'iq')
        assert r.get('id') == 'e6' and \
            stanza_condition(r) == ['service-unavailable'], tostr(r)
    finally:
        comp.close()


def test_component_to_component(server):
    a = open_component(server)
    b = open_component(server, 'other.localhost', 'other-secret')
    try:
        a.send("<message from='x@%s' to='y@other.localhost' id='cc'>"
               "<body>between</body></message>" % DOMAIN)
        m = expect_component_stanza(b, 'message')
        assert m.get('from') == 'x@%s' % DOMAIN and m.get('id') == 'cc'
    finally:
        a.close()
        b.close()


def test_unsupported_stanza_type(server):
    comp = open_component(server)
    comp.send("<foo from='%s' to='localhost'/>" % DOMAIN)
    comp.expect_stream_error('unsupported-stanza-type')
    comp.close()


def test_reconnect_replaces_old_stream(server):
    old = open_component(server)
    new = open_component(server)
    old.expect_stream_error('conflict')
    old.close()
    alice = server.login('alice@localhost', resource='rp')
    try:
        alice.send("<message to='bot@%s' type='chat' id='after'>"
                   "<body>to the new one</body></message>" % DOMAIN)
        m = expect_component_stanza(new, 'message')
        assert m.get('id') == 'after'
    finally:
        alice.close()
        new.close()


def disco_items(server, resource):
    alice = server.login('alice@localhost', resource=resource)
    try:
        alice.send("<iq to='localhost' type='get' id='d1'>"
                   "<query xmlns='%s'/></iq>" % NS_DISCO_ITEMS)
        r = alice.expect_stanza('iq')
        assert r.get('type') == 'result', tostr(r)
        return [i.get('jid') for i in r.iter(q(NS_DISCO_ITEMS, 'item'))]
    finally:
        alice.close()


def test_disco_items_lists_connected_components(server):
    wait_no_components(server)
    assert DOMAIN not in disco_items(server, 'd0')
    comp = open_component(server)
    try:
        items = disco_items(server, 'd1')
        assert DOMAIN in items, items
        assert 'other.localhost' not in items
    finally:
        comp.end_stream()
        comp.expect_stream_end()
        comp.close()
    # gone: no longer listed (the server notices the close at once)
    for _ in range(20):
        items = disco_items(server, 'd2')
        if DOMAIN not in items:
            break
    assert DOMAIN not in items, items


def test_service_unavailable_when_gone(server):
    alice = server.login('alice@localhost', resource='gone')
    try:
        alice.send("<message to='bot@%s' type='chat' id='g1'>"
                   "<body>anyone?</body></message>" % DOMAIN)
        m = alice.expect_stanza('message')
        xmpp_raw.assert_stanza_error(m, 'message', 'service-unavailable',
                                     sid='g1', frm='bot@%s' % DOMAIN)
        alice.send("<iq to='x.%s' type='get' id='g2'>"
                   "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        r = alice.expect_stanza('iq')
        xmpp_raw.assert_stanza_error(r, 'iq', 'service-unavailable',
                                     sid='g2')
    finally:
        alice.close()


def test_stanza_size_limit(server):
    comp = open_component(server)
    comp.send("<message from='%s' to='alice@localhost'><body>%s</body>"
              "</message>" % (DOMAIN, 'x' * 20000))
    comp.expect_stream_error('policy-violation')
    comp.close()
    server.assert_serves()


def test_restricted_xml(server):
    comp = open_component(server)
    comp.send("<!-- a comment -->")
    comp.expect_stream_error('restricted-xml')
    comp.close()


def test_not_well_formed(server):
    comp = open_component(server)
    comp.send("<message from='%s' to='alice@localhost'></iq>" % DOMAIN)
    comp.expect_stream_error('not-well-formed')
    comp.close()


def test_stanza_rate_limit_delays(server):
    """stanzas-per-second 2, burst 3: ten requests sent one after the
    other's answer take at least 3.5 s (reading pauses once the burst is
    spent), and all are answered."""
    import time
    comp = open_component(server, 'slow.localhost', 'slow-secret')
    try:
        t0 = time.monotonic()
        for i in range(10):
            comp.send("<iq from='slow.localhost' to='localhost' type='get' "
                      "id='r%d'><query xmlns='jabber:iq:version'/></iq>" % i)
            r = expect_component_stanza(comp, 'iq', timeout=15)
            assert r.get('id') == 'r%d' % i, tostr(r)
        assert time.monotonic() - t0 > 3.0
    finally:
        comp.close()


def test_user_subscribes_to_component_contact(server):
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='sub2')
    try:
        # roster pushes go to the resources that asked for the roster
        alice.send("<iq type='get' id='ro'>"
                   "<query xmlns='jabber:iq:roster'/></iq>")
        alice.expect_stanza('iq')
        alice.send("<presence to='contact@%s' type='subscribe'/>" % DOMAIN)
        p = expect_component_stanza(comp, 'presence')
        assert p.get('type') == 'subscribe' and p.get('from') == \
            'alice@localhost', tostr(p)
        comp.send("<presence from='contact@%s' to='alice@localhost' "
                  "type='subscribed'/>" % DOMAIN)
        # a roster push with subscription 'to'
        while True:
            el = alice.next_element()
            item = el.find('{jabber:iq:roster}query/{jabber:iq:roster}item')
            if el.tag == q(NS_CLIENT, 'iq') and item is not None and \
                    item.get('subscription') == 'to':
                break
        assert item.get('jid') == 'contact@%s' % DOMAIN
        # initial presence probes the contact (RFC 6121 §4.2.2)
        alice.send("<presence/>")
        p = expect_component_stanza(comp, 'presence')
        assert p.get('type') == 'probe' and p.get('from') == \
            'alice@localhost' and p.get('to') == 'contact@%s' % DOMAIN, \
            tostr(p)
        # the contact's presence reaches the available resource
        comp.send("<presence from='contact@%s/gw' to='alice@localhost'>"
                  "<show>away</show></presence>" % DOMAIN)
        while True:
            el = alice.next_element()
            if el.tag == q(NS_CLIENT, 'presence') and \
                    el.get('from') == 'contact@%s/gw' % DOMAIN:
                break
        assert el.findtext(q(NS_CLIENT, 'show')) == 'away'
    finally:
        alice.close()
        comp.close()


def test_xmppctl_components(server):
    wait_no_components(server)
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='ctl')
    try:
        alice.send("<message to='bot@%s' type='chat'><body>1</body>"
                   "</message>" % DOMAIN)
        expect_component_stanza(comp, 'message')
        comp.send("<message from='bot@%s' to='alice@localhost/ctl' "
                  "type='chat'><body>2</body></message>" % DOMAIN)
        alice.expect_stanza('message')
        r = server.ctl('--json', 'components')
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)
        row = [x for x in rows if x['domain'] == DOMAIN]
        assert len(row) == 1, rows
        assert row[0]['address'].startswith('127.0.0.1:')
        assert row[0]['stanzas_in'] == 1 and row[0]['stanzas_out'] == 1
        r = server.ctl('components')
        assert r.returncode == 0 and DOMAIN in r.stdout, r.stdout
    finally:
        alice.close()
        comp.close()


def test_reload_removes_and_adds_components(server_factory):
    """SIGHUP: a component whose block is gone is closed with
    <host-gone/> and its domain is then unknown; a new block can connect
    at once."""
    import signal
    import time
    srv = server_factory(components={DOMAIN: SECRET})
    comp = open_component(srv)
    srv.components = {'new.localhost': 'new-secret'}
    srv.conf.write_text(srv.config_text())
    srv.signal(signal.SIGHUP)
    comp.expect_stream_error('host-gone')
    comp.close()
    deadline = time.monotonic() + 5
    while 'configuration and certificates reloaded' not in \
            srv.stderr_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    c = open_component(srv, 'new.localhost', 'new-secret')
    c.close()
    c = xmpp_raw.RawClient(srv.component_port)
    c.send(header(DOMAIN))
    c.read_header()
    c.expect_stream_error('host-unknown')
    c.close()
    alice = srv.login('alice@localhost', resource='rl')
    try:
        # the old domain is now a remote one
        alice.send("<message to='bot@%s' type='chat' id='rl1'>"
                   "<body>x</body></message>" % DOMAIN)
        m = alice.expect_stanza('message')
        xmpp_raw.assert_stanza_error(m, 'message', 'remote-server-not-found',
                                     sid='rl1')
    finally:
        alice.close()


def test_shutdown_closes_components(server_factory):
    srv = server_factory(components={DOMAIN: SECRET})
    comp = open_component(srv)
    srv.stop()
    comp.expect_stream_error('system-shutdown')
    comp.close()


def test_xmpptop_components_batch(server):
    """xmpptop -b -c prints the components panel: the same rows as the
    c key's screen."""
    import os
    import subprocess
    from conftest import REPO
    top = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))
    wait_no_components(server)
    comp = open_component(server)
    alice = server.login('alice@localhost', resource='top')
    try:
        alice.send("<message to='bot@%s' type='chat'><body>1</body>"
                   "</message>" % DOMAIN)
        expect_component_stanza(comp, 'message')
        r = subprocess.run([top, '-b', '-c', '-s', str(server.sock)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == 'xmpptop: components 1', r.stdout
        assert lines[1].split() == ['DOMAIN', 'ADDRESS', 'SINCE', 'IN',
                                    'OUT'], r.stdout
        f = lines[2].split()
        assert f[0] == DOMAIN and f[1].startswith('127.0.0.1:'), r.stdout
        assert f[3:] == ['0', '1'], r.stdout
        r = subprocess.run([top, '-c', '-s', str(server.sock)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and '-c and -f are for batch mode' in r.stderr
    finally:
        alice.close()
        comp.close()


def test_abrupt_close_then_service_unavailable(server):
    """A component whose connection drops without a closing tag is gone
    at once: unlisted, and stanzas to it are bounced, not lost."""
    wait_no_components(server)
    comp = open_component(server)
    comp.close()
    wait_no_components(server)
    alice = server.login('alice@localhost', resource='abrupt')
    try:
        alice.send("<iq to='%s' type='get' id='ab1'>"
                   "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
        r = alice.expect_stanza('iq')
        xmpp_raw.assert_stanza_error(r, 'iq', 'service-unavailable',
                                     sid='ab1', frm=DOMAIN)
    finally:
        alice.close()


def test_xmpptop_components_screen(server):
    """The c key shows the components panel, polled every second."""
    import os
    import shutil
    import subprocess
    import time
    from conftest import REPO
    if shutil.which('tmux') is None:
        pytest.skip('tmux is not installed')
    top = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))
    name = 'xmpptop-comp-%d' % os.getpid()

    def tmux(*args):
        return subprocess.run(['tmux'] + list(args), capture_output=True,
                              text=True, timeout=10)

    def wait_screen(pred, timeout=8.0):
        deadline = time.monotonic() + timeout
        while True:
            text = tmux('capture-pane', '-p', '-t', name).stdout
            if pred(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.1)

    wait_no_components(server)
    comp = open_component(server)
    try:
        for _ in range(20):
            r = tmux('new-session', '-d', '-s', name, '-x', '160', '-y',
                     '30', '%s -s %s' % (top, server.sock))
            if r.returncode == 0 or 'server exited' not in r.stderr:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr
        wait_screen(lambda s: 'DISCONNECTED' not in s and s.strip())
        tmux('send-keys', '-t', name, 'c')
        text = wait_screen(lambda s: 'COMPONENTS  1 connected' in s and
                           DOMAIN in s)
        assert 'COMPONENTS  1 connected' in text and DOMAIN in text, text
        comp.close()
        text = wait_screen(lambda s: 'COMPONENTS  0 connected' in s)
        assert 'COMPONENTS  0 connected' in text, text
        tmux('send-keys', '-t', name, 'q')
    finally:
        tmux('kill-session', '-t', name)
        comp.close()


def test_reload_applies_rate_to_connected_component(server_factory):
    """A connected component gets a block's new rate at SIGHUP: from 1
    stanza a second (burst 1) to no limit, ten requests answered one
    after the other take well under the 9 s the old rate needed."""
    import signal
    import time
    srv = server_factory(components={
        DOMAIN: (SECRET, '\tstanzas-per-second 1\n\tstanza-burst 1')})
    comp = open_component(srv)
    try:
        srv.components = {DOMAIN: (SECRET, '\tstanzas-per-second 0')}
        srv.conf.write_text(srv.config_text())
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while 'configuration and certificates reloaded' not in \
                srv.stderr_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        for i in range(10):
            comp.send("<iq from='%s' to='localhost' type='get' id='q%d'>"
                      "<query xmlns='jabber:iq:version'/></iq>"
                      % (DOMAIN, i))
            r = expect_component_stanza(comp, 'iq')
            assert r.get('id') == 'q%d' % i, tostr(r)
        assert time.monotonic() - t0 < 4.0
    finally:
        comp.close()


def test_handshake_timeout(server_factory):
    """No handshake within preauth-timeout: <connection-timeout/>."""
    srv = server_factory(components={DOMAIN: SECRET},
                         limits={'preauth-timeout': 1,
                                 'connections-per-ip': 0})
    c = xmpp_raw.RawClient(srv.component_port)
    c.send(header())
    c.read_header()
    c.expect_stream_error('connection-timeout', timeout=5)
    c.close()
    # an authenticated component stays beyond it
    comp = open_component(srv)
    import time
    time.sleep(1.5)
    comp.send("<iq from='%s' to='localhost' type='get' id='alive'>"
              "<query xmlns='jabber:iq:version'/></iq>" % DOMAIN)
    r = expect_component_stanza(comp, 'iq')
    assert r.get('id') == 'alive', tostr(r)
    comp.close()
