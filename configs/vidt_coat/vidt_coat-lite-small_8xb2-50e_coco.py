# ViDT with a CoaT-Lite-small body with RAM: the CoaT-Lite-tiny config with the small body.
_base_ = './vidt_coat-lite-tiny_8xb2-50e_coco.py'

model = dict(backbone=dict(arch='small',
                           init_cfg={{_base_.imagenet_pretrained.coat_lite_small}}))
