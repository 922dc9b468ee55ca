# xmppd — one GNU Makefile for the daemon, the admin tools and the tests.
#
#   make            build xmppd, xmppctl, xmpptop into $(BUILD)/
#   make run        deps + build + var/ (certificate, database) + run xmppd
#   make test       deps + build + unit, protocol and short fuzz tests
#   make asan       the same tests under ASan + UBSan (in build-asan/)
#   make fuzz       build the libFuzzer targets (clang) in build-fuzz/
#   make bench      benchmark: idle-session memory and login rate
#   make bench-peers the bench scenarios side by side with Prosody and
#                   ejabberd (installs them from Debian when run as root)
#   make install    PREFIX=/usr/local DESTDIR=
#   make style      clang-format the sources
#   make lint       the layer check, cppcheck and clang-tidy (.clang-tidy);
#                   make -j8 lint
#   make deps       install missing Debian packages (root) or print how

BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
SAN      ?=

# pkg-config name -> Debian package.  Everything that depends on installed
# packages is read when this file is parsed, so "run" and "test" install
# the packages first (deps) and then build in a sub-make that reads them
# anew; a package still missing stops the build with its name (check-deps).
PKGS     := expat sqlite3 openssl libidn libcares
DEB_libcares := libc-ares-dev
DEB_expat   := libexpat1-dev
DEB_sqlite3 := libsqlite3-dev
DEB_openssl := libssl-dev
DEB_libidn  := libidn-dev
PKG_MISSING := $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(p) \
	2>/dev/null && echo y),,$(DEB_$(p))))
# libev has no .pc file in every Debian release: look for its header.
LIBEV_MISSING := $(if $(wildcard /usr/include/ev.h /usr/local/include/ev.h),,libev-dev)
# Neither has http-parser (the HTTP layer's request parser, net/http.c).
HTTP_PARSER_MISSING := $(if $(wildcard /usr/include/http_parser.h \
	/usr/local/include/http_parser.h),,libhttp-parser-dev)
CURSES_MISSING := $(if $(shell pkg-config --exists ncursesw 2>/dev/null \
	&& echo y),,libncurses-dev)
LIBEV_CFLAGS := $(shell pkg-config --cflags libev 2>/dev/null)
LIBEV_LIBS   := $(shell pkg-config --libs libev 2>/dev/null || echo -lev)
PKG_CFLAGS   := $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(LIBEV_CFLAGS)
PKG_LIBS     := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(LIBEV_LIBS)
HTTP_PARSER_LIBS := -lhttp_parser
CURSES_CFLAGS := $(shell pkg-config --cflags ncursesw 2>/dev/null)
CURSES_LIBS   := $(shell pkg-config --libs ncursesw 2>/dev/null || echo -lncursesw)

VERSION  := 0.1.0
CFLAGS   ?= -O2 -g
# Fixed flags live apart from CFLAGS so "make CFLAGS=..." keeps them.
XCFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
	    -Wno-unused-parameter -fno-strict-aliasing \
	    -fstack-protector-strong -fPIE
