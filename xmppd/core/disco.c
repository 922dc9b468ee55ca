/*
 * The service discovery registry (XEP-0030): the identities and features of
 * the server and of user accounts, and the server's XEP-0128 serverinfo
 * form (XEP-0157), as the modules register them at start-up; and the
 * XEP-0115 verification string computed over a disco#info result.  Pure
 * data: no daemon state, so the unit test links this file (and hooks.c,
 * for the owner of what is registered) alone.  An entry belongs to the
 * module that added it first (hooks.h), and goes with that module.
 */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "scram.h"
#include "xmalloc.h"
#include "xml.h"

#define SERVERINFO_FORM "http://jabber.org/network/serverinfo"

struct identity {
	char *category, *type, *name;
	unsigned owner;
};

struct scope {
	char **features;          /* sorted, unique */
	unsigned *owners;         /* of each feature */
	size_t nfeatures;
	struct identity *ids;     /* sorted, unique */
	size_t nids;
};

struct info_field {
	char *var;
	char **values;
	unsigned *owners;         /* of each value */
	size_t nvalues;
};

static struct scope scopes[2];
static struct info_field *fields;  /* serverinfo form, in added order */
static size_t nfields;
static char *caps_ver;             /* cache for disco_caps_ver() */

static void
forget_ver(void)
{
	free(caps_ver);
	caps_ver = NULL;
}

