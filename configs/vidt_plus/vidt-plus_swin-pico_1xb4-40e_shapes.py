# The pico ViDT+ (../_base_/models/vidt-plus_swin-pico.py) on the `cluttered` shapes preset with
# instance masks, 160 px, 40 epochs on a CPU: the ViDT+ counterpart of
# ../vidt/vidt_swin-pico_1xb4-40e_shapes.py, evaluated with bbox and segm mAP. The `make
# demo-plus` config, on the `simple` preset, is ./vidt-plus_swin-pico_1xb8-6e_shapes-simple.py.
_base_ = [
    '../_base_/models/vidt-plus_swin-pico.py', '../_base_/datasets/shapes_instance.py',
    '../_base_/schedules/vidt_cpu_40e.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

image_size = 160
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
