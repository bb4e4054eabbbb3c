# The `simple` preset of the bundled shapes dataset (square 112-144 px images, plain backgrounds,
# about 2 upright, non-overlapping objects per image, each wholly inside it), boxes only: the
# `make demo` data (mmvidt/datasets/shapes.py describes the presets). Generate it first:
#   python tools/dataset_converters/make_shapes.py --preset simple --out data/shapes_simple \
#       --num-train 2400 --num-val 100 --seed 0
# Images are resized to 112 x 112, where every Swin-RAM stage's patch map tiles into whole 7 x 7
# windows (28, 14, 7 patches per side) and a batch needs no padding.
_base_ = './shapes_detection.py'

data_root = 'data/shapes_simple/'
image_size = 112
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
