"""XEP-0357 with the app server an external component (XEP-0114), as push
services are run: it receives the notification for an offline account
and for a session waiting for XEP-0198 resumption; its error answer (not
of type wait) removes the registration, so nothing more is sent; a
disabled registration sends nothing either."""

import time

import pytest

from im_helpers import IMClient, fresh_users
from im_helpers import im  # noqa: F401 (the fixture)
from sm_helpers import enable as sm_enable
from test_component import NS_COMPONENT, open_component, wait_no_components
from test_push import NS_PUBSUB, NS_PUSH, NS_XDATA, SUMMARY, enable_xml
from test_push import fields, go_offline, options_form, sessions_of
from test_push import wait_for
from xmpp_raw import q, tostr

APP = 'push.localhost'
SECRET = 'push-component-secret'
SERVER_OPTIONS = {'components': {APP: SECRET},
                  'limits': {'resume-timeout': '60s', 'push-interval': '0s',
                             'sm-ack-seconds': '0', 'sm-ack-stanzas': '0'}}


def publish_of(c, timeout=10):
    """The next notification the component gets: (iq, node, summary)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        el = c.next_element(max(deadline - time.monotonic(), 0.1))
        if el.tag != q(NS_COMPONENT, 'iq') or el.get('type') != 'set':
            continue
        pubsub = el.find(q(NS_PUBSUB, 'pubsub'))
        publish = pubsub.find(q(NS_PUBSUB, 'publish'))
        x = publish.find(q(NS_PUBSUB, 'item')).find(
            q(NS_PUSH, 'notification')).find(q(NS_XDATA, 'x'))
        return el, publish.get('node'), fields(x)
    raise AssertionError('no notification for the component')


def nothing_for(c, duration=1.0):
    el = c.poll_element(duration)
    assert el is None, tostr(el)


def answer(c, iq, error=None):
    if error is None:
        c.send("<iq type='result' id='%s' from='%s' to='%s'/>"
               % (iq.get('id'), APP, iq.get('from')))
    else:
        c.send("<iq type='error' id='%s' from='%s' to='%s'><error "
               "type='cancel'><%s xmlns='urn:ietf:params:xml:ns:xmpp-"
               "stanzas'/></error></iq>" % (iq.get('id'), APP,
                                             iq.get('from'), error))


@pytest.fixture
def app(server):
    wait_no_components(server)
    c = open_component(server, APP, SECRET)
    yield c
    c.close()


def test_component_app_server_offline_detached_error(im, server, app):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    a.iq_ok('set', enable_xml(APP, 'node-c', options_form('sekrit')))
    # offline
    go_offline(server, a)
    b.message(alice, 'are you there')
    iq, node, summary = publish_of(app)
    assert iq.get('from') == alice and iq.get('to') == APP, tostr(iq)
    assert node == 'node-c' and summary['FORM_TYPE'] == [SUMMARY]
    assert summary['message-count'] == ['1'], tostr(iq)
    answer(app, iq)
    # waiting for resumption
    a2 = IMClient(server.login(alice), alice)
    a2.presence()
    sm_enable(a2)
    a2.raw.close()
    wait_for(lambda: [s for s in sessions_of(server, alice)
                      if s['sm'] == 'waiting'], what='a waiting session')
    b.message(alice, 'while away')
    iq, _, summary = publish_of(app)
    # the app server refuses: the registration goes
    answer(app, iq, error='item-not-found')
    wait_for(lambda: 'registration removed' in server.stderr_text(),
             what='the registration removed')
    b.message(alice, 'anyone')
    nothing_for(app)


def test_disabled_registration_sends_nothing(im, server, app):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    a.iq_ok('set', enable_xml(APP, 'node-d', ''))
    a.iq_ok('set', "<disable xmlns='%s' jid='%s' node='node-d'/>"
            % (NS_PUSH, APP))
    go_offline(server, a)
    b.message(alice, 'hello?')
    nothing_for(app)
