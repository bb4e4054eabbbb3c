"""Conversion of official checkpoints (ViDT, PiT, ReXNet, timm) to mmvidt's key layout."""
