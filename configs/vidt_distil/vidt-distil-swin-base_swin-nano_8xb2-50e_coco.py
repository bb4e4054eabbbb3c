# ViDT Swin-nano trained with token-matching distillation (ViDT, arXiv 2110.03921) from a ViDT
# Swin-base trained 50 epochs, coefficient 4.0: the "+ distil" row of the official README.
# The teacher (frozen, eval mode, not saved in checkpoints) is built from its config and loaded
# from an mmvidt checkpoint; convert the official release once (see README.md here).
_base_ = '../vidt/vidt_swin-nano_8xb2-50e_coco.py'

model = dict(
    type='ViDTDistiller',
    teacher_config='{{fileDirname}}/../vidt/vidt_swin-base_8xb2-50e_coco.py',
    teacher_ckpt='checkpoints/vidt_swin-base_8xb2-50e_coco.pth',
    distil_loss=dict(type='TokenMatchingLoss', loss_weight=4.0))
