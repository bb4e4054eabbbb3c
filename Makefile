# mmvidt developer entry points. `make test` works on a fresh machine: it installs what is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export MMVIDT_VENV := $(abspath $(VENV))

.PHONY: install test test-all parity demo demo-plus curves

# The demos: a small ViDT / ViDT+ trained from scratch on the `simple` preset of the bundled
# shapes dataset, on CPU. The harder `cluttered` preset: tools/dataset_converters/make_shapes.py.
SHAPES := data/shapes_simple
DEMO_CONFIG := configs/vidt/vidt_swin-pico_1xb8-9e_shapes-simple.py
DEMO_DIR := work_dirs/shapes_demo
DEMO_PLUS_CONFIG := configs/vidt_plus/vidt-plus_swin-pico_1xb8-6e_shapes-simple.py
DEMO_PLUS_DIR := work_dirs/shapes_demo_plus
DEMO_IMAGE := $(SHAPES)/val/000000.png
# mmdet's tools (analysis_tools/analyze_logs.py draws the learning curves); looked up when used,
# after `install`
MMDET = $(shell $(PYTHON) -c 'import mmdet, os; print(os.path.dirname(mmdet.__file__))')
MMDET_TOOLS = $(MMDET)/.mim/tools
ANALYZE_LOGS = $(PYTHON) $(MMDET_TOOLS)/analysis_tools/analyze_logs.py plot_curve --backend Agg

install:
	bash tools/install.sh

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m 'slow or not slow'

parity: install
	$(PYTHON) tools/misc/check_parity.py ../shared/fixtures/*.pt

$(SHAPES)/annotations/val.json: tools/dataset_converters/make_shapes.py mmvidt/datasets/shapes.py
	$(PYTHON) tools/dataset_converters/make_shapes.py --preset simple --out $(SHAPES) \
		--num-train 2400 --num-val 100 --seed 0 --force

# install, generate the data, train (CocoMetric on the validation split after every epoch), draw
# the trained model's detections scoring >= 0.5 on a validation image, plot the learning curves
demo: install $(SHAPES)/annotations/val.json
	$(PYTHON) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PYTHON) tools/demo/image_demo.py $(DEMO_IMAGE) $(DEMO_CONFIG) \
		--weights $$(cat $(DEMO_DIR)/last_checkpoint) --out-dir $(DEMO_DIR)/vis --pred-score-thr 0.5
	$(MAKE) --no-print-directory curves RUN_DIR=$(DEMO_DIR) LOSSES='loss loss_cls loss_bbox loss_iou' \
		METRICS='bbox_mAP bbox_mAP_50 bbox_mAP_75'
	@echo "demo done: metrics in $(DEMO_DIR)/*/*.log, drawing $(DEMO_DIR)/vis/000000.png," \
		"curves $(DEMO_DIR)/loss.png and $(DEMO_DIR)/mAP.png"

# the same for ViDT+ (boxes and masks; bbox and segm mAP)
demo-plus: install $(SHAPES)/annotations/val.json
	$(PYTHON) tools/train.py $(DEMO_PLUS_CONFIG) --work-dir $(DEMO_PLUS_DIR)
	$(PYTHON) tools/demo/image_demo.py $(DEMO_IMAGE) $(DEMO_PLUS_CONFIG) \
		--weights $$(cat $(DEMO_PLUS_DIR)/last_checkpoint) --out-dir $(DEMO_PLUS_DIR)/vis \
		--pred-score-thr 0.5
	$(MAKE) --no-print-directory curves RUN_DIR=$(DEMO_PLUS_DIR) \
		LOSSES='loss loss_cls loss_bbox loss_iou loss_vector loss_token_focal' \
		METRICS='bbox_mAP bbox_mAP_50 segm_mAP segm_mAP_50'
	@echo "demo-plus done: metrics in $(DEMO_PLUS_DIR)/*/*.log, drawing" \
		"$(DEMO_PLUS_DIR)/vis/000000.png, curves $(DEMO_PLUS_DIR)/loss.png and" \
		"$(DEMO_PLUS_DIR)/mAP.png"

# learning curves of the newest run in RUN_DIR (mmengine's LocalVisBackend scalars): LOSSES (the
# final decoder level's terms) per iteration (loss.png) and METRICS per epoch (mAP.png)
curves:
	$(eval SCALARS := $(lastword $(sort $(wildcard $(RUN_DIR)/*/vis_data/scalars.json))))
	$(ANALYZE_LOGS) $(SCALARS) --keys $(LOSSES) --legend $(LOSSES) --title 'training loss' \
		--out $(RUN_DIR)/loss.png
	$(ANALYZE_LOGS) $(SCALARS) --keys $(METRICS) --legend $(METRICS) \
		--title 'validation (CocoMetric)' --out $(RUN_DIR)/mAP.png
