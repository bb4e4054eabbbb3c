# ViDT+ with a Swin-RAM body, full training model: the detection layout of ./vidt-plus_swin-ram.py
# plus the IoU-aware branch and loss, token labelling of the decoder memory and UQR mask vectors
# (256 zigzag DCT coefficients of 128x128 box masks) decoded into instance masks at inference.
# Needs instance masks in the training data (token labels and mask vectors are built from them).
_base_ = './vidt-plus_swin-ram.py'

model = dict(
    neck=dict(token_label=dict(num_classes=91)),
    bbox_head=dict(
        type='ViDTPlusHead',
        # official: IoU target not detached (detach_target=True stops its gradient)
        loss_iou_aware=dict(type='IoUAwareLoss', loss_weight=2.0, detach_target=False),
        vector_cfg=dict(num_coeffs=256, mask_size=128, hidden_dims=256),
        loss_vector=dict(type='L1Loss', loss_weight=3.0),
        vector_start_level=0,
        loss_token=dict(type='TokenLabelLoss', focal_weight=2.0, dice_weight=2.0)))
