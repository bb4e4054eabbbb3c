# ViDT shrunk to train from scratch on a CPU (the bundled shapes examples): the architecture of
# ./vidt_swin-ram.py with a 32-dim Swin-RAM of 1-1-2-1 blocks, 50 [DET] tokens cross-attending
# to the patches in the last two stages, a 64-wide neck of 3 decoder layers and a 4-class head.
# No ImageNet weights (none can be downloaded on such a machine): init_cfg=None.
_base_ = './vidt_swin-ram.py'

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
        det_token_num=50,
        cross_indices=(2, 3),
        pos_dim=64,
        last_merge_channels=128,
        init_cfg=None),
    neck=dict(
        embed_dims=64,
        decoder=dict(
            num_layers=3,
            layer_cfg=dict(num_heads=4, num_points=4, feedforward_channels=256, dropout=0.0))),
    bbox_head=dict(num_classes=4, class_logit_indices=None, embed_dims=64),
    test_cfg=dict(max_per_img=50))
