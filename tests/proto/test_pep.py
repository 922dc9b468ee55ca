"""Personal eventing (XEP-0163) on accounts' bare JIDs, with raw XML:
publish (auto-create, item ids), items (all, max_items, by id), retract,
node creation, configuration and publish-options preconditions
(XEP-0060 §7.1.5, XEP-0223), delete and purge, access models against
the owner, contacts with and without a subscription, roster groups,
strangers and blocked JIDs, limits, disco, and notifications filtered by
verified XEP-0115 caps (a forged hash is not trusted) with the last
published item on coming online."""

import sqlite3

import pytest

from im_helpers import (DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, fresh_users,
                        im, subscribe, subscribe_both)  # noqa: F401
from pep_helpers import (NS_PUBSUB, NS_PUBSUB_OWNER, announce, configure_get,
                         configure_set_xml, event_items, is_event, items,
                         items_xml, notify, publish, publish_xml,
                         pubsub_error)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

SERVER_OPTIONS = {'limits': {'pep-nodes': 20, 'pep-item-size': '4K',
                             'pep-items': 50, 'pep-size': '64K'}}

NODE = 'urn:xmpp:test:node'


def payload(text, ns='urn:xmpp:test:payload'):
    return "<entry xmlns='%s'>%s</entry>" % (ns, text)


def text(el):
    return el.text if el is not None else None


def expect_error(c, itype, payload_xml, condition, app=None, to=None):
    el = c.iq(itype, payload_xml, to=to)
    assert_stanza_error(el, 'iq', condition)
    assert pubsub_error(el) == app, tostr(el)
    return el


# --- publish and retrieve ----------------------------------------------------

