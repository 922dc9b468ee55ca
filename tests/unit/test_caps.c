/*
 * Unit tests for the XEP-0115 verification string (xmppd/core/disco.c): the
 * §5.2 simple and §5.3 complex examples, order independence, the §5.4
 * rules for ill-formed results and ignored forms, the registry's own
 * ver over what modules add (with a XEP-0157 serverinfo form), and what
 * goes with a module switched off.
 */
#include <stdlib.h>
#include <string.h>

#include "core/disco.h"
#include "core/hooks.h"
#include "unit.h"
#include "xml.h"

/* XEP-0115 §5.2 */
static const char simple[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'"
    " node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>"
    "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "</query>";

/* XEP-0115 §5.3 */
static const char complex_example[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'"
    " node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>"
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<identity xml:lang='el' category='client' name='\xce\xa8 0.11'"
    " type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='FORM_TYPE' type='hidden'>"
    "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
    "<field var='ip_version'><value>ipv4</value><value>ipv6</value></field>"
    "<field var='os'><value>Mac</value></field>"
    "<field var='os_version'><value>10.5.1</value></field>"
    "<field var='software'><value>Psi</value></field>"
    "<field var='software_version'><value>0.11</value></field>"
    "</x></query>";

/* The same as complex_example with every list in another order. */
static const char complex_shuffled[] =
    "<query xmlns='http://jabber.org/protocol/disco#info'>"
    "<feature var='http://jabber.org/protocol/muc'/>"
    "<x xmlns='jabber:x:data' type='result'>"
    "<field var='software_version'><value>0.11</value></field>"
    "<field var='os'><value>Mac</value></field>"
    "<field var='ip_version'><value>ipv6</value><value>ipv4</value></field>"
    "<field var='software'><value>Psi</value></field>"
    "<field var='FORM_TYPE' type='hidden'>"
    "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
    "<field var='os_version'><value>10.5.1</value></field>"
    "</x>"
    "<feature var='http://jabber.org/protocol/disco#items'/>"
    "<identity xml:lang='el' category='client' name='\xce\xa8 0.11'"
    " type='pc'/>"
    "<feature var='http://jabber.org/protocol/disco#info'/>"
    "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
    "<feature var='http://jabber.org/protocol/caps'/>"
    "</query>";

#define SIMPLE_VER "QgayPKawpkPSDYmwT/WM94uAlu0="
#define COMPLEX_VER "q07IKJEyjvHSyhy//CH0CxmKi8w="

static char *
hash_of(const char *xml)
{
	struct xel *q = xml_parse_element(xml, strlen(xml), "", NULL);
	char *ver;

	if (q == NULL) {
		fprintf(stderr, "cannot parse: %s\n", xml);
		return NULL;
	}
	ver = disco_caps_hash(q);
	arena_free(q->arena);
	return ver;
}

static void
check_hash(const char *xml, const char *want)
{
	char *ver = hash_of(xml);

	CHECK_STR(ver, want);
	free(ver);
}

static void
test_examples(void)
{
	check_hash(simple, SIMPLE_VER);
	check_hash(complex_example, COMPLEX_VER);
	check_hash(complex_shuffled, COMPLEX_VER);
}

/* The simple example's body with something added before </query>. */
static char *
simple_plus(const char *extra)
{
	size_t n = strlen(simple) - strlen("</query>");
	char *s = malloc(n + strlen(extra) + sizeof("</query>"));

	memcpy(s, simple, n);
	strcpy(s + n, extra);
	strcat(s, "</query>");
	return s;
}

static void
check_plus(const char *extra, const char *want)
{
	char *xml = simple_plus(extra);

	check_hash(xml, want);
	free(xml);
}

/* §5.4 step 3: what is ignored and what makes the result ill-formed. */
static void
test_processing_rules(void)
{
	/* 3.3: the same identity twice. */
	check_plus("<identity category='client' name='Exodus 0.9.1'"
	    " type='pc'/>", NULL);
	/* ... but the same one in another language is another identity. */
	{
		char *v = NULL, *xml = simple_plus("<identity category='client'"
		    " name='Exodus 0.9.1' type='pc' xml:lang='de'/>");

		v = hash_of(xml);
		CHECK(v != NULL && strcmp(v, SIMPLE_VER) != 0);
		free(v);
		free(xml);
	}
	/* 3.4: a feature twice. */
	check_plus("<feature var='http://jabber.org/protocol/muc'/>", NULL);
	/* 3.5: two forms with the same FORM_TYPE. */
	check_plus("<x xmlns='jabber:x:data' type='result'>"
	    "<field var='FORM_TYPE' type='hidden'><value>urn:a</value></field>"
	    "</x><x xmlns='jabber:x:data' type='result'>"
	    "<field var='FORM_TYPE' type='hidden'><value>urn:a</value></field>"
	    "<field var='f'><value>1</value></field></x>", NULL);
	/* 3.5: a FORM_TYPE with different values. */
	check_plus("<x xmlns='jabber:x:data' type='result'>"
	    "<field var='FORM_TYPE' type='hidden'><value>urn:a</value>"
	    "<value>urn:b</value></field></x>", NULL);
	/* 3.6: no FORM_TYPE, or one that is not hidden: form ignored. */
	check_plus("<x xmlns='jabber:x:data' type='result'>"
	    "<field var='f'><value>1</value></field></x>", SIMPLE_VER);
	check_plus("<x xmlns='jabber:x:data' type='result'>"
	    "<field var='FORM_TYPE'><value>urn:a</value></field>"
	    "<field var='f'><value>1</value></field></x>", SIMPLE_VER);
	/* Children in other namespaces are not part of S. */
	check_plus("<feature xmlns='urn:other' var='x'/>", SIMPLE_VER);
}

/* A form's field and its values, checking the serverinfo form. */
static int
has_field_value(const struct xel *x, const char *var, const char *value)
{
	for (struct xel *f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		const char *v = xel_attr(f, "var");

		if (v == NULL || strcmp(v, var) != 0)
			continue;
		for (struct xel *val = xel_child(f, "value", NS_XDATA); val;
		    val = xel_next(val, "value", NS_XDATA))
			if (strcmp(xel_text(val), value) == 0)
				return 1;
	}
	return 0;
}

static void
test_registry(void)
{
	struct arena *a = arena_new(1024);
	struct xel *q = xel_new(a, "query", NS_DISCO_INFO), *x, *c;
	char *ver;
	int nfeat = 0, nid = 0;

	disco_reset();
	disco_add_feature(DISCO_SERVER, "urn:xmpp:ping");
	disco_add_feature(DISCO_SERVER, NS_DISCO_ITEMS);
	disco_add_feature(DISCO_SERVER, NS_DISCO_INFO);
	disco_add_feature(DISCO_SERVER, "urn:xmpp:ping");   /* duplicate */
	disco_add_identity(DISCO_SERVER, "server", "im", "xmppd");
	disco_add_identity(DISCO_SERVER, "server", "im", "xmppd");
	disco_add_identity(DISCO_ACCOUNT, "account", "registered", NULL);
	disco_add_feature(DISCO_ACCOUNT, NS_DISCO_INFO);
	disco_add_server_info("abuse-addresses", "mailto:abuse@localhost");
	disco_add_server_info("support-addresses",
	    "https://localhost/support");
	disco_add_server_info("abuse-addresses", "xmpp:abuse@localhost");

	disco_fill_info(q, DISCO_SERVER);
	for (c = xel_first_elem(q); c; c = xel_next(c, NULL, NULL)) {
		if (xel_is(c, "feature", NS_DISCO_INFO))
			nfeat++;
		if (xel_is(c, "identity", NS_DISCO_INFO))
			nid++;
	}
	CHECK(nfeat == 3 && nid == 1);
	/* Features come out sorted. */
	c = xel_child(q, "feature", NS_DISCO_INFO);
	CHECK_STR(xel_attr(c, "var"), NS_DISCO_INFO);
	x = xel_child(q, "x", NS_XDATA);
	CHECK(x != NULL);
	CHECK_STR(xel_attr(x, "type"), "result");
	c = xel_child(x, "field", NS_XDATA);
	CHECK_STR(xel_attr(c, "var"), "FORM_TYPE");
	CHECK_STR(xel_attr(c, "type"), "hidden");
	CHECK(has_field_value(x, "FORM_TYPE",
	    "http://jabber.org/network/serverinfo"));
	CHECK(has_field_value(x, "abuse-addresses", "mailto:abuse@localhost"));
	CHECK(has_field_value(x, "abuse-addresses", "xmpp:abuse@localhost"));
	CHECK(has_field_value(x, "support-addresses",
	    "https://localhost/support"));

	/* S = server/im//xmppd<disco#info<disco#items<urn:xmpp:ping<
	 * serverinfo<abuse-addresses<mailto:..<xmpp:..<support-addresses<
	 * https://localhost/support< (computed independently). */
	ver = disco_caps_hash(q);
	CHECK_STR(ver, "wdb/7QLqcsKtz1sS4URiX3mpRIA=");
	CHECK_STR(disco_caps_ver(), ver);
	free(ver);
	arena_free(a);

	/* The account scope has no form. */
	a = arena_new(1024);
	q = xel_new(a, "query", NS_DISCO_INFO);
	disco_fill_info(q, DISCO_ACCOUNT);
	CHECK(xel_child(q, "x", NS_XDATA) == NULL);
	CHECK_STR(xel_attr(xel_child(q, "identity", NULL), "category"),
	    "account");
	CHECK(xel_attr(xel_child(q, "identity", NULL), "name") == NULL);
	arena_free(a);

	/* Adding invalidates the cached ver; reset empties everything. */
	ver = strdup(disco_caps_ver());
	disco_add_feature(DISCO_SERVER, "jabber:iq:version");
	CHECK(strcmp(ver, disco_caps_ver()) != 0);
	free(ver);
	disco_reset();
	a = arena_new(256);
	q = xel_new(a, "query", NS_DISCO_INFO);
	disco_fill_info(q, DISCO_SERVER);
	CHECK(xel_first_elem(q) == NULL);
	arena_free(a);
	disco_reset();
}

/* The entries of the query of scope, as "f:var", "i:category/type" and
 * "v:field=value" joined by spaces. */
static char *
entries(enum disco_scope scope)
{
	struct arena *a = arena_new(1024);
	struct xel *q = xel_new(a, "query", NS_DISCO_INFO), *c, *f, *v;
	struct buf b = BUF_INIT;
	char *out;

	disco_fill_info(q, scope);
	for (c = xel_first_elem(q); c; c = xel_next(c, NULL, NULL)) {
		if (xel_is(c, "feature", NS_DISCO_INFO))
			buf_printf(&b, "f:%s ", xel_attr(c, "var"));
		else if (xel_is(c, "identity", NS_DISCO_INFO))
			buf_printf(&b, "i:%s/%s ", xel_attr(c, "category"),
			    xel_attr(c, "type"));
		else if (xel_is(c, "x", NS_XDATA))
			for (f = xel_child(c, "field", NS_XDATA); f;
			     f = xel_next(f, "field", NS_XDATA))
				for (v = xel_child(f, "value", NS_XDATA); v;
				     v = xel_next(v, "value", NS_XDATA))
					if (strcmp(xel_attr(f, "var"),
					    "FORM_TYPE") != 0)
						buf_printf(&b, "v:%s=%s ",
						    xel_attr(f, "var"),
						    xel_text(v));
	}
	out = buf_strdup(&b);
	buf_free(&b);
	arena_free(a);
	return out;
}

static void
test_remove_owner(void)
{
	char *ver, *e;

	disco_reset();
	hook_set_owner(0);
	disco_add_identity(DISCO_SERVER, "server", "im", "xmppd");
	disco_add_feature(DISCO_SERVER, NS_DISCO_INFO);
	disco_add_server_info("abuse-addresses", "mailto:a@localhost");
	hook_set_owner(1);
	disco_add_feature(DISCO_SERVER, "urn:xmpp:ping");
	disco_add_feature(DISCO_SERVER, NS_DISCO_INFO);  /* owner 0's */
	disco_add_feature(DISCO_ACCOUNT, "urn:xmpp:mam:2");
	disco_add_identity(DISCO_SERVER, "pubsub", "pep", NULL);
	disco_add_server_info("abuse-addresses", "xmpp:a@localhost");
	disco_add_server_info("admin-addresses", "xmpp:admin@localhost");
	hook_set_owner(HOOK_OWNER_CORE);
	ver = strdup(disco_caps_ver());
	e = entries(DISCO_SERVER);
	CHECK_STR(e, "i:pubsub/pep i:server/im f:" NS_DISCO_INFO " "
	    "f:urn:xmpp:ping v:abuse-addresses=mailto:a@localhost "
	    "v:abuse-addresses=xmpp:a@localhost "
	    "v:admin-addresses=xmpp:admin@localhost ");
	free(e);
	disco_remove_owner(1);
	e = entries(DISCO_SERVER);
	CHECK_STR(e, "i:server/im f:" NS_DISCO_INFO " "
	    "v:abuse-addresses=mailto:a@localhost ");
	free(e);
	e = entries(DISCO_ACCOUNT);
	CHECK_STR(e, "");
	free(e);
	CHECK(strcmp(ver, disco_caps_ver()) != 0);
	free(ver);
	disco_remove_owner(0);
	e = entries(DISCO_SERVER);
	CHECK_STR(e, "");
	free(e);
	disco_reset();
}

int
main(void)
{
	test_examples();
	test_processing_rules();
	test_registry();
	test_remove_owner();
	return UNIT_DONE("caps");
}
