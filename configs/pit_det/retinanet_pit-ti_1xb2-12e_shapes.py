# Small end-to-end example on the bundled synthetic shapes dataset (CPU friendly):
#   python tools/dataset_converters/make_shapes.py --out data/shapes \
#       --num-train 300 --num-val 60 --seed 0
#   python tools/train.py configs/pit_det/retinanet_pit-ti_1xb2-12e_shapes.py
# PiT-Ti from scratch (no pretrained weights), three stage maps (64/128/256 ch, strides 8/16/32).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    '../_base_/datasets/shapes_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

model = dict(backbone=dict(_delete_=True,
                           type='PiT',
                           arch='ti',
                           img_size=224,
                           out_type='featmap',
                           out_indices=(0, 1, 2),
                           final_norm=False,
                           featmap_norm=True),
             neck=dict(in_channels=[64, 128, 256],
                       out_channels=64,
                       start_level=0,
                       add_extra_convs='on_input',
                       num_outs=5),
             bbox_head=dict(num_classes=4, in_channels=64, feat_channels=64, stacked_convs=2))

optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=2e-4, weight_decay=0.05),
                     clip_grad=dict(max_norm=10.0))
