# Decoding-layer drop (ViDT paper Sec. 3.3, official README "+ decoding-layer drop"): the ViDT Swin-nano model with
# its last 2 of 6 decoder layers removed, for faster inference. Make its checkpoint from a full
# (e.g. distilled) one, official or mmvidt:
#   python tools/model_converters/vidt_drop_decoder_layers.py FULL.pth DROPPED.pth --num-layers 4
_base_ = '../vidt/vidt_swin-nano_8xb2-50e_coco.py'
model = dict(neck=dict(decoder=dict(num_layers=4)))
