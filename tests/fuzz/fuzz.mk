# tests/fuzz/fuzz.mk — libFuzzer harnesses for every reader (included by the Makefile).
#   make fuzz [FUZZ_SECONDS=60]   build with clang and fuzz each harness that long
#   make check-fuzz        CI: each harness ~3 s from its seeds, every regression reproducer
#                          replayed, then the readers' unit tests under ASan+UBSan
# libcore is compiled once more with clang -fsanitize=fuzzer-no-link,address,undefined into
# build-fuzz/; each tests/fuzz/fuzz_NAME.c becomes build-fuzz/fuzz_NAME. Seeds live in
# tests/fuzz/seeds/NAME/, reproducers of past findings in tests/fuzz/regress/NAME/, new
# corpus entries go to build-fuzz/corpus/NAME/ (not committed). A finding stops the run and
# leaves crash-*/oom-*/leak-* in build-fuzz/findings/NAME/: add it to regress/NAME/.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_CHECK_SECONDS ?= 3
FUZZ_BUILD := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -O1 -g -fPIC -fopenmp -MMD -MP $(PKG_CFLAGS) $(FUZZ_SAN) \
  -Wall -Wno-unused-parameter -Wno-unknown-pragmas
FUZZ_CPPFLAGS := -Ilibcore/include -Ilibcore -D_GNU_SOURCE -DCRYO_VERSION='"$(VERSION)"'
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(STAGE_SRC:%.c=$(FUZZ_BUILD)/%.o) \
  $(FUZZ_BUILD)/gen/stage_registry.o
FUZZ_LIB := $(FUZZ_BUILD)/libcryolvm-fuzz.a
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
# Each input may ask for 512 MiB at most: a reader that allocates what a header claims
# before checking it against the data is a finding (oom-*).
FUZZ_OPTS := -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=20
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 OMP_NUM_THREADS=1

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_BUILD)/gen/stage_registry.c: $(REGISTRY)
	@mkdir -p $(@D)
	cp $< $@
$(FUZZ_BUILD)/gen/stage_registry.o: $(FUZZ_BUILD)/gen/stage_registry.c
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB) $(LDLIBS_ALL)

# The unit tests of the readers, against the same instrumented library (ASan + UBSan, no
# second build of libcore): what the fuzzers do not reach, the tests' hand-made cases do.
FUZZ_UNIT := test_core test_mrc test_stream test_volio test_pdb test_safetensors
FUZZ_UNIT_BINS := $(FUZZ_UNIT:%=$(FUZZ_BUILD)/unit/%)
$(FUZZ_BUILD)/unit/%: tests/unit/%.c tests/unit/testutil.c tests/unit/testutil.h $(FUZZ_LIB)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -Itests/unit $(FUZZ_CFLAGS) -o $@ $< tests/unit/testutil.c $(FUZZ_LIB) $(LDLIBS_ALL)

fuzz-build: $(FUZZ_BINS) $(FUZZ_UNIT_BINS)

# One harness at a time, each for FUZZ_SECONDS.
fuzz: fuzz-build
	@set -eo pipefail; for h in $(FUZZ_NAMES); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/findings/$$h; \
	  dict=; [ -f tests/fuzz/fuzz_$$h.dict ] && dict=-dict=tests/fuzz/fuzz_$$h.dict; \
	  echo "fuzz: $$h for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$h $(FUZZ_OPTS) $$dict -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/findings/$$h/ \
	    $(FUZZ_BUILD)/corpus/$$h tests/fuzz/seeds/$$h > $(FUZZ_BUILD)/findings/$$h.log 2>&1 \
	    || { tail -n 60 $(FUZZ_BUILD)/findings/$$h.log; echo "fuzz: $$h: finding in $(FUZZ_BUILD)/findings/$$h/"; exit 1; }; \
	  grep -E '^Done|new_units_added' $(FUZZ_BUILD)/findings/$$h.log; \
	done

# CI: reproducers and seeds must pass, and a short run from the seeds must find nothing.
check-fuzz: fuzz-build
	@set -eo pipefail; for h in $(FUZZ_NAMES); do \
	  rm -rf $(FUZZ_BUILD)/ci/$$h; mkdir -p $(FUZZ_BUILD)/ci/$$h; \
	  dict=; [ -f tests/fuzz/fuzz_$$h.dict ] && dict=-dict=tests/fuzz/fuzz_$$h.dict; \
	  if [ -d tests/fuzz/regress/$$h ]; then \
	    $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$h $(FUZZ_OPTS) tests/fuzz/regress/$$h/* \
	      > $(FUZZ_BUILD)/ci/$$h.regress.log 2>&1 \
	      || { cat $(FUZZ_BUILD)/ci/$$h.regress.log; echo "check-fuzz: $$h: a reproducer fails again"; exit 1; }; \
	  fi; \
	  $(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$h $(FUZZ_OPTS) $$dict -max_total_time=$(FUZZ_CHECK_SECONDS) \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ci/$$h/ $(FUZZ_BUILD)/ci/$$h tests/fuzz/seeds/$$h \
	    > $(FUZZ_BUILD)/ci/$$h.log 2>&1 \
	    || { tail -n 40 $(FUZZ_BUILD)/ci/$$h.log; echo "check-fuzz: $$h: finding in $(FUZZ_BUILD)/ci/$$h/"; exit 1; }; \
	  echo "check-fuzz: $$h ok ($$(grep -o 'stat::number_of_executed_units: [0-9]*' $(FUZZ_BUILD)/ci/$$h.log | grep -o '[0-9]*$$' || echo '?') runs)"; \
	done
	@set -o pipefail; $(FUZZ_ENV) OMP_NUM_THREADS=2 scripts/run-unit $(FUZZ_UNIT_BINS) \
	  | sed 's/^unit:/check-fuzz: reader unit tests under ASan+UBSan:/'

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

.PHONY: fuzz fuzz-build check-fuzz fuzz-clean
-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
