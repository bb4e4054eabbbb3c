# ViDT without neck with Swin-nano (VIDT.md §1.10; README "RAM only" row): the backbone's final
# 100 [DET] tokens -> 1x1 conv + GN -> class (91 COCO-id logits + no-object, softmax) and box
# MLPs. DETR losses: CE (no-object weight 0.1) x1, L1 x5, GIoU x2; no auxiliary levels.
# Needs custom_imports=dict(imports=['mmvidt']) (set by ../datasets/coco_detection_vidt.py).
find_unused_parameters = True

model = dict(
    type='ViDTWoNeck',
    data_preprocessor=dict(
        type='ViDTDataPreprocessor',  # mmdet's, refusing NaN / Inf images (check_finite=False: off)
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=1),
    backbone=dict(
        type='SwinRAM',
        arch='nano',
        det_token_num=100,
        pos_dim=256,
        cross_indices=(3, ),
        with_last_merge=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/naver-ai/vidt/releases/download/v0.1-swin/'
            'swin_nano_patch4_window7_224.pth')),
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
