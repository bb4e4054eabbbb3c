# The official ViDT optimisation for 16 images per iteration (8 GPUs x 2), 50 epochs: AdamW at
# lr 1e-4 for every group; the constructor reproduces the official weight-decay groups.
# The 150-epoch configs inherit their 50-epoch sibling and set max_epochs, train_cfg.max_epochs and
# param_scheduler's T_max / end to 150 (a dict, so that those two keys merge).
max_epochs = 50

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    constructor='ViDTOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4),
    # Global L2 norm over all trainable parameters, as the official torch clip_grad_norm_.
    clip_grad=dict(max_norm=0.1, norm_type=2))

# The official scheduler is stepped with the finished epoch index, so epochs 0 and 1 both run at
# the peak lr and the cosine starts one epoch late: lr(k >= 1) = eta_min + (lr - eta_min) / 2 *
# (1 + cos(pi * (k - 1) / T)). Epoch 0 keeps the optimizer's lr (no scheduler is active there).
param_scheduler = dict(type='CosineAnnealingLR',
                       T_max=max_epochs,
                       eta_min=1e-7,
                       begin=1,
                       end=max_epochs,
                       by_epoch=True)

# The official recipe uses 8 GPUs x 2 images; enable with tools/train.py --auto-scale-lr.
auto_scale_lr = dict(enable=False, base_batch_size=16)
