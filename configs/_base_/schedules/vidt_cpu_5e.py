# The `make demo-plus` schedule: ./vidt_cpu_8e.py in 5 epochs (a ViDT+ step costs about twice a
# ViDT step on a CPU).
_base_ = './vidt_cpu_8e.py'

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
