"""Message archive (XEP-0313 urn:xmpp:mam:2 and #extended) with stable
ids (XEP-0359) and preferences (XEP-0441): both directions archived,
every query filter (with, start, end, before-id, after-id, ids), RSM
paging forwards and backwards to completion on a few thousand messages,
flipped pages, max clamping to limits { mam-page-size }, the ids and
errors of §4.1.3/§4.3.2, preferences always/never/roster (also after a
restart), access to another user's archive, offline delivery (archived
once, the offline copy carries the archive id), stanza-id forgery,
XEP-0334 hints, deleting a user, retention, xmppctl history (text and
JSON, exact lines) and a slixmpp client paging through history on a
fresh device."""

import calendar
import itertools
import json
import os
import sqlite3
import time
from xml.sax.saxutils import escape, quoteattr

import pytest

from im_helpers import (NS_DELAY, NS_DISCO_INFO, NS_ROSTER, NS_XDATA,
                        fresh_users, is_message, slixmpp_client, run_async,
                        text_of)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import (NS_CLIENT, TIMEOUT, assert_stanza_error, q, tostr)

NS_MAM = 'urn:xmpp:mam:2'
NS_MAM_EXT = 'urn:xmpp:mam:2#extended'
NS_SID = 'urn:xmpp:sid:0'
NS_RSM = 'http://jabber.org/protocol/rsm'
NS_FORWARD = 'urn:xmpp:forward:0'
NS_HINTS = 'urn:xmpp:hints'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_OMEMO = 'eu.siacs.conversations.axolotl'
DOMAIN = 'localhost'

PAGE = 120          # this module's limits { mam-page-size }
# test_paging_a_large_archive sends 3000 messages at once: no stanza rate
# limit for this module's daemon.
SERVER_OPTIONS = {'limits': {'mam-page-size': PAGE, 'stanzas-per-second': 0}}

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


# --- helpers -----------------------------------------------------------------

def form_xml(fields):
    """A jabber:x:data submit form with FORM_TYPE urn:xmpp:mam:2; fields
    maps var to a value or a list of values."""
    if fields is None:
        return ''
    out = ["<x xmlns='%s' type='submit'><field var='FORM_TYPE' "
           "type='hidden'><value>%s</value></field>" % (NS_XDATA, NS_MAM)]
    for var, values in fields.items():
        if not isinstance(values, (list, tuple)):
            values = [values]
        out.append('<field var=%s>%s</field>' % (quoteattr(var), ''.join(
            '<value>%s</value>' % escape(v) for v in values)))
    out.append('</x>')
    return ''.join(out)


def rsm_xml(rsm):
    if rsm is None:
        return ''
    inner = ''
    for k, v in rsm.items():
        inner += '<%s/>' % k if v == '' else '<%s>%s</%s>' % (k, escape(
            str(v)), k)
    return "<set xmlns='%s'>%s</set>" % (NS_RSM, inner)


def mam_query(c, fields=None, rsm=None, flip=False, to=None, raw=None,
              timeout=None):
    """Send a MAM query from IMClient c; returns (results, iq): the result
    messages for it in arrival order and the final IQ (result or error).
    raw replaces the <query/> payload."""
    iq_id = 'mam%d' % next(_ids)
    qid = 'q%d' % next(_ids)
    payload = raw or "<query xmlns='%s' queryid='%s'>%s%s%s</query>" % (
        NS_MAM, qid, form_xml(fields), rsm_xml(rsm),
        '<flip-page/>' if flip else '')
    attrs = " to=%s" % quoteattr(to) if to else ''
    c.send("<iq type='set' id='%s'%s>%s</iq>" % (iq_id, attrs, payload))
    results = []
    rc = c.raw
    deadline = time.monotonic() + (timeout or 4 * TIMEOUT)
    while True:
        i = 0
        while i < len(rc.pending):
            el = rc.pending[i]
            r = el.find(q(NS_MAM, 'result'))
            if el.tag == q(NS_CLIENT, 'message') and r is not None and \
                    r.get('queryid') == qid:
                del rc.pending[i]
                results.append(el)
                continue
            if el.tag == q(NS_CLIENT, 'iq') and el.get('id') == iq_id:
                del rc.pending[i]
                return results, el
            i += 1
        if rc.stream_ended or rc.eof:
            raise AssertionError('stream closed during the query\n%s'
                                 % rc.history())
        if not rc._read_some(deadline) and time.monotonic() >= deadline:
            raise AssertionError('no answer to MAM query %s\n%s'
                                 % (iq_id, rc.history()))


def parse_result(c, el):
    """(id, stamp, inner message) of one result message, checking its
    envelope (XEP-0313 §4.2)."""
    assert el.get('to') == c.full, tostr(el)
    assert el.get('from') in (None, c.bare), tostr(el)
    r = el.find(q(NS_MAM, 'result'))
    fwd = r.find(q(NS_FORWARD, 'forwarded'))
    assert fwd is not None, tostr(el)
    delay = fwd.find(q(NS_DELAY, 'delay'))
    assert delay is not None and delay.get('stamp'), tostr(el)
    msg = fwd.find(q(NS_CLIENT, 'message'))
    assert msg is not None, tostr(el)
    return r.get('id'), delay.get('stamp'), msg


