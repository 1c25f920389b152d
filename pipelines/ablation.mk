# ablation.mk — what pre-training and the histogram loss are worth: the same fine-tuning
# (same pairs, validation pairs, network, steps, seed) from a JEPA-pre-trained encoder, an
# MAE-pre-trained encoder and from scratch, with the loss MSE+HistKL (ALPHA, 0.5) and with
# MSE alone (alpha 1); one table of held-out validation metrics.
#
#   make -f pipelines/ablation.mk MODELS=DIR VAL_MODELS=DIR [MAPS=DIR] OUT=DIR [TASK=sharpen]
#     [PRE_STEPS=200] [STEPS=300] [CONFIG=...] [SIZE=32] [PRE_SIZE=SIZE] ...
#
# Products:
#   OUT/pre-jepa/, OUT/pre-mae/   pretrain.mk runs (OBJECTIVE jepa / mae) on the same crops
#                                 (MAPS and MODELS; PRE_STEPS steps, PRE_SIZE^3 crops);
#   OUT/ft-VARIANT/               finetune.mk runs of TASK on pairs of MODELS, validated on
#                                 pairs of VAL_MODELS, one per VARIANT:
#       jepa-histkl    from pre-jepa, alpha ALPHA
#       mae-histkl     from pre-mae, alpha ALPHA
#       scratch-histkl from scratch, alpha ALPHA
#       jepa-mse       from pre-jepa, alpha 1
#       scratch-mse    from scratch, alpha 1
#   OUT/ablation.tsv, ablation.md one row per variant: the validation after the last step
#                                 (jepa-train's log.tsv: val_loss, val_fsc0143 Å, val_cc_mask)
#                                 and the step with the lowest validation loss.
# val_loss is the training loss on the validation pairs, so it is MSE+HistKL for the histkl
# rows and MSE alone for the mse rows: compare FSC and CC_mask across all rows, val_loss only
# within one loss. Pairs are deterministic (seeded), so each variant's copy is the same data.
# The sub-makes decide what to redo: a rerun with the same options trains nothing.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DELETE_ON_ERROR:
.SECONDARY:

HERE := $(dir $(lastword $(MAKEFILE_LIST)))
BIN ?= $(abspath $(HERE)../bin)
MODELS ?=
VAL_MODELS ?=
MAPS ?=
OUT ?= ablation
TASK ?= sharpen
SIZE ?= 32
PRE_SIZE ?= $(SIZE)
PATCHES ?= 24
VAL_PATCHES ?= 16
CONFIG ?= width=16,levels=2,depth=1,head_dim=8
PREDICTOR ?= embed=96,depth=1,head_dim=16
PRE_STEPS ?= 200
STEPS ?= 300
BATCH ?= 4
LR ?= 1e-3
ALPHA ?= 0.5
SEED ?= 1
VAL_SEED ?= 101
VAL_EVERY ?= 50
THREADS ?= 0

ifeq ($(strip $(MODELS)),)
$(error ablation.mk: give MODELS=DIR (models for the fine-tuning pairs and pre-training))
endif
ifeq ($(strip $(VAL_MODELS)),)
$(error ablation.mk: give VAL_MODELS=DIR (held-out models for the validation pairs))
endif
ifneq ($(filter-out sharpen superres wedge,$(TASK)),)
$(error ablation.mk: TASK=$(TASK) is not one of sharpen, superres, wedge)
endif

VARIANTS := jepa-histkl mae-histkl scratch-histkl jepa-mse scratch-mse
pre_of = $(firstword $(subst -, ,$(1)))
alpha_of = $(if $(filter %-mse,$(1)),1,$(ALPHA))
COMMON := BIN=$(BIN) PATCHES=$(PATCHES) CONFIG=$(CONFIG) BATCH=$(BATCH) LR=$(LR) SEED=$(SEED) THREADS=$(THREADS)
sub = $(MAKE) --no-print-directory -f $(HERE)$(1)

