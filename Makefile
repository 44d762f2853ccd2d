# sluice - the only build entry.
#   make            build/sluiced, build/sluicectl and the eBPF skeletons
#   make check      build and run every test (tests/run.sh); one test: make check T=path
#   make SAN=1      the same with ASan + UBSan
#   make demo       the end-to-end demo (scripts/demo.sh)
#   make bench      benchmarks (scripts/bench.sh)
#   make fuzz       bounded libFuzzer runs of the parsers
#   make install    install binaries to $(PREFIX)/bin

CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
PREFIX   ?= /usr/local
B        := build

ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
PKGS     := libbpf liburing jansson libjwt openssl libnl-3.0 libnl-genl-3.0 libnl-route-3.0 zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter \
            -fno-strict-aliasing -D_GNU_SOURCE -Iinclude -I$(B) $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS) -lpthread
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(B)/bpf/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(B)/%.skel.h,$(BPF_SRCS))
MAINS     := userspace/sluiced.c userspace/sluicectl.c
LIB_SRCS  := $(filter-out $(MAINS),$(wildcard userspace/*.c))
LIB_OBJS  := $(patsubst userspace/%.c,$(B)/obj/%.o,$(LIB_SRCS))
UNIT_SRCS := $(wildcard tests/unit/*.c)
UNITS     := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRCS))
FUZZERS   := $(patsubst tests/fuzz/%_fuzz.c,%,$(wildcard tests/fuzz/*_fuzz.c))
REPLAYS   := $(patsubst %,$(B)/tests/unit/replay-%,$(FUZZERS))
FUZZ_SECONDS ?= 60

.PHONY: all check demo bench fuzz install clean
.SECONDARY: $(BPF_OBJS) $(SKELS)
all: $(B)/sluiced $(B)/sluicectl

# --- eBPF: vmlinux.h from the running kernel's BTF, objects, skeletons ----------------------
$(B)/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(B)/bpf/%.bpf.o: bpf/%.bpf.c include/sluice-bpf.h $(B)/vmlinux.h
	@mkdir -p $(@D)
	$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Wall -Werror -Iinclude -I$(B) -c $< -o $@

$(B)/%.skel.h: $(B)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

# --- userspace ------------------------------------------------------------------------------
$(B)/obj/%.o: userspace/%.c | $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libsluice.a: $(LIB_OBJS)
	$(AR) rcs $@ $^

$(B)/sluiced: $(B)/obj/sluiced.o $(B)/libsluice.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/sluicectl: $(B)/obj/sluicectl.o $(B)/libsluice.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- tests ----------------------------------------------------------------------------------
$(B)/tests/unit/%: tests/unit/%.c $(B)/libsluice.a tests/lib/tap.h | $(SKELS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Iuserspace -Itests/lib -MMD -MP $(LDFLAGS) -o $@ $< $(B)/libsluice.a $(LDLIBS)

# Each fuzz driver also runs over its corpus in make check, without libFuzzer.
$(B)/tests/unit/replay-%: tests/fuzz/%_fuzz.c tests/fuzz/replay.c $(B)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DCORPUS='"tests/fuzz/corpus/$*"' $(LDFLAGS) -o $@ tests/fuzz/$*_fuzz.c \
		tests/fuzz/replay.c $(B)/libsluice.a $(LDLIBS)

# Bounded libFuzzer runs (clang, ASan+UBSan) of every driver, growing build/fuzz/corpus-NAME.
fuzz: $(SKELS)
	@mkdir -p $(B)/fuzz
	@for f in $(FUZZERS); do \
	  $(CLANG) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Iinclude -I$(B) \
	    $(PKG_CFLAGS) tests/fuzz/$${f}_fuzz.c $(LIB_SRCS) -o $(B)/fuzz/$$f $(PKG_LIBS) -lpthread || exit 1; \
	  mkdir -p $(B)/fuzz/corpus-$$f; \
	  $(B)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/corpus-$$f tests/fuzz/corpus/$$f || exit 1; \
	done

check: all $(UNITS) $(REPLAYS)
	@tests/run.sh $(T)

demo:
	scripts/install-deps.sh && $(MAKE) all && scripts/demo.sh

$(B)/bench/gaterate: tests/bench/gaterate.c $(B)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libsluice.a $(LDLIBS)

bench: all $(B)/bench/gaterate
	$(B)/bench/gaterate | tee $(B)/bench-gate.txt
	scripts/bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(B)/sluiced $(B)/sluicectl $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf $(B)

-include $(wildcard $(B)/obj/*.d $(B)/tests/unit/*.d)
