# Decoding-layer drop (ViDT, arXiv 2110.03921): the ViDT Swin-nano model with the last 2 of its
# 6 decoder layers removed, for faster inference. Its checkpoint is made from a full (e.g.
# distilled) one, official or mmvidt, with tools/model_converters/vidt_drop_decoder_layers.py
# (README.md here); training it from scratch uses the ViDT recipe.
_base_ = '../vidt/vidt_swin-nano_8xb2-50e_coco.py'

model = dict(neck=dict(decoder=dict(num_layers=4)))
