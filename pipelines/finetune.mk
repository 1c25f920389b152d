# finetune.mk — fine-tuned CryoLVM weights per task from pairs.
#
#   make -f pipelines/finetune.mk MODELS=DIR VAL_MODELS=DIR PRE=pretrained.safetensors OUT=DIR \
#     [TASKS="sharpen superres wedge"] [STEPS=1000] [CONFIG=...] [SEED=1] ...
#   make -f pipelines/finetune.mk REAL=LIST PRE=... OUT=DIR TASKS=sharpen ...
#
# Simulated pairs (MODELS): pairs.mk makes OUT/pairs/TASK/NAME.cvol from every model in
# MODELS and OUT/valpairs/TASK/NAME.cvol from every model in VAL_MODELS (held out: other
# models, another seed VAL_SEED); RES, HIRES, LORES, SIZE, PATCHES, ... are passed on, and any
# other pairs.mk variable through PAIRS_FLAGS, e.g. the mixed sharpening recipe of the shipped
# weights: PAIRS_FLAGS=SHARPEN_VARIANTS=3:6:80:0.5:0,2:3:80:1:60,... (share/README.md).
# Real pairs (REAL): a list of "MAP MODEL RES" lines (paths relative to the list's folder,
# # a comment); every map gets OUT/real/NAME-target.mrc, the molmap of its model on the map's grid at the map's
# resolution RES (model-map --like); jepa-train then draws SIZE^3 crops from the pairs
# (its loader: 1 Å, quantile normalisation, rotations). With both, REAL is used.
# Per task t in TASKS:
#   OUT/t/run/                   the jepa-train run (log.tsv, last, best);
#   OUT/t.safetensors            the lean weights (best validation loss with VAL_MODELS, else the
#                                last step), EXPORT_DTYPE (f16), for lvm-apply --weights or
#                                share/models/t.safetensors.
# PRE is a pretrain.mk checkpoint (its encoder starts the network; CONFIG must match it);
# PRE= (empty) trains from scratch. A run depends on its pairs, PRE and its options (kept in
# OUT/t.args, rewritten only when they change), so a rerun redoes only what changed.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDARY:

HERE := $(dir $(lastword $(MAKEFILE_LIST)))
BIN ?= $(abspath $(HERE)../bin)
MODELS ?=
VAL_MODELS ?=
REAL ?=
PRE ?=
OUT ?= finetune
TASKS ?= sharpen superres wedge
RES ?= 3
HIRES ?= 2
LORES ?= 6
SIZE ?= 48
PATCHES ?= 32
VAL_PATCHES ?= 16
SEED ?= 1
VAL_SEED ?= 1001
PAIRS_FLAGS ?=
CONFIG ?= width=16,levels=2,depth=1,head_dim=8
STEPS ?= 1000
BATCH ?= 4
LR ?= 1e-3
ALPHA ?= 0.5
FREEZE ?= 0
VAL_EVERY ?= 50
THREADS ?= 0
EXPORT_DTYPE ?= f16
TRAIN_FLAGS ?=
Q := -q

