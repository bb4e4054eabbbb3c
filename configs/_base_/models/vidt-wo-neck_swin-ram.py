# ViDT without neck (the "RAM" row of the ViDT component analysis) with a Swin-RAM body: the
# backbone's final 100 [DET] tokens -> 1x1 conv + GN -> class (91 COCO-id logits + no-object,
# softmax) and box MLPs. DETR losses: CE (no-object weight 0.1) x1, L1 x5, GIoU x2; no auxiliary
# levels. Same preprocessing and body as ./vidt_swin-ram.py (ViDTWoNeck builds the body without
# its stride-64 merge); configs choose the body as there.
_base_ = './vidt_swin-ram.py'

model = dict(
    _delete_=True,
    type='ViDTWoNeck',
    data_preprocessor={{_base_.model.data_preprocessor}},
    backbone={{_base_.model.backbone}},
    bbox_head=dict(
        type='ViDTWoNeckHead',
        num_classes=91,
        class_logit_indices='coco',
        embed_dims=256,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, bg_cls_weight=0.1,
                      class_weight=1.0, loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])))
