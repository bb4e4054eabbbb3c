# ViDT with a CoaT-Lite-tiny body with RAM (supported by the official ViDT code, no published
# results): the Swin-nano ViDT recipe with the body swapped; ImageNet weights from timm's CoaT
# release.
_base_ = '../vidt/vidt_swin-nano_8xb2-50e_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='CoaTLiteRAM',
        arch='tiny',
        det_token_num=100,
        pos_dim=256,
        cross_indices=(3, ),
        init_cfg={{_base_.imagenet_pretrained.coat_lite_tiny}}))
