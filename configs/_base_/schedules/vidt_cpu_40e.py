# Training from scratch on a CPU (the bundled shapes examples), 40 epochs: AdamW at lr 1e-3 (ten
# times the official 1e-4: no ImageNet weights), the official gradient clipping and no weight
# decay on the [DET] tokens and their position embeddings, 100 iterations of linear warm-up,
# then a cosine to 1e-5 over the epochs. torch's fused AdamW: on a CPU the default AdamW updates
# the ~200 parameter tensors one by one, about 6 % of a pico training step; fused, a fifth of that.
# It carries mmdet's default runtime, with the hooks of CPU training on top (a schedule file
# cannot leave default_hooks to a sibling base). Configs with another length set max_epochs,
# train_cfg.max_epochs and param_scheduler (a list: replaced whole).
_base_ = 'mmdet::_base_/default_runtime.py'

max_epochs = 40

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={
        'backbone.det_token': dict(decay_mult=0.),
        'backbone.det_pos_embed': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs)
]

default_hooks = dict(logger=dict(type='LoggerHook', interval=25),
                     checkpoint=dict(type='CheckpointHook', interval=20, max_keep_ckpts=1))
# denormal floats make from-scratch CPU training several times slower
custom_hooks = [dict(type='FlushDenormalHook')]
