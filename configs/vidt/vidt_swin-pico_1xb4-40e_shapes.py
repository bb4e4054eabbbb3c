# The pico ViDT (../_base_/models/vidt_swin-pico.py) trained from scratch on the `cluttered`
# shapes preset (160-320 px images on textured backgrounds, many small and occluded objects) at
# 160 px, 40 epochs on a CPU: a hard benchmark that this small model does not learn well in that
# time (bbox mAP ~0.02, the top-level README). The `make demo` config, on the `simple` preset,
# is ./vidt_swin-pico_1xb8-9e_shapes-simple.py.
_base_ = [
    '../_base_/models/vidt_swin-pico.py', '../_base_/datasets/shapes_detection.py',
    '../_base_/schedules/vidt_cpu_40e.py'
]
custom_imports = dict(imports=['mmvidt'], allow_failed_imports=False)

image_size = 160
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
