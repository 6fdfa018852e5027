"""ANN baselines the energy comparison (`evospike.energy.ann_baseline`, ``evospike energy``)
sets SNNs against, as torch modules. Their MACs are counted analytically in `evospike.energy`
(`resnet18_1d_macs`), and a test checks that count against the forward hooks of
`evospike.energy_torch.count_torch_ops` on these modules."""

from __future__ import annotations

from torch import nn


class _BasicBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False),
                                      nn.BatchNorm1d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.down is None else self.down(x)))


class ResNet18_1d(nn.Module):
    """ResNet-18 (He et al. 2016) with 1-D convolutions, the usual ANN baseline for ECG beats:
    a 7-tap stride-2 stem, max-pool, four stages of two basic blocks (``width`` x 1, 2, 4, 8
    channels, strides 1, 2, 2, 2), global average pool, linear classifier.
    Input ``[B, in_channels, L]``, output ``[B, n_classes]``."""

    def __init__(self, in_channels: int = 1, n_classes: int = 5, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, width, 7, stride=2, padding=3,
                                            bias=False),
                                  nn.BatchNorm1d(width), nn.ReLU(),
                                  nn.MaxPool1d(3, stride=2, padding=1))
        blocks, c = [], width
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            blocks += [_BasicBlock1d(c, width * mult, stride),
                       _BasicBlock1d(width * mult, width * mult, 1)]
            c = width * mult
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(-1))