all: $(OUT)/ablation.tsv $(OUT)/ablation.md
	@echo "ablation.mk: $(OUT)/ablation.md ($(words $(VARIANTS)) variants, $(STEPS) fine-tuning steps of $(TASK))"

# the sub-makes run every time and redo only what changed; make then sees whether their
# products are newer than the table
FORCE:
$(OUT)/pre-%/pretrained.safetensors: FORCE
	+$(call sub,pretrain.mk) $(COMMON) $(if $(MAPS),MAPS=$(MAPS)) MODELS=$(MODELS) OUT=$(OUT)/pre-$* \
	  SIZE=$(PRE_SIZE) OBJECTIVE=$* PREDICTOR=$(PREDICTOR) STEPS=$(PRE_STEPS) $@

define variant_rule
$(OUT)/ft-$(1)/$(TASK).safetensors: $(if $(filter scratch,$(call pre_of,$(1))),,$(OUT)/pre-$(call pre_of,$(1))/pretrained.safetensors) FORCE
	+$(call sub,finetune.mk) $(COMMON) MODELS=$(MODELS) VAL_MODELS=$(VAL_MODELS) OUT=$(OUT)/ft-$(1) TASKS=$(TASK) SIZE=$(SIZE) \
	  PRE=$(if $(filter scratch,$(call pre_of,$(1))),,$(OUT)/pre-$(call pre_of,$(1))/pretrained.safetensors) \
	  ALPHA=$(call alpha_of,$(1)) STEPS=$(STEPS) VAL_PATCHES=$(VAL_PATCHES) VAL_SEED=$(VAL_SEED) \
	  VAL_EVERY=$(VAL_EVERY) $$@
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rule,$(v))))

WEIGHTS := $(foreach v,$(VARIANTS),$(OUT)/ft-$(v)/$(TASK).safetensors)
# one row per variant from its log.tsv (columns by name): the last row with a validation, and
# the step of the lowest validation loss
$(OUT)/ablation.tsv: $(WEIGHTS)
	{ printf 'variant\tpretraining\talpha\tsteps\tval_loss\tval_fsc0143_A\tval_cc_mask\tbest_step\tbest_val_loss\n'; \
	  for v in $(VARIANTS); do \
	    a=$$(case $$v in *-mse) echo 1;; *) echo $(ALPHA);; esac); \
	    awk -F'\t' -v v=$$v -v p=$${v%%-*} -v a=$$a ' \
	      NR == 1 {for (i = 1; i <= NF; i++) c[$$i] = i; \
	        if (!c["val_loss"] || !c["val_fsc0143"] || !c["val_cc_mask"]) {print FILENAME ": no validation columns" > "/dev/stderr"; exit 2}; next} \
	      $$c["val_loss"] != "-" && $$c["step"] > 0 {s = $$c["step"]; l = $$c["val_loss"]; f = $$c["val_fsc0143"]; m = $$c["val_cc_mask"]; \
	        if (bs == "" || l + 0 < bl + 0) {bs = s; bl = l}} \
	      END {if (s == "") {print FILENAME ": no validation after step 0" > "/dev/stderr"; exit 2}; \
	        printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v, p, a, s, l, f, m, bs, bl}' \
	      $(OUT)/ft-$$v/$(TASK)/run/log.tsv; \
	  done; } > $@.tmp
	mv $@.tmp $@
$(OUT)/ablation.md: $(OUT)/ablation.tsv
	awk -F'\t' 'NR == 1 {h = "|"; s = "|"; for (i = 1; i <= NF; i++) {h = h " " $$i " |"; s = s "---|"}; print h; print s; next} \
	  {r = "|"; for (i = 1; i <= NF; i++) r = r " " $$i " |"; print r}' $< > $@.tmp && mv $@.tmp $@

clean:
	rm -rf $(addprefix $(OUT)/,pre-jepa pre-mae $(addprefix ft-,$(VARIANTS)) ablation.tsv ablation.md)

.PHONY: all clean FORCE
