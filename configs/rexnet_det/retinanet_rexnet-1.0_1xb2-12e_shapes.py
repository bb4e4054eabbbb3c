# Small end-to-end example on the bundled synthetic shapes dataset (CPU friendly):
#   python tools/dataset_converters/make_shapes.py --out data/shapes \
#       --num-train 300 --num-val 60 --seed 0
#   python tools/train.py configs/rexnet_det/retinanet_rexnet-1.0_1xb2-12e_shapes.py
# ReXNet 1.0x from scratch; BatchNorm trains (batch 2), strides 8/16/32 -> FPN P3-P7.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/shapes_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone=dict(_delete_=True, type='ReXNet', arch='1.0', out_indices=(2, 4, 5)),
             neck=dict(in_channels=[61, 128, 185],
                       out_channels=64,
                       start_level=0,
                       add_extra_convs='on_input',
                       num_outs=5),
             bbox_head=dict(num_classes=4, in_channels=64, feat_channels=64, stacked_convs=2))

optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-4),
                     clip_grad=dict(max_norm=10.0))
