# pairs.mk — fine-tuning pairs for CryoLVM from a folder of atomic models.
#
#   make -f pipelines/pairs.mk MODELS=DIR OUT=DIR [MAPS=DIR] [RES=3] [HIRES=2] [LORES=6] ...
#
# For every model in MODELS (*.pdb *.ent *.cif *.mmcif, optionally .gz) it makes
#   OUT/clean/NAME.cvol         molmap at RES on a 1 Å grid (model-map), resampled to 1 Å
#                               (mrc-resample) and normalised (mrc-normalize: quantile clip
#                               to [0,1]) — the clean target;
#   OUT/sharpen/NAME.cvol       task 1, sharpening: an experimental-looking map (local
#                               resolution RES..2*RES, B-factor BFACTOR, shell-shaped noise
#                               at SNR) -> the clean molmap at RES;
#                               With SHARPEN_VARIANTS, a comma-separated list of
#                               R:HI:B:SNR:SB entries, the stream is instead PATCHES crops
#                               per entry: the molmap at R (the target) degraded with local
#                               resolution R..HI, B-factor B, shell noise at SNR and, when
#                               SB > 0, post-processing sharpening by SB and a low-pass at R
#                               (vol-degrade --sharpen SB,R, as deposited maps are): one
#                               network for maps from ~2 to ~8 Å, raw or sharpened;
#   OUT/superres/NAME.cvol      task 2, super-resolution: the molmap at HIRES low-passed to
#                               LORES, binned by BINF and noised -> the molmap at HIRES;
#   OUT/wedge/NAME.cvol         task 3, missing wedge: the clean map with a +-WEDGE degree
#                               missing wedge (tilt axis y) and noise -> the full map;
# each a stream of PATCHES random SIZE^3 crops (vol-patch --random), two channels per
# frame (0 = input, 1 = target; vol-degrade --pair). The whole degraded map is normalised
# again (mrc-normalize on the pair, before cropping), so the input channel is exactly what
# lvm-apply feeds the network for a user's map (its 0.01/0.99 quantiles clipped to [0,1]);
# the target channel is already normalised and stays so (the second affine map is the
# identity up to ~1e-5, from the interpolated quantiles of a clipped map).
# With MAPS=DIR, every experimental map there (*.mrc *.map *.ccp4, optionally .gz) also gives a wedge pair OUT/wedge/map-NAME.cvol
# (resampled to 1 Å, normalised, wedge-degraded, normalised again).
# Crops are redrawn until at least MIN_FRACTION (0.05) of the target's voxels exceed
# MIN_DENSITY (0.2 of the normalised range), so few are empty solvent (MIN_DENSITY= turns
# this off). Maps of models are boxed with PAD Å (default 12) around the atoms; a box smaller than SIZE
# is vol-patch's to refuse.
# Seeds: SEED plus a checksum of the model's name, so every model gets its own noise and
# crops and a rerun reproduces them. Nothing is downloaded; models come from the caller
# (e.g. /usr/share/doc/python-biopython-doc/Tests/PDB/*.cif.gz, Debian python-biopython-doc).
# Tools come from BIN (default: the bin/ beside this file).
#
#   make -f pipelines/pairs.mk MODELS=/usr/share/doc/python-biopython-doc/Tests/PDB OUT=pairs -j2
#   make -f pipelines/pairs.mk OUT=pairs clean
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDARY:

HERE := $(dir $(lastword $(MAKEFILE_LIST)))
BIN ?= $(abspath $(HERE)../bin)
MODELS ?= models
MAPS ?=
OUT ?= pairs
RES ?= 3
HIRES ?= 2
LORES ?= 6
BINF ?= 2
BFACTOR ?= 80
SNR ?= 0.5
WEDGE ?= 60
SHARPEN_VARIANTS ?=
PATCHES ?= 8
SIZE ?= 48
SEED ?= 1
PAD ?= 12
MIN_DENSITY ?= 0.2
MIN_FRACTION ?= 0.05
Q := -q

