"""Building blocks shared by the StackGAN networks and initialisation per the official code."""

from __future__ import annotations

from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)


def conv1x1(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, 1, 0, bias=bias)


def down4x4(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 4, 2, 1, bias=bias)


def lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


def up_block(cin: int, cout: int) -> nn.Sequential:
    """Nearest ×2 upsampling, 3×3 conv, BN, ReLU (both official code bases)."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(cin, cout),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """3×3 conv BN ReLU 3×3 conv BN, added to the input, then ReLU (Stage-II G)."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels),
                                   nn.ReLU(inplace=True), conv3x3(channels, channels),
                                   nn.BatchNorm2d(channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.block(x) + x)


class BottleneckResidual(nn.Module):
    """The TensorFlow code's residual unit: ``y = main(x)``, then ``act(y + branch(y))`` where the
    branch is 1×1 (``mid``) BN act, 3×3 (``mid``) BN act, 3×3 (``cout``) BN."""

    def __init__(self, main: nn.Module, mid: int, cout: int, leaky: bool, bias: bool = False):
        super().__init__()

        def act() -> nn.Module:
            return nn.LeakyReLU(0.2, inplace=True) if leaky else nn.ReLU(inplace=True)

        self.main = main
        self.branch = nn.Sequential(
            conv1x1(cout, mid, bias), nn.BatchNorm2d(mid), act(),
            conv3x3(mid, mid, bias=bias), nn.BatchNorm2d(mid), act(),
            conv3x3(mid, cout, bias=bias), nn.BatchNorm2d(cout))
        self.act = act()

    def forward(self, x):
        y = self.main(x)
        return self.act(y + self.branch(y))


def init_weights(module: nn.Module, truncated_convs: bool = False, linears: bool = True,
                 zero_conv_bias: bool = False) -> None:
    """Conv N(0, .02); BN weight N(1, .02), bias 0; Linear N(0, .02) (both official code bases).

    ``truncated_convs``: the TF code draws conv weights from a normal truncated at two standard
    deviations (misc/custom_ops.py, ``truncated_normal_initializer(stddev=0.02)``).
    ``linears=False`` keeps PyTorch's default Linear init, U(±1/√fan_in) for weight and bias,
    which is Torch7's default, used by Reed's Lua code (its init touches convs and BN only);
    ``zero_conv_bias``: that init also fills conv biases with 0 (PyTorch's default is uniform;
    StackGAN-Pytorch keeps it)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and truncated_convs:
            nn.init.trunc_normal_(m.weight, 0.0, 0.02, -0.04, 0.04)
        elif isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and zero_conv_bias and m.bias is not None:
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linears:
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