static int
null_cmp(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int
identity_cmp(const struct identity *a, const struct identity *b)
{
	int c;

	if ((c = strcmp(a->category, b->category)) != 0 ||
	    (c = strcmp(a->type, b->type)) != 0)
		return c;
	return null_cmp(a->name, b->name);
}

void
disco_add_feature(enum disco_scope scope, const char *var)
{
	struct scope *sc = &scopes[scope];
	size_t i;
	int c = 1;

	for (i = 0; i < sc->nfeatures; i++)
		if ((c = strcmp(sc->features[i], var)) >= 0)
			break;
	if (i < sc->nfeatures && c == 0)
		return;
	sc->features = xreallocarray(sc->features, sc->nfeatures + 1,
	    sizeof(*sc->features));
	sc->owners = xreallocarray(sc->owners, sc->nfeatures + 1,
	    sizeof(*sc->owners));
	memmove(sc->features + i + 1, sc->features + i,
	    (sc->nfeatures - i) * sizeof(*sc->features));
	memmove(sc->owners + i + 1, sc->owners + i,
	    (sc->nfeatures - i) * sizeof(*sc->owners));
	sc->features[i] = xstrdup(var);
	sc->owners[i] = hook_owner();
	sc->nfeatures++;
	forget_ver();
}

void
disco_add_identity(enum disco_scope scope, const char *category,
    const char *type, const char *name)
{
	struct scope *sc = &scopes[scope];
	struct identity id = { (char *)category, (char *)type, (char *)name, 0 };
	size_t i;
	int c = 1;

	for (i = 0; i < sc->nids; i++)
		if ((c = identity_cmp(&sc->ids[i], &id)) >= 0)
			break;
	if (i < sc->nids && c == 0)
		return;
	sc->ids = xreallocarray(sc->ids, sc->nids + 1, sizeof(*sc->ids));
	memmove(sc->ids + i + 1, sc->ids + i,
	    (sc->nids - i) * sizeof(*sc->ids));
	sc->ids[i].category = xstrdup(category);
	sc->ids[i].type = xstrdup(type);
	sc->ids[i].name = name ? xstrdup(name) : NULL;
	sc->ids[i].owner = hook_owner();
	sc->nids++;
	forget_ver();
}

void
disco_add_server_info(const char *var, const char *value)
{
	struct info_field *f = NULL;

	for (size_t i = 0; i < nfields; i++)
		if (strcmp(fields[i].var, var) == 0)
			f = &fields[i];
	if (f == NULL) {
		fields = xreallocarray(fields, nfields + 1, sizeof(*fields));
		f = &fields[nfields++];
		memset(f, 0, sizeof(*f));
		f->var = xstrdup(var);
	}
	f->values = xreallocarray(f->values, f->nvalues + 1,
	    sizeof(*f->values));
	f->owners = xreallocarray(f->owners, f->nvalues + 1,
	    sizeof(*f->owners));
	f->owners[f->nvalues] = hook_owner();
	f->values[f->nvalues++] = xstrdup(value);
	forget_ver();
}

/* XEP-0128 §3 / XEP-0157 §2: one result form with a hidden FORM_TYPE. */
static void
fill_server_info(struct xel *query)
{
	struct xel *x, *f;

	x = xel_add(query, "x", NS_XDATA);
	xel_set_attr(x, "type", "result");
	f = xel_add(x, "field", NULL);
	xel_set_attr(f, "var", "FORM_TYPE");
	xel_set_attr(f, "type", "hidden");
	xel_text_set(xel_add(f, "value", NULL), SERVERINFO_FORM);
	for (size_t i = 0; i < nfields; i++) {
		f = xel_add(x, "field", NULL);
		xel_set_attr(f, "var", fields[i].var);
		for (size_t j = 0; j < fields[i].nvalues; j++)
			xel_text_set(xel_add(f, "value", NULL),
			    fields[i].values[j]);
	}
}

void
disco_fill_info(struct xel *query, enum disco_scope scope)
{
	const struct scope *sc = &scopes[scope];

	for (size_t i = 0; i < sc->nids; i++) {
		struct xel *id = xel_add(query, "identity", NS_DISCO_INFO);

		xel_set_attr(id, "category", sc->ids[i].category);
		xel_set_attr(id, "type", sc->ids[i].type);
		if (sc->ids[i].name)
			xel_set_attr(id, "name", sc->ids[i].name);
	}
	for (size_t i = 0; i < sc->nfeatures; i++)
		xel_set_attr(xel_add(query, "feature", NS_DISCO_INFO), "var",
		    sc->features[i]);
	if (scope == DISCO_SERVER && nfields > 0)
		fill_server_info(query);
}

const char *
disco_caps_ver(void)
{
	struct arena *a;
	struct xel *q;

	if (caps_ver == NULL) {
		a = arena_new(2048);
		q = xel_new(a, "query", NS_DISCO_INFO);
		disco_fill_info(q, DISCO_SERVER);
		caps_ver = disco_caps_hash(q);
		arena_free(a);
		if (caps_ver == NULL)     /* our own registry is never ill-formed */
			caps_ver = xstrdup("");
	}
	return caps_ver;
}

/* The XEP-0115 §5.1 verification string. */

struct caps_identity {
	const char *category, *type, *lang, *name;
};

struct caps_form {
	const char *form_type;
	const struct xel *x;
};

static int
caps_identity_cmp(const void *pa, const void *pb)
{
	const struct caps_identity *a = pa, *b = pb;
	int c;

	/* §5.1 step 2: by category, then type, then xml:lang, then name
	 * ("i;octet" collation, RFC 4790 §9.3, is strcmp on UTF-8). */
	if ((c = strcmp(a->category, b->category)) != 0 ||
	    (c = strcmp(a->type, b->type)) != 0 ||
	    (c = strcmp(a->lang, b->lang)) != 0)
		return c;
	return strcmp(a->name, b->name);
}

static int
str_cmp(const void *pa, const void *pb)
{
	return strcmp(*(const char *const *)pa, *(const char *const *)pb);
}

static int
form_cmp(const void *pa, const void *pb)
{
	return strcmp(((const struct caps_form *)pa)->form_type,
	    ((const struct caps_form *)pb)->form_type);
}

static const char *
attr_or_empty(const struct xel *el, const char *name)
{
	const char *v = xel_attr(el, name);

	return v ? v : "";
}

static int
field_cmp(const void *pa, const void *pb)
{
	return strcmp(attr_or_empty(*(const struct xel *const *)pa, "var"),
	    attr_or_empty(*(const struct xel *const *)pb, "var"));
}

/*
 * The FORM_TYPE of a form: 1 and *type set for a usable form, 0 to ignore
 * it (§5.4 step 3.6: no FORM_TYPE field, or not hidden), -1 if ill-formed
 * (step 3.5: values with different character data).
 */
static int
form_type(const struct xel *x, const char **type)
{
	const struct xel *f, *v;

	for (f = xel_child(x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA))
		if (strcmp(attr_or_empty(f, "var"), "FORM_TYPE") == 0)
			break;
	if (f == NULL || strcmp(attr_or_empty(f, "type"), "hidden") != 0)
		return 0;
	*type = NULL;
	for (v = xel_child(f, "value", NS_XDATA); v;
	    v = xel_next(v, "value", NS_XDATA)) {
		const char *t = xel_text(v);

		if (*type != NULL && strcmp(*type, t) != 0)
			return -1;
		*type = t;
	}
	if (*type == NULL)
		return 0;
	return 1;
}

/* §5.1 step 6: one form, fields by var, values sorted. */
static void
add_form(struct buf *s, const struct caps_form *form)
{
	const struct xel **fv = NULL, *f, *v;
	const char **vv = NULL;
	size_t nf = 0, nv;

	buf_adds(s, form->form_type);
	buf_addc(s, '<');
	for (f = xel_child(form->x, "field", NS_XDATA); f;
	    f = xel_next(f, "field", NS_XDATA)) {
		if (strcmp(attr_or_empty(f, "var"), "FORM_TYPE") == 0)
			continue;
		fv = xreallocarray(fv, nf + 1, sizeof(*fv));
		fv[nf++] = f;
	}
	if (nf > 0)
		qsort(fv, nf, sizeof(*fv), field_cmp);
	for (size_t i = 0; i < nf; i++) {
		buf_adds(s, attr_or_empty(fv[i], "var"));
		buf_addc(s, '<');
		nv = 0;
		for (v = xel_child(fv[i], "value", NS_XDATA); v;
		    v = xel_next(v, "value", NS_XDATA)) {
			vv = xreallocarray(vv, nv + 1, sizeof(*vv));
			vv[nv++] = xel_text(v);
		}
		if (nv > 0)
			qsort(vv, nv, sizeof(*vv), str_cmp);
		for (size_t j = 0; j < nv; j++) {
			buf_adds(s, vv[j]);
			buf_addc(s, '<');
		}
	}
	free(fv);
	free(vv);
}

/*
 * Appends S (§5.1 steps 1-6) for query to s; -1 if ill-formed (§5.4
 * steps 3.3-3.5).
 */
static int
verification_string(const struct xel *query, struct buf *s)
{
	struct caps_identity *ids = NULL;
	const char **features = NULL;
	struct caps_form *forms = NULL;
	size_t nids = 0, nfeat = 0, nforms = 0;
	const struct xel *c;
	int ret = -1, r;

	for (c = xel_first_elem(query); c; c = xel_next(c, NULL, NULL)) {
		if (xel_is(c, "identity", NS_DISCO_INFO)) {
			const char *lang = xel_attr_ns(c, NS_XML, "lang");

			ids = xreallocarray(ids, nids + 1, sizeof(*ids));
			ids[nids].category = attr_or_empty(c, "category");
			ids[nids].type = attr_or_empty(c, "type");
			ids[nids].lang = lang ? lang : "";
			ids[nids].name = attr_or_empty(c, "name");
			nids++;
		} else if (xel_is(c, "feature", NS_DISCO_INFO)) {
			features = xreallocarray(features, nfeat + 1,
			    sizeof(*features));
			features[nfeat++] = attr_or_empty(c, "var");
		} else if (xel_is(c, "x", NS_XDATA)) {
			const char *type;

			if ((r = form_type(c, &type)) < 0)
				goto out;
			if (r == 0)
				continue;
			forms = xreallocarray(forms, nforms + 1,
			    sizeof(*forms));
			forms[nforms].form_type = type;
			forms[nforms].x = c;
			nforms++;
		}
	}
	if (nids > 0)
		qsort(ids, nids, sizeof(*ids), caps_identity_cmp);
	if (nfeat > 0)
		qsort(features, nfeat, sizeof(*features), str_cmp);
	if (nforms > 0)
		qsort(forms, nforms, sizeof(*forms), form_cmp);
	/* Sorted, so duplicates are neighbours. */
	for (size_t i = 1; i < nids; i++)
		if (caps_identity_cmp(&ids[i - 1], &ids[i]) == 0)
			goto out;
	for (size_t i = 1; i < nfeat; i++)
		if (strcmp(features[i - 1], features[i]) == 0)
			goto out;
	for (size_t i = 1; i < nforms; i++)
		if (strcmp(forms[i - 1].form_type, forms[i].form_type) == 0)
			goto out;
	for (size_t i = 0; i < nids; i++)
		buf_printf(s, "%s/%s/%s/%s<", ids[i].category, ids[i].type,
		    ids[i].lang, ids[i].name);
	for (size_t i = 0; i < nfeat; i++) {
		buf_adds(s, features[i]);
		buf_addc(s, '<');
	}
	for (size_t i = 0; i < nforms; i++)
		add_form(s, &forms[i]);
	ret = 0;
out:
	free(ids);
	free(features);
	free(forms);
	return ret;
}

char *
disco_caps_hash(const struct xel *query)
{
	struct buf s;
	unsigned char md[20];
	char *ver = NULL;

	buf_init(&s);
	if (verification_string(query, &s) == 0) {
		/* §5.1 step 7-8: SHA-1 over the UTF-8 octets, base64. */
		scram_h(SCRAM_SHA1, buf_head(&s), buf_avail(&s), md);
		ver = base64_encode_alloc(md, sizeof(md));
	}
	buf_free(&s);
	return ver;
}

void
disco_reset(void)
{
	for (size_t i = 0; i < nitems(scopes); i++) {
		struct scope *sc = &scopes[i];

		for (size_t j = 0; j < sc->nfeatures; j++)
			free(sc->features[j]);
		free(sc->features);
		free(sc->owners);
		for (size_t j = 0; j < sc->nids; j++) {
			free(sc->ids[j].category);
			free(sc->ids[j].type);
			free(sc->ids[j].name);
		}
		free(sc->ids);
		memset(sc, 0, sizeof(*sc));
	}
	for (size_t i = 0; i < nfields; i++) {
		for (size_t j = 0; j < fields[i].nvalues; j++)
			free(fields[i].values[j]);
		free(fields[i].values);
		free(fields[i].owners);
		free(fields[i].var);
	}
	free(fields);
	fields = NULL;
	nfields = 0;
	forget_ver();
}

void
disco_remove_owner(unsigned owner)
{
	size_t k, n;

	for (size_t i = 0; i < nitems(scopes); i++) {
		struct scope *sc = &scopes[i];

		for (k = 0, n = 0; n < sc->nfeatures; n++)
			if (sc->owners[n] == owner)
				free(sc->features[n]);
			else {
				sc->owners[k] = sc->owners[n];
				sc->features[k++] = sc->features[n];
			}
		sc->nfeatures = k;
		for (k = 0, n = 0; n < sc->nids; n++)
			if (sc->ids[n].owner == owner) {
				free(sc->ids[n].category);
				free(sc->ids[n].type);
				free(sc->ids[n].name);
			} else
				sc->ids[k++] = sc->ids[n];
		sc->nids = k;
	}
	for (size_t i = 0; i < nfields; i++) {
		struct info_field *f = &fields[i];

		for (k = 0, n = 0; n < f->nvalues; n++)
			if (f->owners[n] == owner)
				free(f->values[n]);
			else {
				f->owners[k] = f->owners[n];
				f->values[k++] = f->values[n];
			}
		f->nvalues = k;
	}
	/* A field left without values goes (its var with it). */
	for (k = 0, n = 0; n < nfields; n++)
		if (fields[n].nvalues == 0) {
			free(fields[n].values);
			free(fields[n].owners);
			free(fields[n].var);
		} else
			fields[k++] = fields[n];
	nfields = k;
	forget_ver();
}
