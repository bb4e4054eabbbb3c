# The `make demo-plus` schedule: ./vidt_cpu_9e.py in 6 epochs (a ViDT+ step, with its masks and
# token labels, costs about 1.5 ViDT steps on a CPU).
_base_ = './vidt_cpu_9e.py'

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