def fin_of(iq):
    """{complete, first, index, last, count} of a query's final IQ."""
    assert iq.get('type') == 'result', tostr(iq)
    fin = iq.find(q(NS_MAM, 'fin'))
    assert fin is not None, tostr(iq)
    s = fin.find(q(NS_RSM, 'set'))
    assert s is not None, tostr(iq)
    first, last, count = (s.find(q(NS_RSM, n)) for n in
                          ('first', 'last', 'count'))
    return {
        'complete': fin.get('complete'),
        'first': first.text if first is not None else None,
        'index': first.get('index') if first is not None else None,
        'last': last.text if last is not None else None,
        'count': count.text if count is not None else None,
    }


def archive(c, **kw):
    """[(id, stamp, body, inner message)] of a whole query, and its fin."""
    results, iq = mam_query(c, **kw)
    fin = fin_of(iq)
    rows = []
    for el in results:
        rid, stamp, msg = parse_result(c, el)
        rows.append((rid, stamp, text_of(msg, NS_CLIENT, 'body'), msg))
    return rows, fin


def bodies(rows):
    return [r[2] for r in rows]


def ids_of(rows):
    return [r[0] for r in rows]


def stanza_ids(msg):
    return [(s.get('by'), s.get('id')) for s in msg.findall(q(NS_SID,
                                                              'stanza-id'))]


def query_error(c, condition, etype=None, **kw):
    results, iq = mam_query(c, **kw)
    assert results == [], [tostr(r) for r in results]
    assert_stanza_error(iq, 'iq', condition, etype=etype)
    return iq


def exchange(ca, cb, body, mid=None, extra=''):
    """ca sends body to cb's bare JID; returns what cb received."""
    ca.message(cb.bare, body, mid=mid, extra=extra)
    return cb.wait(is_message(frm=ca.full, body=body))


def unknown_id():
    return os.urandom(8).hex()


def disco_features(c, to):
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    return [f.get('var') for f in query.findall(q(NS_DISCO_INFO, 'feature'))]


def set_prefs(c, default, always=(), never=()):
    def lst(name, jids):
        return '<%s>%s</%s>' % (name, ''.join('<jid>%s</jid>' % escape(j)
                                             for j in jids), name)
    return c.iq('set', "<prefs xmlns='%s' default='%s'>%s%s</prefs>" % (
        NS_MAM, default, lst('always', always), lst('never', never)))


def prefs_of(el):
    p = el.find(q(NS_MAM, 'prefs'))
    assert p is not None, tostr(el)
    lists = {}
    for name in ('always', 'never'):
        node = p.find(q(NS_MAM, name))
        assert node is not None, '<%s/> missing: %s' % (name, tostr(el))
        lists[name] = [j.text for j in node.findall(q(NS_MAM, 'jid'))]
    return p.get('default'), lists['always'], lists['never']


# --- discovery ---------------------------------------------------------------

def test_features_on_the_account_and_mam_on_the_server(server, im):
    """XEP-0313 §7 and XEP-0359 §4: advertised on the archiving entity,
    the user's bare JID (the 'by' of its stanza-ids).  urn:xmpp:mam:2 is
    on the server's disco#info too, where profanity 0.13 looks for it
    before it queries the user's own archive (without 'to'), as ejabberd
    does; the server keeps no archive of its own, so a query addressed to
    it is still <service-unavailable/>."""
    [a] = fresh_users(server, 1)
    ca = im(a)
    feats = disco_features(ca, a)
    for f in (NS_MAM, NS_MAM_EXT, NS_SID):
        assert f in feats, feats
    srv = disco_features(ca, DOMAIN)
    assert NS_MAM in srv, srv
    for f in (NS_MAM_EXT, NS_SID):
        assert f not in srv, srv
    ca.iq_error('set', "<query xmlns='%s'/>" % NS_MAM,
                'service-unavailable', 'cancel', to=DOMAIN)


def test_query_form(server, im):
    """§4.1.5: the fields, 'ids' open (XEP-0122), none required."""
    [a] = fresh_users(server, 1)
    ca = im(a)
    el = ca.iq_ok('get', "<query xmlns='%s'/>" % NS_MAM)
    x = el.find(q(NS_MAM, 'query')).find(q(NS_XDATA, 'x'))
    fields = {f.get('var'): f for f in x.findall(q(NS_XDATA, 'field'))}
    assert {k: fields[k].get('type') for k in fields} == {
        'FORM_TYPE': 'hidden', 'with': 'jid-single', 'start': 'text-single',
        'end': 'text-single', 'before-id': 'text-single',
        'after-id': 'text-single', 'ids': 'list-multi'}, tostr(el)
    v = fields['ids'].find(q('http://jabber.org/protocol/xdata-validate',
                             'validate'))
    assert v is not None and len(v) == 1, tostr(el)
    assert x.find('.//' + q(NS_XDATA, 'required')) is None


# --- archiving ---------------------------------------------------------------

