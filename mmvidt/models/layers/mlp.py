"""The 3-layer perceptron of ViDT's prediction branches."""
from torch import nn


def mlp(in_channels: int, hidden_channels: int, out_channels: int) -> nn.Sequential:
    """``Linear, ReLU, Linear, ReLU, Linear`` (the official ``MLP(in, hidden, out, 3)``; its
    Linear layers sit at Sequential indices 0, 2, 4)."""
    return nn.Sequential(nn.Linear(in_channels, hidden_channels), nn.ReLU(),
                         nn.Linear(hidden_channels, hidden_channels), nn.ReLU(),
                         nn.Linear(hidden_channels, out_channels))
