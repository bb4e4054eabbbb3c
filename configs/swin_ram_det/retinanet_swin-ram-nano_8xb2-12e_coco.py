# RetinaNet with the Swin-nano RAM body of ViDT as a plain backbone: its four levels (96/192/384/
# 256 channels at strides 8/16/32/64) -> FPN P3-P7 (one extra level), the anchor strides 8..128
# of the base config; AdamW for the transformer body.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', '../_base_/mmvidt_in_mmdet.py']
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)
# The Swin-RAM body's [DET] token is unused by this detector: DDP must tolerate it.
find_unused_parameters = True

model = dict(backbone={{_base_.mmdet_backbones.swin_ram_nano}},
             neck=dict(in_channels=[96, 192, 384, 256],
                       start_level=0,
                       add_extra_convs='on_input',
                       num_outs=5))
optim_wrapper = {{_base_.transformer_optim_wrapper}}