def test_both_directions_with_stanza_ids(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a, resource='ra'), im(b, resource='rb')
    t0 = time.time()
    got_b = exchange(ca, cb, 'hello b', mid='m1')
    got_a = exchange(cb, ca, 'hello a', mid='m2')
    t1 = time.time()
    # The recipient's copy carries its archive id, nobody else's
    # (XEP-0313 §3.5).
    [(by_b, sid_b)] = stanza_ids(got_b)
    [(by_a, sid_a)] = stanza_ids(got_a)
    assert (by_b, by_a) == (b, a)
    assert len(sid_b) >= 16 and sid_a != sid_b

    rows, fin = archive(ca)
    assert bodies(rows) == ['hello b', 'hello a']
    out_id, out_stamp, out_msg = rows[0][0], rows[0][1], rows[0][3]
    assert out_id not in (sid_a, sid_b)
    assert (out_msg.get('from'), out_msg.get('to'), out_msg.get('id'),
            out_msg.get('type')) == (ca.full, b, 'm1', 'chat')
    assert stanza_ids(out_msg) == []
    in_id, in_msg = rows[1][0], rows[1][3]
    assert in_id == sid_a
    assert (in_msg.get('from'), in_msg.get('to')) == (cb.full, a)
    assert stanza_ids(in_msg) == [(a, sid_a)]
    assert fin == {'complete': 'true', 'first': out_id, 'index': '0',
                   'last': in_id, 'count': '2'}
    for _, stamp, _, _ in rows:
        t = calendar.timegm(time.strptime(stamp[:19], '%Y-%m-%dT%H:%M:%S'))
        assert t0 - 2 <= t <= t1 + 2, stamp
        assert stamp.endswith('Z')

    rows_b, fin_b = archive(cb)
    assert bodies(rows_b) == ['hello b', 'hello a']
    assert ids_of(rows_b)[0] == sid_b
    assert fin_b['count'] == '2'


def test_filters(server, im):
    """with (bare and full), start, end, before-id, after-id, ids."""
    a, b, c = fresh_users(server, 3)
    ca, cb, cc = im(a), im(b, resource='rb'), im(c, resource='rc')
    sent = [(ca, cb, 'b1'), (cb, ca, 'b2'), (ca, cc, 'c1'), (cc, ca, 'c2'),
            (ca, cb, 'b3')]
    for frm, to, body in sent:
        exchange(frm, to, body)
        time.sleep(0.02)        # distinct millisecond stamps
    rows, fin = archive(ca)
    assert bodies(rows) == ['b1', 'b2', 'c1', 'c2', 'b3'], fin
    idx = {r[2]: r for r in rows}

    def sel(**kw):
        r, f = archive(ca, **kw)
        assert f['complete'] == 'true', f
        return bodies(r)

    assert sel(fields={'with': b}) == ['b1', 'b2', 'b3']
    assert sel(fields={'with': c}) == ['c1', 'c2']
    # A full JID matches exactly (§4.1.1): c1 went to c's bare JID.
    assert sel(fields={'with': cc.full}) == ['c2']
    assert sel(fields={'with': c + '/other'}) == []
    assert sel(fields={'start': idx['c1'][1]}) == ['c1', 'c2', 'b3']
    assert sel(fields={'end': idx['c2'][1]}) == ['b1', 'b2', 'c1', 'c2']
    assert sel(fields={'start': idx['b2'][1], 'end': idx['c2'][1]}) == [
        'b2', 'c1', 'c2']
    # The same instant with a zone offset (XEP-0082).
    st = idx['c1'][1]
    hour = int(st[11:13])
    shifted = '%s%02d%s+01:00' % (st[:11], (hour + 1) % 24, st[13:-1])
    if hour < 23:
        assert sel(fields={'start': shifted}) == ['c1', 'c2', 'b3']
    assert sel(fields={'start': '2001-01-01T00:00:00Z',
                       'end': '2001-01-02T00:00:00Z'}) == []
    assert sel(fields={'after-id': idx['b2'][0]}) == ['c1', 'c2', 'b3']
    assert sel(fields={'before-id': idx['c2'][0]}) == ['b1', 'b2', 'c1']
    assert sel(fields={'after-id': idx['b1'][0],
                       'before-id': idx['c2'][0]}) == ['b2', 'c1']
    assert sel(fields={'after-id': idx['b1'][0], 'with': b}) == ['b2', 'b3']
    assert sel(fields={'ids': [idx['b3'][0], idx['b1'][0]]}) == ['b1', 'b3']
    assert sel(fields={'ids': [idx['c1'][0]]}) == ['c1']
    assert sel(fields={'ids': [idx['b1'][0], idx['c1'][0]], 'with': c}) == [
        'c1']
    # An id that is not in this archive (§4.1.3, §4.3.2).
    rows_b, _ = archive(cb)
    foreign = rows_b[0][0]
    for fields, rsm in (({'after-id': unknown_id()}, None),
                        ({'before-id': 'not-an-id'}, None),
                        ({'ids': [idx['b1'][0], unknown_id()]}, None),
                        ({'after-id': foreign}, None),
                        (None, {'after': unknown_id()}),
                        (None, {'before': foreign})):
        query_error(ca, 'item-not-found', 'cancel', fields=fields, rsm=rsm)


