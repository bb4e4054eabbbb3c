# The "optimized" ViDT+ of the official ViDT+ README (row 8 of its component analysis): ViDT+
# Swin-nano trained 150 epochs, then its last 2 of 6 decoder layers dropped. Box evaluation
# layout (EPFF, 300 [DET] tokens); make the checkpoint as described in README.md here.
_base_ = '../vidt_plus/vidt-plus_swin-nano_8xb2-150e_coco.py'

model = dict(neck=dict(decoder=dict(num_layers=4)))
