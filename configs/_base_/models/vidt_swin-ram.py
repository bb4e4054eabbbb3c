# ViDT (Song et al., ICLR 2022, arXiv 2110.03921) with a Swin-RAM body: Swin whose attention is
# the Reconfigured Attention Module, carrying 100 [DET] tokens; the encoder-free deformable neck
# (6 decoder layers, iterative box refinement, auxiliary losses at every level); the 91 official
# logits (COCO category ids). The body defaults to Swin-nano with its ImageNet weights; configs
# choose another with backbone=dict(arch=..., init_cfg={{_base_.imagenet_pretrained.swin_<arch>}}).
# Needs custom_imports=dict(imports=['mmvidt']) (set by ../datasets/coco_detection_vidt.py).
_base_ = '../imagenet_pretrained.py'

# official checkpoints keep parameters no forward uses: DDP must tolerate them
find_unused_parameters = True

model = dict(
    type='ViDT',
    with_box_refine=True,
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
        init_cfg={{_base_.imagenet_pretrained.swin_nano}}),
    neck=dict(
        type='ViDTNeck',
        embed_dims=256,
        decoder=dict(
            num_layers=6,
            layer_cfg=dict(num_heads=8, num_points=4, feedforward_channels=1024,
                           dropout=0.1))),
    bbox_head=dict(
        type='ViDTHead',
        num_classes=91,
        # mmdet label -> official logit column (raw COCO category id): the head keeps the
        # official 91 logits so converted official checkpoints evaluate like the original
        class_logit_indices='coco',
        embed_dims=256,
        with_aux_loss=True,
        sync_cls_avg_factor=True,
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=2.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=2.0, eps=1e-8),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=100))