def test_form_errors(server, im):
    [a] = fresh_users(server, 1)
    ca = im(a)
    # §4.1.5: a field the server does not know.
    query_error(ca, 'feature-not-implemented',
                fields={'{urn:example}fulltext': 'x'})
    query_error(ca, 'bad-request', fields={'start': 'yesterday'})
    query_error(ca, 'bad-request', fields={'end': '2020-13-01T00:00:00Z'})
    query_error(ca, 'bad-request', fields={'with': 'a@@b'})
    query_error(ca, 'bad-request', fields={'start': ['2020-01-01T00:00:00Z',
                                                     '2021-01-01T00:00:00Z']})
    query_error(ca, 'bad-request', raw=(
        "<query xmlns='%s'><x xmlns='%s' type='submit'><field var='FORM_TYPE'>"
        "<value>urn:example</value></field></x></query>" % (NS_MAM, NS_XDATA)))
    query_error(ca, 'bad-request', rsm={'max': '-1'})
    query_error(ca, 'bad-request', rsm={'after': unknown_id(),
                                        'before': unknown_id()})
    query_error(ca, 'bad-request', fields={'ids': [unknown_id()] * (PAGE + 1)})


def test_paging_a_large_archive(server, im):
    """3000 messages sent pipelined; RSM pages forwards and backwards to
    completion, exact counts and indexes, flipped pages, index, max
    clamped to mam-page-size, and xmppctl history streams them all."""
    a, b = fresh_users(server, 2)
    ca = im(a, resource='bulk')
    cb = im(b)
    n = 3000
    ca.send(''.join("<message to='%s' type='chat' id='p%d'><body>m%04d"
                    "</body></message>" % (b, i, i) for i in range(n)))
    ca.sync()
    want = ['m%04d' % i for i in range(n)]

    # Forwards: 100 at a time until complete.
    got, after, pages = [], None, 0
    while True:
        rsm = {'max': 100}
        if after:
            rsm['after'] = after
        rows, fin = archive(ca, fields={'with': b}, rsm=rsm)
        pages += 1
        assert fin['count'] == str(n), fin
        assert fin['index'] == str(len(got)), fin
        assert fin['first'] == rows[0][0] and fin['last'] == rows[-1][0]
        got += rows
        after = fin['last']
        if fin['complete'] == 'true':
            break
        assert len(rows) == 100 and pages < 40, fin
    assert pages == 30 and bodies(got) == want
    all_ids = ids_of(got)
    assert len(set(all_ids)) == n
    # Past the end: an empty, complete page.
    rows, fin = archive(ca, fields={'with': b}, rsm={'max': 100,
                                                     'after': all_ids[-1]})
    assert rows == [] and fin['complete'] == 'true' and fin['first'] is None

    # Backwards from the last page (§4.3.3) until complete.
    back, before, pages = [], '', 0
    while True:
        rows, fin = archive(ca, fields={'with': b},
                            rsm={'max': 100, 'before': before})
        pages += 1
        assert fin['count'] == str(n)
        assert fin['index'] == str(n - len(back) - len(rows)), fin
        back = rows + back
        before = fin['first']
        if fin['complete'] == 'true':
            break
        assert len(rows) == 100 and pages < 40
    assert pages == 30 and ids_of(back) == all_ids

    # A flipped page (§4.3.4): the same page, newest first.
    rows, fin = archive(ca, fields={'with': b},
                        rsm={'max': 10, 'after': all_ids[99]}, flip=True)
    assert bodies(rows) == list(reversed(want[100:110]))
    assert (fin['first'], fin['last'], fin['index']) == (
        all_ids[100], all_ids[109], '100')
    # RSM index (XEP-0059 §2.6).
    rows, fin = archive(ca, fields={'with': b}, rsm={'max': 10,
                                                     'index': 250})
    assert bodies(rows) == want[250:260] and fin['index'] == '250'
    # max is clamped to mam-page-size; no max means that size too.
    for rsm in ({'max': 1000}, None):
        rows, fin = archive(ca, fields={'with': b}, rsm=rsm)
        assert bodies(rows) == want[:PAGE] and fin['complete'] == 'false'
    # max 0: the count alone (XEP-0059 §2.7).
    rows, fin = archive(ca, rsm={'max': 0})
    assert rows == [] and fin['count'] == str(n)
    assert fin['complete'] == 'false' and fin['first'] is None
    # The recipient archived each once.
    rows, fin = archive(cb, rsm={'max': 0})
    assert fin['count'] == str(n)

    # xmppctl history streams all of it (chunks of rows, waiting for the
    # socket to drain), and --limit keeps the last ones.
    r = server.ctl('history', a, b)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == n
    assert [ln.rsplit(' ', 1)[1] for ln in lines] == want
    assert all(' -> %s m' % b in ln for ln in lines)
    r = server.ctl('history', a, '--limit', '2500')
    assert r.returncode == 0, r.stderr
    assert [ln.rsplit(' ', 1)[1] for ln in r.stdout.splitlines()] == \
        want[500:]
    cb.raw.close()


