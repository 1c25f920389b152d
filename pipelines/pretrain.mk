# pretrain.mk — self-supervised pre-training of the CryoLVM backbone from a folder of maps.
#
#   make -f pipelines/pretrain.mk [MAPS=DIR] [MODELS=DIR] OUT=DIR [STEPS=1000] [CONFIG=...] ...
#
# Maps folder -> prepared maps -> pre-trained weights:
#   OUT/prepared/map-NAME.cvol    every map in MAPS (*.mrc *.map *.ccp4, optionally .gz)
#                                 resampled to 1 Å (mrc-resample), normalised (mrc-normalize:
#                                 quantile clip to [0,1]) and cut into PATCHES random SIZE^3
#                                 crops (vol-patch --random, mostly not empty solvent);
#   OUT/prepared/model-NAME.cvol  every model in MODELS (*.pdb *.cif ..., optionally .gz)
#                                 simulated at RES Å on a 1 Å grid (model-map), then the same;
#   OUT/run/                      the jepa-train run (log.tsv, last.safetensors);
#   OUT/pretrained.safetensors    its final checkpoint (the input of finetune.mk's --init);
#   OUT/backbone.safetensors      the lean backbone (EMA target encoder), jepa-train export.
# OBJECTIVE=jepa (default) or mae. The run depends on the crops and on the training options
# (kept in OUT/pretrain.args, rewritten only when they change), so a rerun trains again only
# when one of them changed. Seeds: crops SEED plus a checksum of the name, training SEED.
#
#   make -f pipelines/pretrain.mk MAPS=../shared/data/real_maps_nomodel \
#     MODELS=/usr/share/doc/python-biopython-doc/Tests/PDB OUT=pre STEPS=200 -j2
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDARY:

HERE := $(dir $(lastword $(MAKEFILE_LIST)))
BIN ?= $(abspath $(HERE)../bin)
MAPS ?=
MODELS ?=
OUT ?= pretrain
RES ?= 3
PAD ?= 12
SIZE ?= 48
PATCHES ?= 32
MIN_DENSITY ?= 0.2
MIN_FRACTION ?= 0.05
OBJECTIVE ?= jepa
CONFIG ?= width=16,levels=2,depth=1,head_dim=8
PREDICTOR ?= embed=96,depth=1,head_dim=16
STEPS ?= 1000
BATCH ?= 4
LR ?= 1e-3
SEED ?= 1
THREADS ?= 0
TRAIN_FLAGS ?=
Q := -q

MAP_FILES := $(if $(MAPS),$(sort $(foreach e,.mrc .map .ccp4 .mrc.gz .map.gz .ccp4.gz,$(wildcard $(MAPS)/*$(e)))))
MODEL_FILES := $(if $(MODELS),$(sort $(foreach e,.pdb .ent .cif .mmcif .pdb.gz .ent.gz .cif.gz .mmcif.gz,$(wildcard $(MODELS)/*$(e)))))
name = $(basename $(patsubst %.gz,%,$(notdir $(1))))

ifeq ($(strip $(MAP_FILES)$(MODEL_FILES)),)
$(error pretrain.mk: no maps in MAPS=$(MAPS) and no models in MODELS=$(MODELS))
endif

CROPS := $(foreach f,$(MAP_FILES),$(OUT)/prepared/map-$(call name,$(f)).cvol) \
         $(foreach f,$(MODEL_FILES),$(OUT)/prepared/model-$(call name,$(f)).cvol)

# The options a product depends on, in stamp files rewritten only when they change: make
# then reruns exactly the steps whose options changed (the files' dates alone would not tell).
stamp = $(shell mkdir -p $(OUT) && { printf '%s\n' '$(2)' | cmp -s - $(OUT)/$(1) || printf '%s\n' '$(2)' > $(OUT)/$(1); })
PREP_ARGS := res=$(RES) pad=$(PAD) size=$(SIZE) patches=$(PATCHES) min=$(MIN_DENSITY),$(MIN_FRACTION) seed=$(SEED)
TRAIN_ARGS := --objective $(OBJECTIVE) -c $(CONFIG) --predictor $(PREDICTOR) --steps $(STEPS) \
  -b $(BATCH) --lr $(LR) -s $(SEED) $(TRAIN_FLAGS)
$(call stamp,prepare.args,$(PREP_ARGS))
$(call stamp,pretrain.args,$(TRAIN_ARGS))

all: $(OUT)/pretrained.safetensors $(OUT)/backbone.safetensors
	@echo "pretrain.mk: $(OUT)/pretrained.safetensors from $(words $(CROPS)) crop streams ($(words $(MAP_FILES)) maps, $(words $(MODEL_FILES)) models), $(STEPS) steps"

seed = $(shell echo $$(( $(SEED) + $$(printf '%s' '$(1)' | cksum | cut -d' ' -f1) % 1000000 )))
patch = $(BIN)/vol-patch $(Q) --random $(PATCHES) --size $(SIZE) --seed $(call seed,$(1)) \
  $(if $(MIN_DENSITY),--min-density $(MIN_DENSITY) --min-fraction $(MIN_FRACTION))

define map_rule
$(OUT)/prepared/map-$(2).cvol: $(1) $(OUT)/prepare.args
	@mkdir -p $$(@D)
	$(BIN)/mrc-resample $(Q) --apix 1.0 $$< | $(BIN)/mrc-normalize $(Q) | $(call patch,map-$(2)) \
	  > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
endef
define model_rule
$(OUT)/prepared/model-$(2).cvol: $(1) $(OUT)/prepare.args
	@mkdir -p $$(@D)
	$(BIN)/model-map $(Q) --res $(RES) --apix 1.0 --pad $(PAD) $$< | $(BIN)/mrc-resample $(Q) --apix 1.0 \
	  | $(BIN)/mrc-normalize $(Q) | $(call patch,model-$(2)) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
endef
$(foreach f,$(MAP_FILES),$(eval $(call map_rule,$(f),$(call name,$(f)))))
$(foreach f,$(MODEL_FILES),$(eval $(call model_rule,$(f),$(call name,$(f)))))

# the run trains in run.tmp and replaces run only when it finished (jepa-train refuses a
# folder that holds another run, and a killed run must not pass for a finished one)
$(OUT)/pretrained.safetensors: $(CROPS) $(OUT)/pretrain.args
	rm -rf $(OUT)/run.tmp
	$(BIN)/jepa-train $(Q) $(TRAIN_ARGS) --threads $(THREADS) --save-every $(STEPS) --keep 1 \
	  --out $(OUT)/run.tmp $(CROPS)
	rm -rf $(OUT)/run && mv $(OUT)/run.tmp $(OUT)/run
	cp $(OUT)/run/last.safetensors $@.tmp && mv $@.tmp $@

$(OUT)/backbone.safetensors: $(OUT)/pretrained.safetensors
	$(BIN)/jepa-train export $< --out $@.tmp && mv $@.tmp $@

clean:
	rm -rf $(addprefix $(OUT)/,prepared run run.tmp pretrained.safetensors backbone.safetensors *.args)

.PHONY: all clean