# Hardening: fortified libc calls (needs optimisation), PIE, full RELRO.
HARDEN_CPPFLAGS := $(if $(findstring -O0,$(CFLAGS)),,-D_FORTIFY_SOURCE=2)
HARDEN_LDFLAGS  := -pie -Wl,-z,relro,-z,now
CPPFLAGS += -Ishared -Ixmppd -DXMPPD_VERSION='"$(VERSION)"' \
	    -DSYSCONFDIR='"$(PREFIX)/etc/xmppd"' $(PKG_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread

SHARED_SRC := $(wildcard shared/*.c)
XMPPD_SRC  := $(filter-out xmppd/xmppd.c,$(wildcard xmppd/*.c xmppd/*/*.c))
XMPPCTL_SRC := $(wildcard xmppctl/*.c)
XMPPTOP_SRC := $(wildcard xmpptop/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard tests/bench/*.c)

OBJ        := $(BUILD)/obj
SHARED_OBJ := $(SHARED_SRC:%.c=$(OBJ)/%.o)
XMPPD_OBJ  := $(XMPPD_SRC:%.c=$(OBJ)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)

PROGS := $(BUILD)/xmppd $(BUILD)/xmppctl
ifneq ($(XMPPTOP_SRC),)
PROGS += $(BUILD)/xmpptop
endif

.PHONY: all run run-installed test test-installed asan fuzz bench bench-s2s \
	bench-peers install style clean deps check-deps unit var
.DEFAULT_GOAL := all
# Keep intermediate objects (unit-test .o files) between runs.
.SECONDARY:

all: $(PROGS)

$(OBJ)/%.o: %.c | check-deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(HARDEN_CPPFLAGS) $(XCFLAGS) $(CFLAGS) $(SAN) -MMD -MP -c -o $@ $<

$(BUILD)/libshared.a: $(SHARED_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libxmppd.a: $(XMPPD_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/xmppd: $(OBJ)/xmppd/xmppd.o $(BUILD)/libxmppd.a $(BUILD)/libshared.a
	$(CC) $(LDFLAGS) $(HARDEN_LDFLAGS) $(SAN) -o $@ $^ $(LDLIBS) $(HTTP_PARSER_LIBS)

$(BUILD)/xmppctl: $(XMPPCTL_SRC:%.c=$(OBJ)/%.o) $(BUILD)/libshared.a
	$(CC) $(LDFLAGS) $(HARDEN_LDFLAGS) $(SAN) -o $@ $^ $(LDLIBS) -lresolv

$(BUILD)/xmpptop: $(XMPPTOP_SRC:%.c=$(OBJ)/%.o) $(BUILD)/libshared.a
	$(CC) $(LDFLAGS) $(HARDEN_LDFLAGS) $(SAN) -o $@ $^ $(CURSES_LIBS) $(LDLIBS)

$(OBJ)/xmpptop/%.o: CPPFLAGS += $(CURSES_CFLAGS)

# Unit tests link libshared.a plus the daemon objects they name here.
$(BUILD)/tests/unit/%: $(OBJ)/tests/unit/%.o $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(HARDEN_LDFLAGS) $(SAN) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)
$(BUILD)/tests/unit/test_conf: $(OBJ)/xmppd/conf.o
$(BUILD)/tests/unit/test_http_parse: $(OBJ)/xmppd/net/http_parse.o
$(BUILD)/tests/unit/test_http_parse: LDLIBS += $(HTTP_PARSER_LIBS)
$(BUILD)/tests/unit/test_http: $(OBJ)/xmppd/net/http.o \
    $(OBJ)/xmppd/net/http_parse.o $(OBJ)/xmppd/net/conn.o \
    $(OBJ)/xmppd/net/tls.o $(OBJ)/xmppd/conf.o
$(BUILD)/tests/unit/test_http: LDLIBS += $(HTTP_PARSER_LIBS)
$(BUILD)/tests/unit/test_websocket: $(OBJ)/xmppd/net/websocket_frame.o
$(BUILD)/tests/unit/test_dns_msg: $(OBJ)/xmppd/net/dns_msg.o
$(BUILD)/tests/unit/test_dns: $(OBJ)/xmppd/net/dns.o $(OBJ)/xmppd/net/dns_msg.o
$(BUILD)/tests/unit/test_dialback: $(OBJ)/xmppd/stream/dialback.o
$(BUILD)/tests/unit/test_socks5: $(OBJ)/xmppd/net/socks5.o
$(BUILD)/tests/unit/test_store: $(OBJ)/xmppd/store/store_sqlite.o \
    $(OBJ)/xmppd/work.o $(OBJ)/xmppd/store/mam_archive.o
$(BUILD)/tests/unit/test_pep_store: $(OBJ)/xmppd/store/store_sqlite.o $(OBJ)/xmppd/work.o $(OBJ)/xmppd/store/pep_store.o
$(BUILD)/tests/unit/test_muc_store: $(OBJ)/xmppd/store/store_sqlite.o $(OBJ)/xmppd/work.o $(OBJ)/xmppd/store/muc_store.o
$(BUILD)/tests/unit/test_upload_store: $(OBJ)/xmppd/store/store_sqlite.o $(OBJ)/xmppd/work.o $(OBJ)/xmppd/store/upload_store.o
$(BUILD)/tests/unit/test_push_store: $(OBJ)/xmppd/store/store_sqlite.o $(OBJ)/xmppd/work.o $(OBJ)/xmppd/store/push_store.o
$(BUILD)/tests/unit/test_subscription: $(OBJ)/xmppd/core/subscription.o
$(BUILD)/tests/unit/test_caps: $(OBJ)/xmppd/core/disco.o $(OBJ)/xmppd/core/hooks.o
$(BUILD)/tests/unit/test_mod_caps: $(OBJ)/xmppd/core/disco.o \
    $(OBJ)/xmppd/core/hooks.o
$(BUILD)/tests/unit/test_extdisco: $(OBJ)/xmppd/core/stanza.o \
    $(OBJ)/xmppd/conf.o
$(BUILD)/tests/unit/test_session: $(OBJ)/xmppd/core/session.o \
    $(OBJ)/xmppd/core/sm.o $(OBJ)/xmppd/core/hooks.o \
    $(OBJ)/xmppd/core/stanza.o

$(BUILD)/tests/bench/xmppbench: $(BENCH_SRC:%.c=$(OBJ)/%.o) $(BUILD)/libshared.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(HARDEN_LDFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN)

# Dependencies: Debian packages needed to build, run and test.
DEB_BUILD := gcc make pkg-config libev-dev libexpat1-dev libsqlite3-dev \
	libssl-dev libncurses-dev libidn-dev libhttp-parser-dev libc-ares-dev \
	openssl
DEB_TEST  := python3 python3-pytest python3-slixmpp clang libclang-rt-14-dev \
	profanity tmux poezio fail2ban libfaketime iproute2 \
	python3-prometheus-client python3-aiohttp biboumi ngircd dnsmasq-base
deps:
	@sh tests/deps.sh $(DEB_BUILD) $(DEB_TEST)

# The embedded default configuration expects var/ with a certificate for
# localhost; xmppd creates the database itself on first start.
var: $(BUILD)/xmppd
	@mkdir -p var
	@if [ ! -f var/localhost.crt ]; then \
	  echo "creating self-signed certificate var/localhost.crt"; \
	  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -days 3650 -subj /CN=localhost \
	    -addext subjectAltName=DNS:localhost \
	    -keyout var/localhost.key -out var/localhost.crt 2>/dev/null; \
	  chmod 600 var/localhost.key; fi

# The two commands of the README: install what is missing, then build and
# go on in a sub-make, which reads the pkg-config flags of what deps has
# just installed (this make read them before it ran).
run: deps
	@$(MAKE) --no-print-directory run-installed
# var/xmppd.conf, when there is one, replaces the embedded default.
run-installed: all var
	exec $(BUILD)/xmppd -d $(if $(wildcard var/xmppd.conf),-f var/xmppd.conf)

test: deps
	@$(MAKE) --no-print-directory test-installed
test-installed: all unit
	@BUILD=$(BUILD) sh tests/run.sh

# A library still missing (deps was not run, or could not install it as a
# non-root user): say which package, before the compiler says worse.
check-deps:
	@missing="$(strip $(PKG_MISSING) $(LIBEV_MISSING) $(HTTP_PARSER_MISSING) \
	  $(CURSES_MISSING))"; \
	if [ -n "$$missing" ]; then \
	  echo "xmppd: missing Debian packages: $$missing" >&2; \
	  echo "  install them with:  apt-get install $$missing" >&2; \
	  echo "  (or run 'make run' / 'make test' as root, which does)" >&2; \
	  exit 1; fi

asan:
	$(MAKE) BUILD=build-asan SAN="-fsanitize=address,undefined \
	  -fno-omit-frame-pointer -fno-sanitize-recover=undefined" CFLAGS="-O1 -g" test

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang CFLAGS="-O1 -g" \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined" \
	  $(FUZZ_SRC:tests/fuzz/%.c=build-fuzz/tests/fuzz/%)

build-fuzz/tests/fuzz/%: build-fuzz/obj/tests/fuzz/%.o build-fuzz/libshared.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $(SAN) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(filter %.a,$^) $(LDLIBS)
build-fuzz/tests/fuzz/fuzz_conf: build-fuzz/obj/xmppd/conf.o
build-fuzz/tests/fuzz/fuzz_http: build-fuzz/obj/xmppd/net/http_parse.o
build-fuzz/tests/fuzz/fuzz_http: LDLIBS += $(HTTP_PARSER_LIBS)
build-fuzz/tests/fuzz/fuzz_websocket: build-fuzz/obj/xmppd/net/websocket_frame.o
build-fuzz/tests/fuzz/fuzz_dns: build-fuzz/obj/xmppd/net/dns_msg.o
build-fuzz/tests/fuzz/fuzz_socks5: build-fuzz/obj/xmppd/net/socks5.o
# The stream and all above it, without the socket layer (the target has
# its own), the HTTP halves of modules (web/: routes only start-up adds),
# the BOSH carrier (HTTP requests, from a route start-up adds), the
# server-to-server streams (outgoing connections, DNS) and the control
# plane.
build-fuzz/tests/fuzz/fuzz_c2s: $(filter-out build-fuzz/obj/xmppd/net/% \
    build-fuzz/obj/xmppd/web/% build-fuzz/obj/xmppd/control/% \
    build-fuzz/obj/xmppd/stream/bosh.o build-fuzz/obj/xmppd/stream/s2s.o, \
    $(XMPPD_SRC:%.c=build-fuzz/obj/%.o))

bench: all $(BUILD)/tests/bench/xmppbench
	@BUILD=$(BUILD) sh tests/bench/run.sh

# Server-to-server alone: chat across two daemons, outgoing streams.
bench-s2s: all $(BUILD)/tests/bench/xmppbench
	@BUILD=$(BUILD) BENCH_S2S=only sh tests/bench/run.sh

# xmppd, Prosody and ejabberd side by side (tests/bench/README.md).
bench-peers: all $(BUILD)/tests/bench/xmppbench
	@BUILD=$(BUILD) sh tests/bench/peers.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/xmppd $(DESTDIR)$(PREFIX)/sbin/xmppd
	install -m 755 $(BUILD)/xmppctl $(DESTDIR)$(PREFIX)/sbin/xmppctl
	if [ -f $(BUILD)/xmpptop ]; then install -m 755 $(BUILD)/xmpptop \
	  $(DESTDIR)$(PREFIX)/bin/xmpptop; fi
	install -m 644 man/xmppd.8 man/xmppctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 man/xmppd.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -d $(DESTDIR)$(PREFIX)/etc/xmppd
	install -m 644 xmppd/xmppd.conf.example \
	  $(DESTDIR)$(PREFIX)/etc/xmppd/xmppd.conf.example
	if [ -f man/xmpptop.1 ]; then install -m 644 man/xmpptop.1 \
	  $(DESTDIR)$(PREFIX)/share/man/man1/; fi

style:
	clang-format -i $(wildcard shared/*.[ch] xmppd/*.[ch] xmppd/*/*.[ch] xmppctl/*.[ch] \
	  xmpptop/*.[ch] tests/unit/*.[ch] tests/fuzz/*.[ch] tests/bench/*.[ch])

# Static analysis, not part of "make test" (it takes minutes; CI runs it
# after the tests): cppcheck, then clang-tidy with .clang-tidy on every C
# file of the three programs, shared/ and the load generator.  Any finding fails.  cppcheck is given the expat macro it
# cannot see without system headers, and these false positives:
#   getpwnamCalled, getgrnamCalled: non-reentrant lookups called once at
#   start-up, before any thread exists (xmppd.c target_user, control.c
#   control_init).
# TIDY_EXCEPT_<file> turns checks off for one file whose findings are
# known false positives (or reported, for their owners) until the file
# carries NOLINT comments of its own:
#   conf.c: the analyzer does not follow the variadic parse_error(), so
#     assumes a failed get_number() may leave its result unset; and it
#     takes line_reserve(n) with n = SIZE_MAX as possible.
#   mod_private.c: assumes j->items may be NULL with j->nitems > 0.
#   roster.c: the last sqlite3_step() result of a scan is not checked
#     (a storage error reads as "not found"); reported.
#   ctl.c: atoi() of the peer's protocol version; reported.
LINT_SRC := $(SHARED_SRC) $(wildcard xmppd/*.c xmppd/*/*.c) $(XMPPCTL_SRC) $(XMPPTOP_SRC) \
	$(BENCH_SRC)