def test_metadata(server, im):
    """§5: the first and last message of the archive."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    el = ca.iq_ok('get', "<metadata xmlns='%s'/>" % NS_MAM)
    md = el.find(q(NS_MAM, 'metadata'))
    assert md is not None and len(md) == 0, tostr(el)
    for body in ('one', 'two', 'three'):
        exchange(ca, cb, body)
    rows, _ = archive(ca)
    el = ca.iq_ok('get', "<metadata xmlns='%s'/>" % NS_MAM)
    md = el.find(q(NS_MAM, 'metadata'))
    start, end = md.find(q(NS_MAM, 'start')), md.find(q(NS_MAM, 'end'))
    assert (start.get('id'), start.get('timestamp')) == rows[0][:2]
    assert (end.get('id'), end.get('timestamp')) == rows[-1][:2]


# --- who may read ------------------------------------------------------------

def test_another_users_archive_is_forbidden(server, im):
    """§8.1: forbidden for someone else's archive; the server itself has
    no archive."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    exchange(cb, ca, 'private')
    query_error(ca, 'forbidden', 'auth', to=b)
    el = ca.iq('get', "<prefs xmlns='%s'/>" % NS_MAM, to=b)
    assert_stanza_error(el, 'iq', 'forbidden')
    el = ca.iq('get', "<metadata xmlns='%s'/>" % NS_MAM, to=b)
    assert_stanza_error(el, 'iq', 'forbidden')
    query_error(ca, 'service-unavailable', to=DOMAIN)
    # Its own bare JID, explicitly, is fine.
    rows, fin = archive(ca, to=a)
    assert bodies(rows) == ['private'] and fin['complete'] == 'true'


# --- preferences -------------------------------------------------------------

def test_preferences(server, im):
    a, b, c = fresh_users(server, 3)
    ca, cb, cc = im(a, roster=True), im(b, resource='rb'), im(c)
    # XEP-0441 §2.1: the default, both lists present and empty.
    el = ca.iq_ok('get', "<prefs xmlns='%s'/>" % NS_MAM)
    assert prefs_of(el) == ('always', [], [])

    # never, but always c.
    el = set_prefs(ca, 'never', always=[c])
    assert prefs_of(el) == ('never', [c], [])
    got = exchange(cb, ca, 'from b, never')
    assert stanza_ids(got) == []
    got = exchange(cc, ca, 'from c, always')
    assert [by for by, _ in stanza_ids(got)] == [a]
    exchange(ca, cb, 'to b, never')
    exchange(ca, cc, 'to c, always')
    rows, _ = archive(ca)
    assert bodies(rows) == ['from c, always', 'to c, always']
    assert ids_of(rows)[0] == stanza_ids(got)[0][1]
    el = ca.iq_ok('get', "<prefs xmlns='%s'/>" % NS_MAM)
    assert prefs_of(el) == ('never', [c], [])

    # roster: b is a roster item, c is not.
    el = ca.roster_set(b)
    assert el.get('type') == 'result', tostr(el)
    ca.expect_push(b)
    el = set_prefs(ca, 'roster')
    assert prefs_of(el) == ('roster', [], [])
    got = exchange(cb, ca, 'from b, roster')
    assert [by for by, _ in stanza_ids(got)] == [a]
    got = exchange(cc, ca, 'from c, not in roster')
    assert stanza_ids(got) == []
    exchange(ca, cb, 'to b, roster')
    exchange(ca, cc, 'to c, not in roster')

    # always, but never b's resource rb (a full JID matches exactly,
    # XEP-0441 §2.3.1) and never wins over always.
    el = set_prefs(ca, 'always', always=[c], never=[cb.full, c])
    assert prefs_of(el) == ('always', [c], [cb.full, c])
    got = exchange(cb, ca, 'from b/rb, never')
    assert stanza_ids(got) == []
    cb2 = im(b, resource='other')
    got = exchange(cb2, ca, 'from b/other, always')
    assert len(stanza_ids(got)) == 1
    got = exchange(cc, ca, 'from c, in both lists')
    assert stanza_ids(got) == []
    rows, _ = archive(ca)
    assert bodies(rows) == ['from c, always', 'to c, always',
                            'from b, roster', 'to b, roster',
                            'from b/other, always']

    # Errors.
    el = set_prefs(ca, 'sometimes')
    assert_stanza_error(el, 'iq', 'bad-request')
    el = set_prefs(ca, 'always', never=['not@@a jid'])
    assert_stanza_error(el, 'iq', 'bad-request')
    el = ca.iq_ok('get', "<prefs xmlns='%s'/>" % NS_MAM)
    assert prefs_of(el) == ('always', [c], [cb.full, c])


