"""PEP with a real client library: slixmpp's XEP-0163/0172/0084/0223
plugins.  Its XEP-0115 plugin announces caps with NODE+notify for each
PEP node a plugin registers; the server resolves them and notifies."""

import asyncio

from im_helpers import (fresh_users, im, run_async,  # noqa: F401
                        slixmpp_started, subscribe_both, until)


def test_nick_avatar_and_private_data(server, im):
    a, b = fresh_users(server, 2)
    ra, rb = im(a, roster=True), im(b, roster=True)
    subscribe_both(ra, rb)
    ra.raw.close()
    rb.raw.close()
    got = {}
    clients = []
    plugins = ['xep_0030', 'xep_0115', 'xep_0060', 'xep_0163', 'xep_0172',
               'xep_0084', 'xep_0223']

    def on_nick(msg):
        got['nick'] = (msg['from'].bare,
                       msg['pubsub_event']['items']['item']['nick']['nick'])

    def on_avatar(msg):
        item = msg['pubsub_event']['items']['item']
        got['avatar'] = (msg['from'].bare, item['id'])

    async def scenario(loop):
        xa, sa = slixmpp_started(server, a, plugins, loop)
        xb, sb = slixmpp_started(server, b, plugins, loop)
        clients.extend([xa, xb])
        xb.add_event_handler('user_nick_publish', on_nick)
        xb.add_event_handler('avatar_metadata_publish', on_avatar)
        await sa
        await sb
        # let the server resolve b's caps (it asks b once)
        await asyncio.sleep(0.5)
        await xa.plugin['xep_0172'].publish_nick('Alice A.')
        await until(lambda: 'nick' in got, 'nick notification', 8)
        assert got['nick'] == (a, 'Alice A.')
        await xa.plugin['xep_0084'].publish_avatar_metadata(
            items=[{'id': '0123456789abcdef0123456789abcdef01234567',
                    'type': 'image/png', 'bytes': 1234}])
        await until(lambda: 'avatar' in got, 'avatar notification', 8)
        assert got['avatar'][0] == a
        # b reads a's nickname node (presence access: b is subscribed)
        iq = await xb.plugin['xep_0060'].get_items(
            a, 'http://jabber.org/protocol/nick', max_items=1)
        nicks = [n.text for n in iq.xml.iter(
            '{http://jabber.org/protocol/nick}nick')]
        assert nicks == ['Alice A.']
        # XEP-0223: private data in a whitelist node, readable by a only
        from slixmpp.plugins.xep_0172 import UserNick
        secret = UserNick()
        secret['nick'] = 'kept private'
        await xa.plugin['xep_0223'].store(secret, node='urn:xmpp:test:priv',
                                          id='current')
        iq = await xa.plugin['xep_0223'].retrieve('urn:xmpp:test:priv')
        assert 'kept private' in str(iq)
        failed = False
        try:
            await xb.plugin['xep_0060'].get_items(a, 'urn:xmpp:test:priv')
        except Exception as exc:   # IqError: not-allowed / closed-node
            failed = 'not-allowed' in str(exc) or 'closed-node' in str(
                getattr(exc, 'iq', exc))
        assert failed, 'whitelist node readable by a contact'
        xa.disconnect()
        xb.disconnect()
        await asyncio.sleep(0.1)

    run_async(scenario, clients, timeout=30)