CPPCHECK_FLAGS := --enable=warning,performance,portability --std=c11 \
	--library=posix -D_GNU_SOURCE '-DXMLPARSEAPI(type)=type' -Ishared \
	-Ixmppd --inline-suppr --quiet --error-exitcode=1 \
	--suppress=getpwnamCalled:xmppd/xmppd.c \
	--suppress=getgrnamCalled:xmppd/control/control.c
TIDY_CFLAGS := -std=c11 -D_GNU_SOURCE -Ishared -Ixmppd \
	-DXMPPD_VERSION='"$(VERSION)"' -DSYSCONFDIR='"$(PREFIX)/etc/xmppd"' \
	$(PKG_CFLAGS) $(CURSES_CFLAGS)
TIDY_EXCEPT_xmppd/conf.c := --checks=-clang-analyzer-core.NullDereference,-clang-analyzer-core.uninitialized.Assign
TIDY_EXCEPT_xmppd/mod/mod_private.c := --checks=-clang-analyzer-core.NullDereference

.PHONY: lint lint-tools lint-cppcheck lint-layers
lint: lint-layers lint-cppcheck $(LINT_SRC:%=lint-tidy/%)
	@echo "lint: layers, cppcheck and clang-tidy clean"

# Dependencies point down: net, store < core < stream, mod < control <
# start-up (tests/layers.sh says exactly what may include what).
lint-layers:
	@sh tests/layers.sh

lint-tools:
	@command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null || \
	  { echo "make lint needs cppcheck and clang-tidy:" \
	    "apt-get install cppcheck clang-tidy" >&2; exit 1; }

lint-cppcheck: lint-tools
	cppcheck $(CPPCHECK_FLAGS) $(LINT_SRC)

# (clang-tidy counts the warnings it hid in system headers on stderr.)
lint-tidy/%: lint-tools
	@echo "clang-tidy $*"
	@out=$$(clang-tidy --quiet $(TIDY_EXCEPT_$*) $* -- $(TIDY_CFLAGS) \
	  2>&1); rc=$$?; printf '%s\n' "$$out" | \
	  grep -v '^[0-9]* warnings\{0,1\} generated\.$$' | grep . ; exit $$rc

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
