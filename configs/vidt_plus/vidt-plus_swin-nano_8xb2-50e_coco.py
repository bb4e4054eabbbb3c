# ViDT+ Swin-nano, 50 epochs (official schedule): detection layout (EPFF, 300 [DET]
# tokens) trained on COCO boxes; also the model of the official box evaluation.
_base_ = [
    '../_base_/models/vidt-plus_swin-nano.py', '../_base_/datasets/coco_detection_vidt.py',
    '../_base_/schedules/vidt_50e.py', 'mmdet::_base_/default_runtime.py'
]
