# The `make demo` schedule: ./vidt_cpu_40e.py shortened to 9 epochs of a large, freshly generated
# training split (each image seen 9 times rather than a small split seen 40 times: the variety,
# not the repetition, is what a from-scratch DETR needs), at lr 5e-4 (1e-3 is less stable at
# 8 images per step), validated after every epoch for the learning curves; the cosine decays per
# iteration. 9 epochs fill the demo's 12-minute budget on 2 CPU cores in float32 (bf16 autocast
# does not speed up a model this small: see the top-level README). Seeded, so that a rerun
# trains the same model (up to the thread count's rounding).
_base_ = './vidt_cpu_40e.py'

max_epochs = 9
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True)
]
default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