def test_publish_autocreate_and_items(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    item_id = publish(c, NODE, payload('one'))
    assert len(item_id) > 8
    got = items(c, a, NODE)
    assert [(i, text(p)) for i, p in got] == [(item_id, 'one')]
    # default max_items is 1: a second publish replaces it
    publish(c, NODE, payload('two'), item_id='second')
    assert [(i, text(p)) for i, p in items(c, a, NODE)] == [('second', 'two')]
    # no 'to' means one's own account too
    el = c.iq_ok('get', items_xml(NODE))
    assert el.find('.//' + q(NS_PUBSUB, 'item')).get('id') == 'second'
    fields = configure_get(c, NODE)
    assert fields['pubsub#access_model'] == ['presence']
    assert fields['pubsub#max_items'] == ['1']
    assert fields['pubsub#persist_items'] == ['1']
    assert fields['pubsub#send_last_published_item'] == [
        'on_sub_and_presence']


def test_multi_items_max_and_ids(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    for i in range(5):
        publish(c, NODE, payload('p%d' % i), item_id='i%d' % i,
                options={'pubsub#max_items': 'max'})
    got = items(c, a, NODE)
    assert [i for i, _ in got] == ['i0', 'i1', 'i2', 'i3', 'i4']
    assert [i for i, _ in items(c, a, NODE, max_items=2)] == ['i3', 'i4']
    assert [i for i, _ in items(c, a, NODE, ids=['i1', 'i3', 'nope'])] == [
        'i1', 'i3']
    # republishing an id makes it the newest
    publish(c, NODE, payload('again'), item_id='i0')
    assert [i for i, _ in items(c, a, NODE)] == ['i1', 'i2', 'i3', 'i4', 'i0']
    # max_items over pep-items (50) is refused
    el = c.iq('set', configure_set_xml(NODE, {'pubsub#max_items': '51'}))
    assert_stanza_error(el, 'iq', 'not-acceptable')
    assert 'max_items 51 refused (pep-items 50)' in server.stderr_text()
    # lowering max_items drops the oldest
    c.iq_ok('set', configure_set_xml(NODE, {'pubsub#max_items': '2'}))
    assert [i for i, _ in items(c, a, NODE)] == ['i4', 'i0']
    fields = configure_get(c, NODE)
    assert fields['pubsub#max_items'] == ['2']


def test_retract_delete_purge(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    opts = {'pubsub#max_items': '10'}
    publish(c, NODE, payload('x'), item_id='x', options=opts)
    publish(c, NODE, payload('y'), item_id='y', options=opts)
    retract = ("<pubsub xmlns='%s'><retract node='%s'><item id='%%s'/>"
               "</retract></pubsub>" % (NS_PUBSUB, NODE))
    c.iq_ok('set', retract % 'x')
    assert [i for i, _ in items(c, a, NODE)] == ['y']
    expect_error(c, 'set', retract % 'x', 'item-not-found')
    c.iq_ok('set', "<pubsub xmlns='%s'><purge node='%s'/></pubsub>"
            % (NS_PUBSUB_OWNER, NODE))
    assert items(c, a, NODE) == []
    c.iq_ok('set', "<pubsub xmlns='%s'><delete node='%s'/></pubsub>"
            % (NS_PUBSUB_OWNER, NODE))
    expect_error(c, 'get', items_xml(NODE), 'item-not-found', to=a)
    expect_error(c, 'set', "<pubsub xmlns='%s'><delete node='%s'/></pubsub>"
                 % (NS_PUBSUB_OWNER, NODE), 'item-not-found')


def test_create_and_configure(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    node = 'urn:xmpp:test:created'
    conf = ("<configure><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE' type='hidden'><value>"
            "http://jabber.org/protocol/pubsub#node_config</value></field>"
            "<field var='pubsub#access_model'><value>open</value></field>"
            "<field var='pubsub#title'><value>Mine</value></field>"
            "</x></configure>")
    c.iq_ok('set', "<pubsub xmlns='%s'><create node='%s'/>%s</pubsub>"
            % (NS_PUBSUB, node, conf))
    expect_error(c, 'set', "<pubsub xmlns='%s'><create node='%s'/></pubsub>"
                 % (NS_PUBSUB, node), 'conflict')
    fields = configure_get(c, node)
    assert fields['pubsub#access_model'] == ['open']
    assert fields['pubsub#title'] == ['Mine']
    # no instant nodes on PEP
    expect_error(c, 'set', "<pubsub xmlns='%s'><create/></pubsub>"
                 % NS_PUBSUB, 'not-acceptable', 'nodeid-required')
    # an unknown access model is not acceptable
    el = c.iq('set', configure_set_xml(node, {'pubsub#access_model':
                                              'authorize'}))
    assert_stanza_error(el, 'iq', 'not-acceptable')
    c.iq_ok('set', configure_set_xml(node, {'pubsub#access_model':
                                            'whitelist'}))
    assert configure_get(c, node)['pubsub#access_model'] == ['whitelist']
    # other fields kept
    assert configure_get(c, node)['pubsub#title'] == ['Mine']
    default = c.iq_ok('get', "<pubsub xmlns='%s'><default/></pubsub>"
                      % NS_PUBSUB_OWNER)
    assert 'presence' in tostr(default)


def test_publish_options_preconditions(server, im):
    """XEP-0060 §7.1.5 / XEP-0223: a new node takes the options; an
    existing one with other values is a conflict with
    <precondition-not-met/>, and nothing is published."""
    a, = fresh_users(server, 1)
    c = im(a)
    node = 'eu.siacs.conversations.axolotl.devicelist'
    opts = {'pubsub#access_model': 'open'}
    publish(c, node, "<list xmlns='eu.siacs.conversations.axolotl'>"
            "<device id='1'/></list>", item_id='current', options=opts)
    assert configure_get(c, node)['pubsub#access_model'] == ['open']
    publish(c, node, "<list xmlns='eu.siacs.conversations.axolotl'>"
            "<device id='2'/></list>", item_id='current', options=opts)
    el = c.iq('set', publish_xml(node, "<list xmlns='eu.siacs."
                                 "conversations.axolotl'/>", 'current',
                                 {'pubsub#access_model': 'presence'}))
    assert_stanza_error(el, 'iq', 'conflict')
    assert pubsub_error(el) == 'precondition-not-met'
    got = items(c, a, node)
    assert 'id="2"' in tostr(got[0][1]) or "id='2'" in tostr(got[0][1])
    # a bad options form
    el = c.iq('set', "<pubsub xmlns='%s'><publish node='n2'><item id='1'>%s"
              "</item></publish><publish-options><x xmlns='jabber:x:data' "
              "type='submit'><field var='FORM_TYPE' type='hidden'><value>"
              "wrong</value></field></x></publish-options></pubsub>"
              % (NS_PUBSUB, payload('z')))
    assert_stanza_error(el, 'iq', 'bad-request')


def test_bad_requests(server, im):
    a, b = fresh_users(server, 2)
    c = im(a)
    expect_error(c, 'set', "<pubsub xmlns='%s'><publish node='%s'/>"
                 "</pubsub>" % (NS_PUBSUB, NODE), 'bad-request',
                 'item-required')
    expect_error(c, 'set', "<pubsub xmlns='%s'><publish node='%s'><item/>"
                 "</publish></pubsub>" % (NS_PUBSUB, NODE), 'bad-request',
                 'payload-required')
    expect_error(c, 'set', "<pubsub xmlns='%s'><publish node='%s'><item>"
                 "%s%s</item></publish></pubsub>"
                 % (NS_PUBSUB, NODE, payload('1'), payload('2')),
                 'bad-request', 'invalid-payload')
    expect_error(c, 'set', "<pubsub xmlns='%s'><publish><item>%s</item>"
                 "</publish></pubsub>" % (NS_PUBSUB, payload('1')),
                 'bad-request', 'nodeid-required')
    # publishing to someone else's account
    expect_error(c, 'set', publish_xml(NODE, payload('x')), 'forbidden',
                 to=b)
    # explicit subscriptions are not implemented (implicit ones are)
    el = expect_error(c, 'set', "<pubsub xmlns='%s'><subscribe node='%s' "
                      "jid='%s'/></pubsub>" % (NS_PUBSUB, NODE, a),
                      'feature-not-implemented', 'unsupported', to=b)
    assert 'subscribe' in tostr(el)
    # pubsub on the server's JID: no service there
    expect_error(c, 'get', items_xml(NODE), 'service-unavailable',
                 to=DOMAIN)


# --- access models -------------------------------------------------------------

def access_fixture(server, im):
    """owner, a contact with a 'from' subscription (in group 'friends'),
    a contact without one, a stranger."""
    o, f, n, s = fresh_users(server, 4)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    nosub = im(n, roster=True)
    stranger = im(s)
    subscribe(friend, owner)            # owner's roster: friend 'from'
    owner.roster_set(f, groups=['friends'])
    owner.expect_push(f)
    owner.roster_set(n, groups=['friends'])
    owner.expect_push(n)
    subscribe(owner, nosub)             # owner 'to' nosub only
    return owner, friend, nosub, stranger


def test_access_models(server, im):
    owner, friend, nosub, stranger = access_fixture(server, im)
    o = owner.bare
    publish(owner, 'n:presence', payload('p'), 'i')
    publish(owner, 'n:open', payload('o'), 'i',
            options={'pubsub#access_model': 'open'})
    publish(owner, 'n:roster', payload('r'), 'i',
            options={'pubsub#access_model': 'roster',
                     'pubsub#roster_groups_allowed': ['friends']})
    publish(owner, 'n:other', payload('r'), 'i',
            options={'pubsub#access_model': 'roster',
                     'pubsub#roster_groups_allowed': ['family']})
    publish(owner, 'n:white', payload('w'), 'i',
            options={'pubsub#access_model': 'whitelist'})
    # the owner reads everything
    for node in ('n:presence', 'n:open', 'n:roster', 'n:other', 'n:white'):
        assert len(items(owner, o, node)) == 1
    # presence: only 'from' subscribers
    assert len(items(friend, o, 'n:presence')) == 1
    for c in (nosub, stranger):
        expect_error(c, 'get', items_xml('n:presence'), 'not-authorized',
                     'presence-subscription-required', to=o)
    # open: anyone
    for c in (friend, nosub, stranger):
        assert len(items(c, o, 'n:open')) == 1
    # roster: the allowed groups
    assert len(items(friend, o, 'n:roster')) == 1
    assert len(items(nosub, o, 'n:roster')) == 1
    expect_error(stranger, 'get', items_xml('n:roster'), 'not-authorized',
                 'not-in-roster-group', to=o)
    expect_error(friend, 'get', items_xml('n:other'), 'not-authorized',
                 'not-in-roster-group', to=o)
    # whitelist: the owner only
    for c in (friend, nosub, stranger):
        expect_error(c, 'get', items_xml('n:white'), 'not-allowed',
                     'closed-node', to=o)
    # disco#items: the nodes each may see
    def node_list(c):
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=o)
        return sorted(i.get('node') for i in el.iter(q(NS_DISCO_ITEMS,
                                                         'item')))
    assert node_list(owner) == ['n:open', 'n:other', 'n:presence',
                                'n:roster', 'n:white']
    assert node_list(friend) == ['n:open', 'n:presence', 'n:roster']
    # blocked: nothing at all
    owner.iq_ok('set', "<block xmlns='urn:xmpp:blocking'><item jid='%s'/>"
                "</block>" % friend.bare)
    el = friend.iq('get', items_xml('n:open'), to=o)
    assert el.get('type') == 'error', tostr(el)


# --- limits ----------------------------------------------------------------

def test_limits(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    big = payload('x' * 5000)
    expect_error(c, 'set', publish_xml(NODE, big), 'not-acceptable',
                 'payload-too-big')
    assert 'pep-item-size' in server.stderr_text()
    for i in range(20):
        publish(c, 'n%d' % i, payload('a'))
    expect_error(c, 'set', publish_xml('n-too-many', payload('a')),
                 'policy-violation', 'max-nodes-exceeded')
    expect_error(c, 'set', "<pubsub xmlns='%s'><create node='n-x'/>"
                 "</pubsub>" % NS_PUBSUB, 'policy-violation',
                 'max-nodes-exceeded')
    # pep-size (64K) over the account's stored items
    for i in range(20):
        c.iq_ok('set', "<pubsub xmlns='%s'><delete node='n%d'/></pubsub>"
                % (NS_PUBSUB_OWNER, i))
    opts = {'pubsub#max_items': '50'}
    for i in range(17):
        publish(c, 'big', payload('y' * 3800), item_id='b%d' % i,
                options=opts)
    expect_error(c, 'set', publish_xml('big', payload('y' * 3800), 'b99',
                                       opts),
                 'not-acceptable', 'payload-too-big')
    assert 'refused (pep-size)' in server.stderr_text()


# --- disco -----------------------------------------------------------------

def test_disco_info(server, im):
    a, b = fresh_users(server, 2)
    c = im(a)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=a)
    ids = [(i.get('category'), i.get('type'))
           for i in el.iter(q(NS_DISCO_INFO, 'identity'))]
    assert ('pubsub', 'pep') in ids
    feats = {f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))}
    for f in ('publish', 'publish-options', 'auto-create', 'access-open',
              'access-presence', 'access-roster', 'access-whitelist',
              'config-node', 'config-node-max', 'retrieve-items',
              'retract-items', 'delete-nodes', 'purge-nodes',
              'persistent-items', 'last-published',
              'filtered-notifications', 'item-ids', 'multi-items'):
        assert NS_PUBSUB + '#' + f in feats, f
    for f in ('subscribe', 'retrieve-subscriptions', 'modify-affiliations'):
        assert NS_PUBSUB + '#' + f not in feats, f


def test_account_deletion_removes_pep(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    publish(c, NODE, payload('gone'))
    c.raw.close()
    out = server.ctl('deluser', a)
    assert out.returncode == 0, out
    db = sqlite3.connect(str(server.db))
    try:
        n = db.execute("SELECT count(*) FROM pep_node WHERE user_id NOT IN "
                       "(SELECT id FROM users)").fetchone()[0]
        items_left = db.execute("SELECT count(*) FROM pep_item WHERE node_id"
                                " NOT IN (SELECT id FROM pep_node)"
                                ).fetchone()[0]
    finally:
        db.close()
    assert n == 0 and items_left == 0


# --- notifications ---------------------------------------------------------

WANTS = notify(NODE)


def test_notifications_filtered_by_caps(server, im):
    o, f, n = fresh_users(server, 3)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    other = im(n, roster=True)
    subscribe_both(owner, friend)
    subscribe_both(owner, other)
    own2 = im(o, presence=False)
    assert announce(friend, ['x'] + WANTS) == 1
    announce(other, ['x'])                  # no +notify
    announce(own2, ['x'] + WANTS)
    item_id = publish(owner, NODE, payload('hello'))
    ev = friend.wait(is_event(NODE, frm=o, item_id=item_id))
    assert text(event_items(ev)[0][1]) == 'hello'
    assert ev.get('type') == 'headline'
    own2.wait(is_event(NODE, frm=o, item_id=item_id))
    other.absent(is_event())
    owner.absent(is_event())                # no caps: not interested


def test_caps_resolved_once_and_forged_not_trusted(server, im):
    o, f, g = fresh_users(server, 3)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    liar = im(g, roster=True)
    subscribe_both(owner, friend)
    subscribe_both(owner, liar)
    feats = ['urn:xmpp:test:forge'] + notify('n:forge')
    # the liar answers with features that do not hash to the ver
    assert announce(liar, feats, lie=True) == 1
    publish(owner, 'n:forge', payload('1'), options={'pubsub#access_model':
                                                     'presence'})
    liar.absent(is_event('n:forge'))
    # the next client presenting that ver is asked, answers truthfully
    assert announce(friend, feats) == 1
    publish(owner, 'n:forge', payload('2'))
    friend.wait(is_event('n:forge'))
    # once verified it is never asked again
    again = im(f, presence=False)
    assert announce(again, feats) == 0


def test_last_item_on_coming_online(server, im):
    o, f = fresh_users(server, 2)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    subscribe_both(owner, friend)
    publish(owner, 'n:last', payload('latest'), item_id='L')
    later = im(f, roster=True, presence=False)
    announce(later, ['y'] + notify('n:last'))
    ev = later.wait(is_event('n:last', frm=o, item_id='L'))
    assert ev.find(q('urn:xmpp:delay', 'delay')) is not None
    # the owner's other resource gets its own last item too
    mine = im(o, presence=False)
    announce(mine, ['z'] + notify('n:last'))
    mine.wait(is_event('n:last', frm=o, item_id='L'))


def test_unresolved_ver_then_resolved(server, im):
    """A ver the server has not resolved: no notification is sent on
    trust; once the client answers, the interest appears and the last
    item comes."""
    o, f = fresh_users(server, 2)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    subscribe_both(owner, friend)
    feats = ['urn:xmpp:test:slow'] + notify('n:slow')
    assert announce(friend, feats, answer=False) == 0
    from pep_helpers import answer_caps_queries, is_caps_query
    queries = friend.discard(is_caps_query)
    assert len(queries) == 1
    publish(owner, 'n:slow', payload('early'), item_id='E')
    friend.absent(is_event('n:slow'))
    friend.raw.pending.extend(queries)
    assert answer_caps_queries(friend, feats) == 1
    friend.wait(is_event('n:slow', frm=o, item_id='E'))


def test_interest_appears(server, im):
    """A session whose caps gain NODE+notify gets that node's last item,
    including on_sub nodes, which coming online alone does not send."""
    o, f = fresh_users(server, 2)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    subscribe_both(owner, friend)
    publish(owner, 'n:onsub', payload('s'), item_id='S',
            options={'pubsub#send_last_published_item': 'on_sub'})
    publish(owner, 'n:never', payload('n'), item_id='N',
            options={'pubsub#send_last_published_item': 'never'})
    announce(friend, ['a'] + notify('n:onsub', 'n:never'))
    friend.absent(is_event())          # coming online: on_sub not sent
    announce(friend, ['b'] + notify('n:onsub', 'n:never', 'n:other'))
    friend.absent(is_event())          # nothing new for those nodes
    announce(friend, ['c'])
    announce(friend, ['d'] + notify('n:onsub', 'n:never'))
    friend.wait(is_event('n:onsub', frm=o, item_id='S'))
    friend.absent(is_event('n:never'))


def test_last_items_of_offline_owner_and_blocking(server, im):
    """The last items of an owner who is offline come from storage, with
    its access model and block list applied there."""
    o, f, g = fresh_users(server, 3)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    other = im(g, roster=True)
    subscribe_both(owner, friend)
    subscribe_both(owner, other)
    publish(owner, 'n:off', payload('stored'), item_id='S1')
    publish(owner, 'n:white', payload('secret'), item_id='W1',
            options={'pubsub#access_model': 'whitelist'})
    owner.iq_ok('set', "<block xmlns='urn:xmpp:blocking'><item jid='%s'/>"
                "</block>" % g)
    owner.raw.close()
    friend.raw.close()
    other.raw.close()
    wants = ['w'] + notify('n:off', 'n:white')
    f2 = im(f, roster=True, presence=False)
    announce(f2, wants)
    ev = f2.wait(is_event('n:off', frm=o, item_id='S1'))
    assert text(event_items(ev)[0][1]) == 'stored'
    f2.absent(is_event('n:white'))
    g2 = im(g, roster=True, presence=False)
    announce(g2, wants)
    g2.absent(is_event())


def test_last_item_when_subscription_is_approved(server, im):
    """Interest appears when the owner approves a subscription: the new
    subscriber's interested sessions get the last items, on_sub nodes
    included (XEP-0060 send_last_published_item)."""
    o, f = fresh_users(server, 2)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    publish(owner, 'n:appr', payload('hi'), item_id='A1',
            options={'pubsub#send_last_published_item': 'on_sub'})
    announce(friend, ['s'] + notify('n:appr'))
    friend.absent(is_event())
    subscribe(friend, owner)
    friend.wait(is_event('n:appr', frm=o, item_id='A1'))


def test_large_last_item_of_online_owner(server, im):
    """An item too large for the cache of online owners' nodes still
    reaches a contact coming online (read from storage)."""
    o, f = fresh_users(server, 2)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    subscribe_both(owner, friend)
    publish(owner, 'n:big', payload('b' * 3000), item_id='B')
    publish(owner, 'n:small', payload('s'), item_id='S')
    later = im(f, roster=True, presence=False)
    announce(later, ['big'] + notify('n:big', 'n:small'))
    ev = later.wait(is_event('n:big', frm=o, item_id='B'))
    assert text(event_items(ev)[0][1]) == 'b' * 3000
    later.wait(is_event('n:small', frm=o, item_id='S'))


def test_omemo2_devices_and_multi_item_bundles(server, im):
    """OMEMO 2 (XEP-0384 0.8+): the device list and one bundle item per
    device in one node, both published with publish-options open (and
    max_items max for the bundles); a contact without a subscription
    reads them, a subscribed contact with +notify hears device list
    changes."""
    o, f, s = fresh_users(server, 3)
    owner = im(o, roster=True)
    friend = im(f, roster=True)
    stranger = im(s)
    subscribe_both(owner, friend)
    announce(friend, ['o2'] + notify('urn:xmpp:omemo:2:devices'))
    ns = 'urn:xmpp:omemo:2'
    open_max = {'pubsub#access_model': 'open', 'pubsub#max_items': 'max'}
    for dev in ('101', '202'):
        publish(owner, ns + ':bundles', "<bundle xmlns='%s'><spk id='1'>"
                "AAAA</spk><ik>BBBB</ik><prekeys><pk id='1'>CC</pk>"
                "</prekeys></bundle>" % ns, item_id=dev, options=open_max)
    publish(owner, ns + ':devices', "<devices xmlns='%s'><device id='101'/>"
            "<device id='202'/></devices>" % ns, item_id='current',
            options={'pubsub#access_model': 'open'})
    ev = friend.wait(is_event(ns + ':devices', frm=o, item_id='current'))
    assert "id='202'" in tostr(ev) or 'id="202"' in tostr(ev)
    assert [i for i, _ in items(stranger, o, ns + ':bundles')] == ['101',
                                                                  '202']
    assert [i for i, _ in items(stranger, o, ns + ':bundles',
                                ids=['202'])] == ['202']
    assert len(items(stranger, o, ns + ':devices')) == 1
