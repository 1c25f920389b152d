# evaluate.mk — map + model pairs -> one table of map-versus-model figures and FSC plots, for
# the map as it is, relion's ad hoc B-factor sharpening and lvm-apply.
#
#   make -f pipelines/evaluate.mk LIST=pairs.txt OUT=DIR [BFACTORS="50 100 150"] [TASK=sharpen]
#     [WEIGHTS=W.safetensors] [TILE=64]
#
# LIST: one "MAP MODEL RES" line per map (paths relative to the list's folder, # a comment;
# RES the map's resolution in Å). For every map NAME:
#   OUT/NAME/input.mrc          the map as it is (vol-convert: any format and axis order);
#   OUT/NAME/bfac-B.mrc         relion_postprocess --adhoc_bfac -B (the same map as both
#                               halves, --skip_fsc_weighting, low-pass at RES), every B in
#                               BFACTORS;
#   OUT/NAME/lvm.mrc            lvm-apply --task TASK (WEIGHTS, or the shipped weights);
#   OUT/NAME/METHOD.json        fsc-eval --model MODEL --res RES --json: FSC against the model
#                               map (0.143 and 0.5), CC_box, CC_mask, CC_volume, CC_peaks,
#                               Q-score;
#   OUT/NAME/model.mrc          the model map at RES on the map's grid (model-map --like);
#   OUT/NAME/METHOD-fsc.png     the FSC of METHOD.mrc against model.mrc, plot and .tsv;
#   OUT/table.tsv, table.md     one row per map and method.
# Every product is written to a temporary and renamed; make -j runs maps and methods in
# parallel; a rerun redoes only what changed (a changed LIST line changes its products'
# prerequisites or names). Needs relion_postprocess (relion) and jq on PATH.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDARY:

HERE := $(dir $(lastword $(MAKEFILE_LIST)))
BIN ?= $(abspath $(HERE)../bin)
LIST ?=
OUT ?= evaluate
BFACTORS ?= 50 100 150
TASK ?= sharpen
WEIGHTS ?=
TILE ?= 64
THREADS ?= 0
RELION ?= relion_postprocess
Q := -q

ifeq ($(strip $(LIST)),)
$(error evaluate.mk: give LIST=FILE with "MAP MODEL RES" lines)
endif
ifeq ($(wildcard $(LIST)),)
$(error evaluate.mk: LIST=$(LIST) does not exist)
endif
LIST_DIR := $(dir $(LIST))
LINES := $(shell sed -e 's/\#.*//' -e '/^[[:space:]]*$$/d' -e 's/[[:space:]]\+/|/g' $(LIST))
ifeq ($(strip $(LINES)),)
$(error evaluate.mk: LIST=$(LIST) names no maps)
endif
field = $(word $(2),$(subst |, ,$(1)))
path = $(if $(filter /%,$(1)),$(1),$(LIST_DIR)$(1))
name = $(basename $(patsubst %.gz,%,$(notdir $(1))))
NAMES := $(foreach l,$(LINES),$(call name,$(call field,$(l),1)))
ifneq ($(words $(sort $(NAMES))),$(words $(NAMES)))
$(error evaluate.mk: two maps in $(LIST) have the same name)
endif
METHODS := input $(foreach b,$(BFACTORS),bfac-$(b)) lvm
JSONS := $(foreach n,$(NAMES),$(foreach m,$(METHODS),$(OUT)/$(n)/$(m).json))
PLOTS := $(foreach n,$(NAMES),$(foreach m,$(METHODS),$(OUT)/$(n)/$(m)-fsc.png))

all: $(OUT)/table.tsv $(OUT)/table.md $(PLOTS)
	@echo "evaluate.mk: $(OUT)/table.md ($(words $(NAMES)) maps x $(words $(METHODS)) methods)"

# relion_postprocess writes its map with origin 0 and NXSTART 0: copy those header words
# (MRC2014 bytes 16-27, NXSTART..NZSTART, and 196-207, ORIGIN) from input.mrc, whose grid
# it shares (both written with axis order 1,2,3), or the map leaves the model's frame
keep_origin = dd if=$(1) of=$(2) bs=4 skip=4 seek=4 count=3 conv=notrunc status=none && \
  dd if=$(1) of=$(2) bs=4 skip=49 seek=49 count=3 conv=notrunc status=none