EXTS := .pdb .ent .cif .mmcif .pdb.gz .ent.gz .cif.gz .mmcif.gz
MODEL_FILES := $(sort $(foreach e,$(EXTS),$(wildcard $(MODELS)/*$(e))))
MAP_FILES := $(if $(MAPS),$(sort $(foreach e,.mrc .map .ccp4 .mrc.gz .map.gz .ccp4.gz,$(wildcard $(MAPS)/*$(e)))))
# NAME of a file: without directory, .gz and one more extension
name = $(basename $(patsubst %.gz,%,$(notdir $(1))))

ifeq ($(strip $(MODEL_FILES)$(MAP_FILES)),)
$(error pairs.mk: no models (*.pdb *.cif ...) in MODELS=$(MODELS) and no maps in MAPS=$(MAPS))
endif
ifneq ($(words $(sort $(foreach f,$(MODEL_FILES),$(call name,$(f))))),$(words $(MODEL_FILES)))
$(error pairs.mk: two model files in $(MODELS) have the same name without extension)
endif

TASKS := sharpen superres wedge
TARGETS := $(foreach f,$(MODEL_FILES),$(foreach t,$(TASKS),$(OUT)/$(t)/$(call name,$(f)).cvol)) \
           $(foreach f,$(MAP_FILES),$(OUT)/wedge/map-$(call name,$(f)).cvol)

all: $(TARGETS)
	@echo "pairs.mk: $(words $(TARGETS)) pair streams in $(OUT) ($(words $(MODEL_FILES)) models, $(words $(MAP_FILES)) maps)"

comma := ,
# per-name seed: SEED + cksum(name) mod 1e6, computed when the rules are made
seed = $(shell echo $$(( $(SEED) + $$(printf '%s' '$(1)' | cksum | cut -d' ' -f1) % 1000000 )))
LOCAL_HI ?= $(shell echo "2 * $(RES)" | bc -l | sed -e 's/\.0*$$//')
patch = $(BIN)/vol-patch $(Q) --random $(PATCHES) --size $(SIZE) --seed $(call seed,$(1)) \
  $(if $(MIN_DENSITY),--min-density $(MIN_DENSITY) --min-fraction $(MIN_FRACTION))
# the degraded whole map normalised as lvm-apply normalises its input (both channels: the
# input's quantiles clipped to [0,1]; the already normalised target is unchanged up to ~1e-5)
renorm = $(BIN)/mrc-normalize $(Q)
# a recipe writes $@.tmp and renames it; a failed one removes it, so no partial pair is left
define model_rules
$(OUT)/clean/$(2).cvol: $(1)
	@mkdir -p $$(@D)
	$(BIN)/model-map $(Q) --res $(RES) --apix 1.0 --pad $(PAD) $$< | $(BIN)/mrc-resample $(Q) --apix 1.0 \
	  | $(BIN)/mrc-normalize $(Q) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
$(OUT)/hires/$(2).cvol: $(1)
	@mkdir -p $$(@D)
	$(BIN)/model-map $(Q) --res $(HIRES) --apix 1.0 --pad $(PAD) $$< | $(BIN)/mrc-resample $(Q) --apix 1.0 \
	  | $(BIN)/mrc-normalize $(Q) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
ifeq ($(strip $(SHARPEN_VARIANTS)),)
$(OUT)/sharpen/$(2).cvol: $(OUT)/clean/$(2).cvol
	@mkdir -p $$(@D)
	$(BIN)/vol-degrade $(Q) --seed $(call seed,$(2)) --local-res $(RES),$(LOCAL_HI) \
	  --bfactor $(BFACTOR) --snr $(SNR) --noise-shape shell --pair $$< | $(renorm) | $(call patch,$(2)) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
else
# one stream of PATCHES crops per R:HI:B:SNR:SB entry (variant k: seeds + k), then one file
$(OUT)/sharpen/$(2).cvol: $(1)
	@mkdir -p $$(@D)
	rm -rf $$@.d && mkdir $$@.d
	k=0; for v in $(subst $(comma), ,$(SHARPEN_VARIANTS)); do \
	  IFS=: read -r r hi b snr sb extra <<< "$$$$v"; \
	  if [ -z "$$$$sb" ] || [ -n "$$$$extra" ]; then \
	    echo "pairs.mk: SHARPEN_VARIANTS entry '$$$$v' is not R:HI:B:SNR:SB" >&2; rm -rf $$@.d; exit 2; fi; \
	  s=$$$$(( $(call seed,$(2)) + k )); sharpen=; \
	  [ "$$$$sb" = 0 ] || sharpen="--sharpen $$$$sb,$$$$r"; \
	  $(BIN)/model-map $(Q) --res $$$$r --apix 1.0 --pad $(PAD) $$< | $(BIN)/mrc-resample $(Q) --apix 1.0 \
	    | $(BIN)/mrc-normalize $(Q) | $(BIN)/vol-degrade $(Q) --seed $$$$s --local-res $$$$r,$$$$hi --bfactor $$$$b \
	    --snr $$$$snr --noise-shape shell $$$$sharpen --pair | $(renorm) \
	    | $(BIN)/vol-patch $(Q) --random $(PATCHES) --size $(SIZE) --seed $$$$s \
	      $(if $(MIN_DENSITY),--min-density $(MIN_DENSITY) --min-fraction $(MIN_FRACTION)) > $$@.d/$$$$k.cvol \
	    || { rm -rf $$@.d; exit 1; }; \
	  k=$$$$((k + 1)); \
	done
	$(BIN)/vol-convert $(Q) $$$$(ls $$@.d/*.cvol | sort -V) > $$@.tmp || { rm -rf $$@.tmp $$@.d; false; }
	rm -rf $$@.d; mv $$@.tmp $$@
endif
$(OUT)/superres/$(2).cvol: $(OUT)/hires/$(2).cvol
	@mkdir -p $$(@D)
	$(BIN)/vol-degrade $(Q) --seed $(call seed,$(2)) --lowpass $(LORES) --bin $(BINF) --snr $(SNR) --pair $$< \
	  | $(renorm) | $(call patch,$(2)) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
$(OUT)/wedge/$(2).cvol: $(OUT)/clean/$(2).cvol
	@mkdir -p $$(@D)
	$(BIN)/vol-degrade $(Q) --seed $(call seed,$(2)) --wedge $(WEDGE) --snr $(SNR) --pair $$< \
	  | $(renorm) | $(call patch,$(2)) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
endef

define map_rules
$(OUT)/wedge/map-$(2).cvol: $(1)
	@mkdir -p $$(@D)
	$(BIN)/mrc-resample $(Q) --apix 1.0 $$< | $(BIN)/mrc-normalize $(Q) \
	  | $(BIN)/vol-degrade $(Q) --seed $(call seed,map-$(2)) --wedge $(WEDGE) --snr $(SNR) --pair \
	  | $(renorm) | $(call patch,map-$(2)) > $$@.tmp || { rm -f $$@.tmp; false; }; mv $$@.tmp $$@
endef

$(foreach f,$(MODEL_FILES),$(eval $(call model_rules,$(f),$(call name,$(f)))))
$(foreach f,$(MAP_FILES),$(eval $(call map_rules,$(f),$(call name,$(f)))))

clean:
	rm -rf $(addprefix $(OUT)/,clean hires $(TASKS))

.PHONY: all clean
