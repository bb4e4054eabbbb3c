# `make demo`: the pico ViDT (../_base_/models/vidt_swin-pico.py) trained from scratch on the
# `simple` shapes preset (../_base_/datasets/shapes_simple_detection.py: 2400 training images at
# 112 px, 8 per step) for 8 epochs on a CPU, evaluated with CocoMetric on the 100 validation
# images after every epoch. With at most 6 objects per image, 20 [DET] tokens are plenty (and
# cheaper than the base's 50). Measured numbers: the top-level README.
_base_ = [
    '../_base_/models/vidt_swin-pico.py', '../_base_/datasets/shapes_simple_detection.py',
    '../_base_/schedules/vidt_cpu_8e.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone=dict(det_token_num=20), test_cfg=dict(max_per_img=20))
