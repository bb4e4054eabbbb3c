# ViDT+ (Song et al., "An Extendable, Efficient and Effective Transformer-based Object Detector",
# arXiv 2204.07962) with a Swin-RAM body, detection layout: ViDT plus the EPFF pyramid fusion and
# 300 [DET] tokens. This is the model of the official box evaluation: converted ViDT+ checkpoints
# load into it without their training-only heads. The full training model (IoU-aware loss, token
# labels, UQR masks) is ./vidt-plus_swin-ram_instance.py. The body is chosen as in
# ./vidt_swin-ram.py.
_base_ = './vidt_swin-ram.py'

model = dict(backbone=dict(det_token_num=300), neck=dict(fusion=dict(type='EPFF')))
