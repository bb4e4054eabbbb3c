# ViDT+ with Swin-nano, detection layout (ViDT+ paper, EPFF): ViDT plus EPFF pyramid fusion and
# 300 [DET] tokens. This is the official box-evaluation model: converted ViDT+ checkpoints load
# into it without their training-only heads (convert_vidt_checkpoint(keep_training_heads=False)).
# The full training model (IoU-aware, token labels, UQR masks) is vidt-plus_swin-nano_instance.py.
_base_ = './vidt_swin-nano.py'

model = dict(backbone=dict(det_token_num=300), neck=dict(fusion=dict(type='EPFF')))
