# mmvidt developer entry points. `make test` works on a fresh machine: it installs what is missing.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
export MMVIDT_VENV := $(abspath $(VENV))

.PHONY: install test test-all parity demo

# The demo: a small ViDT trained from scratch on the bundled shapes dataset, on CPU.
SHAPES := data/shapes
DEMO_CONFIG := configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py
DEMO_DIR := work_dirs/shapes_demo

install:
	bash tools/install.sh

test: install
	$(PYTHON) -m pytest -q

test-all: install
	$(PYTHON) -m pytest -q -m 'slow or not slow'

parity: install
	$(PYTHON) tools/misc/check_parity.py ../shared/fixtures/*.pt

$(SHAPES)/annotations/val.json: tools/dataset_converters/make_shapes.py mmvidt/datasets/shapes.py
	$(PYTHON) tools/dataset_converters/make_shapes.py --out $(SHAPES) --num-train 300 --num-val 60 \
		--seed 0 --force

# install, generate the data, train (CocoMetric on the validation split at the end: bbox mAP),
# then draw the predictions of the trained model on validation images
demo: install $(SHAPES)/annotations/val.json
	$(PYTHON) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR)
	$(PYTHON) tools/demo/image_demo.py $(SHAPES)/val/000000.png $(DEMO_CONFIG) \
		--weights $(DEMO_DIR)/epoch_40.pth --out-dir $(DEMO_DIR)/vis --pred-score-thr 0.2
	@echo "demo done: metrics in $(DEMO_DIR)/*/*.log, drawing in $(DEMO_DIR)/vis/000000.png"