EXTS := .pdb .ent .cif .mmcif .pdb.gz .ent.gz .cif.gz .mmcif.gz
models_in = $(if $(1),$(sort $(foreach e,$(EXTS),$(wildcard $(1)/*$(e)))))
MODEL_FILES := $(call models_in,$(MODELS))
VAL_FILES := $(call models_in,$(VAL_MODELS))
name = $(basename $(patsubst %.gz,%,$(notdir $(1))))

ifeq ($(strip $(MODEL_FILES)$(REAL)),)
$(error finetune.mk: no models in MODELS=$(MODELS) and no REAL list)
endif
ifneq ($(filter-out sharpen superres wedge,$(TASKS)),)
$(error finetune.mk: unknown task in TASKS=$(TASKS) (sharpen, superres, wedge))
endif

stamp = $(shell mkdir -p $(OUT) && { printf '%s\n' '$(2)' | cmp -s - $(OUT)/$(1) || printf '%s\n' '$(2)' > $(OUT)/$(1); })
PAIRS_ARGS := RES=$(RES) HIRES=$(HIRES) LORES=$(LORES) SIZE=$(SIZE) $(PAIRS_FLAGS)
pairs_make = $(MAKE) --no-print-directory -f $(HERE)pairs.mk BIN=$(BIN) $(PAIRS_ARGS)
$(call stamp,pairs.args,$(PAIRS_ARGS) PATCHES=$(PATCHES) SEED=$(SEED) VAL_PATCHES=$(VAL_PATCHES) VAL_SEED=$(VAL_SEED))

all: $(foreach t,$(TASKS),$(OUT)/$(t).safetensors)
	@echo "finetune.mk: $(foreach t,$(TASKS),$(OUT)/$(t).safetensors) ($(STEPS) steps, $(if $(REAL),real pairs from $(REAL),$(words $(MODEL_FILES)) models))"

ifeq ($(REAL),)
# simulated pairs: pairs.mk decides what to redo; all of them are remade when its options change
PAIR_FILES := $(foreach t,$(TASKS),$(foreach f,$(MODEL_FILES),$(OUT)/pairs/$(t)/$(call name,$(f)).cvol))
VALPAIR_FILES := $(foreach t,$(TASKS),$(foreach f,$(VAL_FILES),$(OUT)/valpairs/$(t)/$(call name,$(f)).cvol))
$(PAIR_FILES) &: $(MODEL_FILES) $(OUT)/pairs.args
	$(if $(filter %pairs.args,$?),rm -rf $(OUT)/pairs)
	+$(pairs_make) MODELS=$(MODELS) OUT=$(OUT)/pairs PATCHES=$(PATCHES) SEED=$(SEED) \
	  $(addprefix $(OUT)/pairs/,$(foreach t,$(TASKS),$(foreach f,$(MODEL_FILES),$(t)/$(call name,$(f)).cvol)))
ifneq ($(VAL_FILES),)
$(VALPAIR_FILES) &: $(VAL_FILES) $(OUT)/pairs.args
	$(if $(filter %pairs.args,$?),rm -rf $(OUT)/valpairs)
	+$(pairs_make) MODELS=$(VAL_MODELS) OUT=$(OUT)/valpairs PATCHES=$(VAL_PATCHES) SEED=$(VAL_SEED) \
	  $(addprefix $(OUT)/valpairs/,$(foreach t,$(TASKS),$(foreach f,$(VAL_FILES),$(t)/$(call name,$(f)).cvol)))
# one validation stream per task (jepa-train --val reads one file)
$(OUT)/val-%.cvol: $(VALPAIR_FILES)
	$(BIN)/vol-convert $(Q) $(filter $(OUT)/valpairs/$*/%,$^) > $@.tmp && mv $@.tmp $@
endif
train_inputs = $(filter $(OUT)/pairs/$(1)/%,$(PAIR_FILES))
train_data = $(train_inputs)
else
# real pairs: "MAP MODEL RES" -> the map and the molmap of its model at RES on the map's grid
REAL_DIR := $(dir $(REAL))
REAL_LINES := $(shell sed -e 's/\#.*//' -e '/^[[:space:]]*$$/d' -e 's/[[:space:]]\+/|/g' $(REAL))
real_field = $(word $(2),$(subst |, ,$(1)))
real_path = $(if $(filter /%,$(1)),$(1),$(REAL_DIR)$(1))
REAL_NAMES := $(foreach l,$(REAL_LINES),$(call name,$(call real_field,$(l),1)))
define real_rule
$(OUT)/real/$(2)-target.mrc: $(call real_path,$(call real_field,$(1),1)) $(call real_path,$(call real_field,$(1),2))
	@mkdir -p $$(@D)
	$(BIN)/model-map $(Q) --res $(call real_field,$(1),3) --like $$^ -o $$@.tmp.mrc && mv $$@.tmp.mrc $$@
endef
$(foreach l,$(REAL_LINES),$(eval $(call real_rule,$(l),$(call name,$(call real_field,$(l),1)))))
$(OUT)/real/pairs.txt: $(REAL)
	@mkdir -p $(@D)
	printf '%s %s-target.mrc\n' $(foreach l,$(REAL_LINES),$(abspath $(call real_path,$(call real_field,$(l),1))) \
	  $(call name,$(call real_field,$(l),1))) > $@.tmp && mv $@.tmp $@
train_inputs = $(OUT)/real/pairs.txt $(foreach n,$(REAL_NAMES),$(OUT)/real/$(n)-target.mrc)
train_data = --pairs $(OUT)/real/pairs.txt --size $(SIZE)
endif

ft_args = --task $(1) -c $(CONFIG) --steps $(STEPS) -b $(BATCH) --lr $(LR) --alpha $(ALPHA) \
  --freeze-encoder $(FREEZE) -s $(SEED) $(if $(PRE),--init $(abspath $(PRE)),--from-scratch) $(TRAIN_FLAGS)
VAL := $(if $(and $(VAL_FILES),$(if $(REAL),,y)),y)
define task_rules
$(call stamp,$(1).args,$(call ft_args,$(1)))
$(OUT)/$(1).safetensors: $(call train_inputs,$(1)) $(if $(VAL),$(OUT)/val-$(1).cvol) $(PRE) $(OUT)/$(1).args
	rm -rf $(OUT)/$(1)/run.tmp && mkdir -p $(OUT)/$(1)
	$(BIN)/jepa-train $(Q) $(call ft_args,$(1)) --threads $(THREADS) --save-every $(STEPS) --keep 1 \
	  $(if $(VAL),--val $(OUT)/val-$(1).cvol --val-every $(VAL_EVERY)) --out $(OUT)/$(1)/run.tmp $(call train_data,$(1))
	rm -rf $(OUT)/$(1)/run && mv $(OUT)/$(1)/run.tmp $(OUT)/$(1)/run
	$(BIN)/jepa-train export $(OUT)/$(1)/run/$(if $(VAL),best,last).safetensors --export-dtype $(EXPORT_DTYPE) \
	  --out $$@.tmp && mv $$@.tmp $$@
endef
$(foreach t,$(TASKS),$(eval $(call task_rules,$(t))))

clean:
	rm -rf $(addprefix $(OUT)/,pairs valpairs real val-*.cvol *.args $(foreach t,$(TASKS),$(t) $(t).safetensors))

.PHONY: all clean
