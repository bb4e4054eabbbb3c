# `make demo-plus`: the pico ViDT+ (../_base_/models/vidt-plus_swin-pico.py) with the recipe of
# ../vidt/vidt_swin-pico_1xb8-9e_shapes-simple.py (20 [DET] tokens, focal alpha 0.5, gamma 1:
# why there), in 6 epochs, on the `simple` shapes preset with instance masks, evaluated with
# bbox and segm mAP. The mask-vector MLP gets the official width (256 hidden channels: 256 DCT
# coefficients from 64-channel queries through a 64-wide MLP were the bottleneck of the mask
# quality) and twice the official weight of its L1 loss, so that the masks, not only the boxes,
# are learnt in the short schedule. Measured numbers: the top-level README.
_base_ = [
    '../_base_/models/vidt-plus_swin-pico.py', '../_base_/datasets/shapes_simple_instance.py',
    '../_base_/schedules/vidt_cpu_6e.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(
    backbone=dict(det_token_num=20),
    bbox_head=dict(loss_cls=dict(alpha=0.5, gamma=1.0), vector_cfg=dict(hidden_dims=256),
                   loss_vector=dict(loss_weight=6.0)),
    test_cfg=dict(max_per_img=20))
