"""The checks the Conversations compliance tester (CAAS) makes for
XEP-0163, XEP-0384, XEP-0398, XEP-0411 and XEP-0357, made the same way
against xmppd: disco#info on the account's own bare JID (the pubsub/pep
identity; #publish-options; the conversion features; push) and, for
XEP-0384, an OMEMO device list published with publish-options
access_model=open whose node configuration is read back.  The exchange
is printed (pytest -s) for the record."""

import os

from im_helpers import NS_DISCO_INFO, fresh_users, im  # noqa: F401
from pep_helpers import NS_PUBSUB, configure_get, publish
from xmpp_raw import q

DEVICELIST = 'eu.siacs.conversations.axolotl.devicelist'


def dump(c, title):
    out = ['== %s' % title]
    for d, b in c.raw.log:
        text = b.decode('utf-8', 'replace')
        if '<iq' in text:
            out.append('%s %s' % ('C:' if d == '>' else 'S:', text))
    c.raw.log.clear()
    report = '\n'.join(out)
    print(report)
    path = os.environ.get('XMPPD_TEST_ARTIFACTS')
    if path:
        with open(os.path.join(path, 'caas-checks.txt'), 'a') as f:
            f.write(report + '\n')


def test_caas_pep_omemo_avatar_bookmarks(server, im):
    a, = fresh_users(server, 1)
    c = im(a, presence=False)
    c.raw.log_limit = 1 << 20
    c.raw.log.clear()
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=a)
    ids = {(i.get('category'), i.get('type'))
           for i in el.iter(q(NS_DISCO_INFO, 'identity'))}
    feats = {f.get('var') for f in el.iter(q(NS_DISCO_INFO, 'feature'))}
    dump(c, 'xep0163, xep0384, xep0398, xep0411, xep0357: disco#info on %s'
         % a)
    assert ('pubsub', 'pep') in ids                          # xep0163
    assert NS_PUBSUB + '#publish-options' in feats           # xep0384
    assert 'urn:xmpp:pep-vcard-conversion:0' in feats        # xep0398
    assert 'urn:xmpp:bookmarks:1#compat' in feats            # xep0411
    assert 'urn:xmpp:push:0' in feats                        # xep0357
    publish(c, DEVICELIST, "<list xmlns='eu.siacs.conversations.axolotl'>"
            "<device id='12345'/></list>", item_id='current',
            options={'pubsub#access_model': 'open'})
    fields = configure_get(c, DEVICELIST)
    dump(c, 'xep0384: a device list published with access_model open, '
         'its configuration read back')
    assert fields['pubsub#access_model'] == ['open']