def test_roster_preference_of_an_offline_user(server, im):
    """default='roster' for a user who is offline: the roster is not in
    memory, so the storage job checks the stored roster."""
    a, b, c = fresh_users(server, 3)
    ca = im(a, roster=True)
    el = ca.roster_set(b)
    assert el.get('type') == 'result', tostr(el)
    ca.expect_push(b)
    assert prefs_of(set_prefs(ca, 'roster')) == ('roster', [], [])
    ca.close_stream()
    ca.raw.expect_stream_end()
    cb, cc = im(b), im(c)
    cb.message(a, 'from b, a roster item')
    cc.message(a, 'from c, a stranger')
    cb.sync()
    cc.sync()
    ca2 = im(a, presence=False)
    ca2.presence()
    got = ca2.wait(is_message(body='from b, a roster item'))
    ca2.wait(is_message(body='from c, a stranger'))
    rows, fin = archive(ca2)
    assert bodies(rows) == ['from b, a roster item'], fin
    assert stanza_ids(got) == [(a, rows[0][0])]


def test_preferences_survive_a_restart(server_factory, im):
    """Stored preferences are loaded at start: an offline user's 'never'
    holds for the first message after a restart."""
    srv = server_factory(limits={'mam-page-size': PAGE})
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        ca = f('alice@localhost')
        el = set_prefs(ca, 'never')
        assert prefs_of(el) == ('never', [], [])
        f.close_all()
        srv.stop()
        srv.start(create_users=False)
        f = IMFactory(srv)
        cb = f('bob@localhost')
        cb.message('alice@localhost', 'while alice is offline')
        cb.sync()
        ca = f('alice@localhost')
        got = ca.wait(is_message(body='while alice is offline'))
        assert stanza_ids(got) == []
        rows, fin = archive(ca)
        assert rows == [] and fin['count'] == '0'
    finally:
        f.close_all()


# --- offline, forgery, hints -------------------------------------------------

def test_offline_message_archived_once_with_its_id(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a)
    ca.message(b, 'while b is away', mid='off1')
    ca.message(b + '/gone', 'to a resource that is gone', mid='off2')
    ca.sync()
    cb = im(b, presence=False)
    cb.presence()
    got = [cb.wait(is_message(body=t)) for t in (
        'while b is away', 'to a resource that is gone')]
    rows, fin = archive(cb)
    assert bodies(rows) == ['while b is away', 'to a resource that is gone']
    assert fin['count'] == '2'
    for el, row in zip(got, rows):
        assert el.find(q(NS_DELAY, 'delay')) is not None, tostr(el)
        # The offline copy carries the archive id (one stanza-id, ours).
        assert stanza_ids(el) == [(b, row[0])], tostr(el)
    # Delivered from storage, not archived again.
    cb.sync()
    rows, fin = archive(cb)
    assert fin['count'] == '2'


def test_forged_stanza_ids_are_removed(server, im):
    """XEP-0359 §3: stanza-ids with one of our 'by's are removed before
    routing; others and <origin-id/> pass."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    forged = ''.join("<stanza-id xmlns='%s' by=%s id='forged%d'/>" % (
        NS_SID, quoteattr(by), i) for i, by in enumerate(
            [b, a, DOMAIN, b.upper()]))
    forged += ("<stanza-id xmlns='%s' by='room@other.example' id='keep'/>"
               "<origin-id xmlns='%s' id='origin1'/>" % (NS_SID, NS_SID))
    got = exchange(ca, cb, 'forged', extra=forged)
    sids = stanza_ids(got)
    ours = [s for s in sids if s[0] == b]
    assert len(ours) == 1 and not ours[0][1].startswith('forged'), sids
    assert ('room@other.example', 'keep') in sids and len(sids) == 2, sids
    origin = got.find(q(NS_SID, 'origin-id'))
    assert origin is not None and origin.get('id') == 'origin1'
    rows, _ = archive(cb)
    assert rows[-1][0] == ours[0][1]
    rows, _ = archive(ca)
    assert stanza_ids(rows[-1][3]) == [('room@other.example', 'keep')]
    # Not archived, still cleaned.
    ca.message(b, 'headline', mtype='headline',
               extra="<stanza-id xmlns='%s' by='%s' id='forged'/>"
               % (NS_SID, b))
    got = cb.wait(is_message(body='headline'))
    assert stanza_ids(got) == []


def test_what_is_archived(server, im):
    """XEP-0313 §6.1.1 and XEP-0334 hints."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    hint = "<%s xmlns='" + NS_HINTS + "'/>"
    cases = [
        ('chat', 'plain', '', True),
        ('normal', 'normal', '', True),
        (None, 'no type', '', True),
        ('chat', 'no-store', hint % 'no-store', False),
        ('chat', 'no-permanent-store', hint % 'no-permanent-store', False),
        ('headline', 'headline', '', False),
    ]
    for mtype, body, extra, archived in cases:
        ca.message(b, body, mtype=mtype, extra=extra)
        got = cb.wait(is_message(body=body))
        assert (len(stanza_ids(got)) == 1) == archived, tostr(got)
    # Without a body: a chat state alone is not archived; a <store/>
    # hint or an encrypted payload is.
    ca.send("<message to='%s' type='chat' id='cs'><active xmlns='%s'/>"
            "</message>" % (b, NS_CHATSTATES))
    ca.send("<message to='%s' type='chat' id='st'>%s</message>"
            % (b, hint % 'store'))
    ca.send("<message to='%s' type='chat' id='om'><encrypted xmlns='%s'>"
            "<payload>AAAA</payload></encrypted></message>" % (b, NS_OMEMO))
    for mid, archived in (('cs', False), ('st', True), ('om', True)):
        got = cb.wait(lambda el, m=mid: el.tag == q(NS_CLIENT, 'message') and
                      el.get('id') == m)
        assert (len(stanza_ids(got)) == 1) == archived, tostr(got)
    for c in (ca, cb):
        rows, _ = archive(c)
        assert [r[3].get('id') for r in rows[3:]] == ['st', 'om']
        assert bodies(rows[:3]) == ['plain', 'normal', 'no type']