# $(1) the LIST line, $(2) the name
define map_rules
$(OUT)/$(2)/input.mrc: $(call path,$(call field,$(1),1))
	@mkdir -p $$(@D)
	$(BIN)/vol-convert $(Q) $$< -o $$@.tmp.mrc && mv $$@.tmp.mrc $$@
# relion reads the voxel size from the header and exits 1 while drawing its PDF log after
# writing the map, so the map itself is the test of success
$(OUT)/$(2)/bfac-%.mrc: $(OUT)/$(2)/input.mrc
	rm -rf $$@.d && mkdir -p $$@.d
	cd $$@.d && { $(RELION) --i ../input.mrc --i2 ../input.mrc --adhoc_bfac -$$* --skip_fsc_weighting \
	  --low_pass $(call field,$(1),3) --o pp > log.txt 2>&1 || true; }
	test -s $$@.d/pp.mrc || { echo "evaluate.mk: $(RELION) made no map for $$@ (see $$@.d/log.txt)" >&2; false; }
	$(call keep_origin,$$<,$$@.d/pp.mrc)
	mv $$@.d/pp.mrc $$@ && rm -rf $$@.d
$(OUT)/$(2)/lvm.mrc: $(OUT)/$(2)/input.mrc $(WEIGHTS)
	$(BIN)/lvm-apply $(Q) --task $(TASK) $(if $(WEIGHTS),--model $(WEIGHTS)) --tile $(TILE) --threads $(THREADS) \
	  $$< -o $$@.tmp.mrc && mv $$@.tmp.mrc $$@
$(OUT)/$(2)/%.json: $(OUT)/$(2)/%.mrc $(call path,$(call field,$(1),2))
	$(BIN)/fsc-eval $(Q) --model $(call path,$(call field,$(1),2)) --res $(call field,$(1),3) --threads $(THREADS) \
	  --json $$< > $$@.tmp && mv $$@.tmp $$@
# the model map on the map's grid at RES, for the FSC curve and its plot
$(OUT)/$(2)/model.mrc: $(OUT)/$(2)/input.mrc $(call path,$(call field,$(1),2))
	$(BIN)/model-map $(Q) --res $(call field,$(1),3) --like $$^ -o $$@.tmp.mrc && mv $$@.tmp.mrc $$@
$(OUT)/$(2)/%-fsc.png: $(OUT)/$(2)/%.mrc $(OUT)/$(2)/model.mrc
	$(BIN)/fsc-eval $(Q) --threads $(THREADS) --title "$(2) $$*: FSC against the model map" \
	  --tsv $(OUT)/$(2)/$$*-fsc.tsv --plot $$@.tmp.png $$^ > /dev/null && mv $$@.tmp.png $$@
endef
$(foreach l,$(LINES),$(eval $(call map_rules,$(l),$(call name,$(call field,$(l),1)))))

COLS := fsc_0143 fsc_05 cc_box cc_mask cc_volume cc_peaks q_score
$(OUT)/table.tsv: $(JSONS)
	{ printf 'map\tmethod\t%s\n' "$$(echo $(COLS) | tr ' ' '\t')"; \
	  for j in $(JSONS); do m=$${j#$(OUT)/}; \
	    jq -r --arg n "$${m%%/*}" --arg m "$$(basename $$j .json)" \
	      '[$$n, $$m, $(foreach c,$(COLS),(.$(c) // "-"),) empty] | map(tostring) | join("\t")' $$j; done; } > $@.tmp
	mv $@.tmp $@
$(OUT)/table.md: $(OUT)/table.tsv
	awk -F'\t' 'NR == 1 {h = "|"; s = "|"; for (i = 1; i <= NF; i++) {h = h " " $$i " |"; s = s "---|"}; print h; print s; next} \
	  {r = "|"; for (i = 1; i <= NF; i++) r = r " " $$i " |"; print r}' $< > $@.tmp && mv $@.tmp $@

clean:
	rm -rf $(addprefix $(OUT)/,$(NAMES) table.tsv table.md)

.PHONY: all clean
