# ViDT+ of the same size as ./vidt_swin-pico.py: the pico ViDT plus every ViDT+ component (EPFF,
# IoU-aware loss, token labels, UQR mask vectors).
# Token labelling reserves logit column 0 for objectness, so the 4 classes use columns 1..4.
_base_ = './vidt_swin-pico.py'

model = dict(
    neck=dict(fusion=dict(type='EPFF'), token_label=dict(num_classes=5)),
    bbox_head=dict(
        type='ViDTPlusHead',
        num_classes=5,
        class_logit_indices=[1, 2, 3, 4],
        loss_iou_aware=dict(type='IoUAwareLoss', loss_weight=2.0),
        vector_cfg=dict(num_coeffs=256, mask_size=128, hidden_dims=64),
        loss_vector=dict(type='L1Loss', loss_weight=3.0),
        loss_token=dict(type='TokenLabelLoss', focal_weight=2.0, dice_weight=2.0)))