def test_message_to_oneself_archived_once(server, im):
    [a] = fresh_users(server, 1)
    c1, c2 = im(a, resource='one'), im(a, resource='two')
    c1.message(a, 'note to self')
    got = c2.wait(is_message(body='note to self'))
    [(by, sid)] = stanza_ids(got)
    assert by == a
    rows, fin = archive(c1)
    assert ids_of(rows) == [sid] and fin['count'] == '1'
    rows, _ = archive(c1, fields={'with': a})
    assert ids_of(rows) == [sid]


def test_blocked_sender_not_archived(server, im):
    """§6.1: what the user rejects is not in their archive."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    el = cb.iq('set', "<block xmlns='urn:xmpp:blocking'><item jid='%s'/>"
               "</block>" % a)
    assert el.get('type') == 'result', tostr(el)
    ca.message(b, 'blocked')
    ca.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
            el.get('type') == 'error')
    cb.sync()
    rows, fin = archive(cb)
    assert rows == [] and fin['count'] == '0'


# --- accounts ----------------------------------------------------------------

def test_deleting_a_user_deletes_the_archive(server, im):
    a, c = fresh_users(server, 2)
    ca, cc = im(a), im(c)
    exchange(ca, cc, 'to c')
    exchange(cc, ca, 'from c')
    archive(cc)         # after the archive's writes (one FIFO)
    db = sqlite3.connect('file:%s?mode=ro' % server.db, uri=True)
    try:
        user, host = c.split('@')
        [(uid,)] = db.execute('SELECT id FROM users WHERE user = ? AND '
                              'host = ?', (user, host)).fetchall()
        [(n,)] = db.execute('SELECT count(*) FROM archive WHERE user_id = ?',
                            (uid,)).fetchall()
        assert n == 2
        r = server.ctl('deluser', c)
        assert r.returncode == 0, r.stderr
        [(n,)] = db.execute('SELECT count(*) FROM archive WHERE user_id = ?',
                            (uid,)).fetchall()
        assert n == 0
    finally:
        db.close()
    server.adduser(c, 'again')
    cc2 = im(c)
    rows, fin = archive(cc2)
    assert rows == [] and fin['count'] == '0'
    rows, _ = archive(ca)
    assert bodies(rows) == ['to c', 'from c']


def test_retention(server_factory, im):
    """limits { mam-retention }: older messages go, oldest first."""
    srv = server_factory(limits={'mam-retention': '4s'})
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        ca, cb = f('alice@localhost'), f('bob@localhost')
        exchange(ca, cb, 'old')
        time.sleep(3)
        exchange(ca, cb, 'new')
        deadline = time.monotonic() + 6
        while True:
            rows, _ = archive(ca)
            if bodies(rows) == ['new'] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert bodies(rows) == ['new']
        assert 'past the retention time deleted' in srv.stderr_text()
    finally:
        f.close_all()


# --- xmppctl history ---------------------------------------------------------

def test_xmppctl_history(server, im):
    a, b, c = fresh_users(server, 3)
    ca, cb, cc = im(a, resource='ra'), im(b, resource='rb'), im(c)
    exchange(ca, cb, 'hello b', mid='h1')
    time.sleep(0.01)
    exchange(cb, ca, 'line one\nline "two" \\ é', mid='h2')
    time.sleep(0.01)
    exchange(cc, ca, 'from c', mid='h3')
    time.sleep(0.01)
    exchange(ca, cb, 'bye', mid='h4')
    rows, _ = archive(ca)
    assert bodies(rows) == ['hello b', 'line one\nline "two" \\ é', 'from c',
                            'bye']
    (i1, s1, _, _), (i2, s2, _, _), (i3, s3, _, _), (i4, s4, _, _) = rows

    r = server.ctl('history', a)
    assert (r.returncode, r.stderr) == (0, '')
    assert r.stdout.splitlines() == [
        '%s -> %s hello b' % (s1, b),
        '%s <- %s line one\\nline "two" \\\\ é' % (s2, b),
        '%s <- %s from c' % (s3, c),
        '%s -> %s bye' % (s4, b),
    ]
    r = server.ctl('history', a, b)
    assert r.returncode == 0
    assert [ln.split(' ', 1)[0] for ln in r.stdout.splitlines()] == [s1, s2,
                                                                     s4]
    r = server.ctl('history', a, b, '--since', s2)
    assert [ln.split(' ', 1)[0] for ln in r.stdout.splitlines()] == [s2, s4]
    r = server.ctl('history', a, '--until', s3, '--limit', '2')
    assert [ln.split(' ', 1)[0] for ln in r.stdout.splitlines()] == [s2, s3]
    r = server.ctl('history', a, '--since', '2001-01-01', '--until',
                   '2001-12-31T23:59:59Z')
    assert (r.returncode, r.stdout) == (0, '')

    # JSON: one object per message, every field.
    r = server.ctl('--json', 'history', a, b)
    assert r.returncode == 0, r.stderr
    msgs = json.loads(r.stdout)
    want = [
        {'id': i1, 'timestamp': s1, 'direction': 'out', 'with': b,
         'from': ca.full, 'to': b, 'body': 'hello b',
         'stanza': "<message xmlns='jabber:client' to='%s' type='chat' "
                   "id='h1' from='%s'><body>hello b</body></message>"
                   % (b, ca.full)},
        {'id': i2, 'timestamp': s2, 'direction': 'in', 'with': b,
         'from': cb.full, 'to': a, 'body': 'line one\nline "two" \\ é',
         'stanza': "<message xmlns='jabber:client' to='%s' type='chat' "
                   "id='h2' from='%s'><body>line one\nline \"two\" "
                   "\\ é</body><stanza-id xmlns='%s' by='%s' id='%s'/>"
                   "</message>" % (a, cb.full, NS_SID, a, i2)},
        {'id': i4, 'timestamp': s4, 'direction': 'out', 'with': b,
         'from': ca.full, 'to': b, 'body': 'bye',
         'stanza': "<message xmlns='jabber:client' to='%s' type='chat' "
                   "id='h4' from='%s'><body>bye</body></message>"
                   % (b, ca.full)},
    ]
    assert msgs == want
    # The exact lines: one object per line inside the array.
    assert r.stdout.splitlines() == ['['] + [
        '  ' + json.dumps(m, ensure_ascii=False) + (',' if k < 2 else '')
        for k, m in enumerate(want)] + [']']

    # Exit codes (xmppctl(8)).
    r = server.ctl('history', 'nobody@' + DOMAIN)
    assert r.returncode == 5 and 'no such user' in r.stderr, r
    r = server.ctl('history', a, '--since', 'last tuesday')
    assert r.returncode == 2 and 'invalid time' in r.stderr, r
    r = server.ctl('history', a, '--limit', '0')
    assert r.returncode == 2, r
    r = server.ctl('history', 'not a jid')
    assert r.returncode == 1 and r.stderr, r
    r = server.ctl('--json', 'history', 'nobody@' + DOMAIN)
    assert r.returncode == 5


# --- a real client library ---------------------------------------------------

def test_slixmpp_pages_history_on_a_fresh_device(server, im):
    """A conversation held from one client is read back, page by page,
    by slixmpp's XEP-0313 plugin logging in from a new device."""
    import asyncio
    a, b = fresh_users(server, 2)
    ca, cb = im(a, resource='phone'), im(b)
    said = []
    for i in range(23):
        frm, to = (ca, cb) if i % 3 else (cb, ca)
        body = '%s says %d' % (frm.bare.split('@')[0], i)
        exchange(frm, to, body)
        said.append(body)
    # slixmpp binds futures to the current event loop when the client is
    # made, and an earlier run_async() may have left none.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    x = slixmpp_client(server, a)
    x.register_plugin('xep_0313')
    got = []

    async def scenario(loop):
        fut = loop.create_future()
        x.add_event_handler('session_start',
                            lambda _e: fut.done() or fut.set_result(True))
        x.connect(('127.0.0.1', server.c2s_port), force_starttls=True)
        await fut
        async for msg in x['xep_0313'].iterate(with_jid=b, rsm={'max': 5}):
            got.append(msg['mam_result']['forwarded']['stanza']['body'])

    try:
        run_async(scenario, [x])
    finally:
        loop.close()
    assert got == said


def test_archive_off(server_factory):
    """'archive off': nothing advertised, queries refused like an unknown
    payload (RFC 6120 §8.3.3.19), messages carry no stanza-id and no row
    is written."""
    srv = server_factory(extra='archive off')
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        ca, cb = f('alice@localhost'), f('bob@localhost')
        feats = disco_features(ca, 'alice@localhost')
        for ns in (NS_MAM, NS_MAM_EXT, NS_SID):
            assert ns not in feats, feats
        ca.iq_error('get', "<query xmlns='%s'/>" % NS_MAM,
                    'service-unavailable', 'cancel')
        got = exchange(ca, cb, 'not archived')
        assert stanza_ids(got) == []
        cb.message('alice@localhost', 'reply')
        ca.wait(is_message(body='reply'))
    finally:
        f.close_all()
    srv.stop()
    db = sqlite3.connect(os.path.join(srv.dir, 'xmppd.db'))
    try:
        assert db.execute('SELECT count(*) FROM archive').fetchone() == (0,)
    finally:
        db.close()
