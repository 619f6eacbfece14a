"""A plain StackGAN training step, the yardstick for our step's speed (issue 30).

Written the straightforward way from the published architecture and update of the PyTorch
variant (the paper's §3 and the StackGAN-Pytorch layout as summarised in the shared reference
notes), not from this project's model code and not copied from anywhere: eager fp32, contiguous
tensors, sigmoid + BCELoss, one D step (the wrong pairs scored on the real images' features,
shifted by one) then one G step reusing the fake images, Adam 2e-4 / (0.5, 0.999). Its
parameter counts equal the official model code's (checked by the benchmark), so both steps do
the same arithmetic.
"""

from __future__ import annotations

import torch
from torch import nn

Z_DIM, TEXT_DIM, C_DIM, NGF, NDF = 100, 1024, 128, 128, 64


def conv3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=False)


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3(cin, cout),
                         nn.BatchNorm2d(cout), nn.ReLU(True))


def down(cin: int, cout: int, bn: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    return layers + [nn.LeakyReLU(0.2, True)]


class CondAug(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(TEXT_DIM, 2 * C_DIM)
        self.relu = nn.ReLU()

    def forward(self, text):
        h = self.relu(self.fc(text))
        mu, logvar = h[:, :C_DIM], h[:, C_DIM:]
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar), mu, logvar


class StageOneG(nn.Module):
    def __init__(self):
        super().__init__()
        self.ca = CondAug()
        g = NGF * 8
        self.fc = nn.Sequential(nn.Linear(Z_DIM + C_DIM, g * 16, bias=False), nn.BatchNorm1d(g * 16),
                                nn.ReLU(True))
        self.ups = nn.Sequential(up_block(g, g // 2), up_block(g // 2, g // 4), up_block(g // 4, g // 8),
                                 up_block(g // 8, g // 16))
        self.out = nn.Sequential(conv3(g // 16, 3), nn.Tanh())

    def forward(self, text, z):
        c, mu, logvar = self.ca(text)
        h = self.fc(torch.cat([z, c], 1)).view(-1, NGF * 8, 4, 4)
        return self.out(self.ups(h)), mu, logvar


class CondHead(nn.Module):
    def __init__(self, uncond: bool):
        super().__init__()
        self.joint = nn.Sequential(conv3(NDF * 8 + C_DIM, NDF * 8), nn.BatchNorm2d(NDF * 8),
                                   nn.LeakyReLU(0.2, True))
        self.logit = nn.Sequential(nn.Conv2d(NDF * 8, 1, 4, 4), nn.Sigmoid())
        self.uncond = nn.Sequential(nn.Conv2d(NDF * 8, 1, 4, 4), nn.Sigmoid()) if uncond else None

    def forward(self, h, c):
        tiled = c[:, :, None, None].expand(-1, -1, 4, 4)
        return self.logit(self.joint(torch.cat([h, tiled], 1))).view(-1)


class StageOneD(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Sequential(*down(3, NDF, bn=False), *down(NDF, NDF * 2), *down(NDF * 2, NDF * 4),
                                    *down(NDF * 4, NDF * 8))
        self.head = CondHead(uncond=False)


class Residual(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(conv3(ch, ch), nn.BatchNorm2d(ch), nn.ReLU(True), conv3(ch, ch),
                                  nn.BatchNorm2d(ch))
        self.relu = nn.ReLU(True)

    def forward(self, x):
        return self.relu(x + self.body(x))


class StageTwoG(nn.Module):
    def __init__(self, stage1: StageOneG):
        super().__init__()
        self.stage1 = stage1
        for p in stage1.parameters():
            p.requires_grad_(False)
        self.ca = CondAug()
        self.encode = nn.Sequential(conv3(3, NGF), nn.ReLU(True),
                                    nn.Conv2d(NGF, NGF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 2),
                                    nn.ReLU(True),
                                    nn.Conv2d(NGF * 2, NGF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF * 4),
                                    nn.ReLU(True))
        self.joint = nn.Sequential(conv3(NGF * 4 + C_DIM, NGF * 4), nn.BatchNorm2d(NGF * 4), nn.ReLU(True))
        self.residual = nn.Sequential(*[Residual(NGF * 4) for _ in range(4)])
        self.ups = nn.Sequential(up_block(NGF * 4, NGF * 2), up_block(NGF * 2, NGF), up_block(NGF, NGF // 2),
                                 up_block(NGF // 2, NGF // 4))
        self.out = nn.Sequential(conv3(NGF // 4, 3), nn.Tanh())

    def forward(self, text, z):
        low, _, _ = self.stage1(text, z)  # frozen, BatchNorm in train mode as in both code bases
        low = low.detach()
        c, mu, logvar = self.ca(text)
        h = self.encode(low)
        h = self.joint(torch.cat([h, c[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])], 1))
        return self.out(self.ups(self.residual(h))), mu, logvar


class StageTwoD(nn.Module):
    def __init__(self):
        super().__init__()
        self.encode = nn.Sequential(
            *down(3, NDF, bn=False), *down(NDF, NDF * 2), *down(NDF * 2, NDF * 4), *down(NDF * 4, NDF * 8),
            *down(NDF * 8, NDF * 16), *down(NDF * 16, NDF * 32),
            conv3(NDF * 32, NDF * 16), nn.BatchNorm2d(NDF * 16), nn.LeakyReLU(0.2, True),
            conv3(NDF * 16, NDF * 8), nn.BatchNorm2d(NDF * 8), nn.LeakyReLU(0.2, True))
        self.head = CondHead(uncond=True)


def init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class ReferenceStep:
    """One training step of Stage-I (``stage=1``, 64 px) or Stage-II (``stage=2``, 256 px)."""

    def __init__(self, stage: int):
        self.stage = stage
        self.netG = StageOneG() if stage == 1 else StageTwoG(StageOneG())
        self.netD = StageOneD() if stage == 1 else StageTwoD()
        init_weights(self.netG)
        init_weights(self.netD)
        self.optG = torch.optim.Adam([p for p in self.netG.parameters() if p.requires_grad], 2e-4,
                                     betas=(0.5, 0.999))
        self.optD = torch.optim.Adam(self.netD.parameters(), 2e-4, betas=(0.5, 0.999))
        self.bce = nn.BCELoss()

    def _d(self, images, c):
        return self._heads(self.netD.encode(images), c)

    def _heads(self, h, c):
        cond = self.netD.head(h, c)
        uncond = self.netD.head.uncond(h).view(-1) if self.netD.head.uncond is not None else None
        return cond, uncond

    def __call__(self, real, text) -> None:
        b = real.shape[0]
        ones, zeros = torch.ones(b), torch.zeros(b)
        fake, mu, logvar = self.netG(text, torch.randn(b, Z_DIM))
        c = mu.detach()
        self.optD.zero_grad()
        h_real = self.netD.encode(real)
        real_c, real_u = self._heads(h_real, c)
        wrong_c = self.netD.head(h_real[:-1], c[1:])  # the real features, shifted by one
        fake_c, fake_u = self._d(fake.detach(), c)
        loss_real = self.bce(real_c, ones)
        loss_fake = self.bce(fake_c, zeros)
        if real_u is not None:
            loss_real = (loss_real + self.bce(real_u, ones)) / 2
            loss_fake = (loss_fake + self.bce(fake_u, zeros)) / 2
        loss_d = loss_real + (self.bce(wrong_c, zeros[1:]) + loss_fake) / 2
        loss_d.backward()
        self.optD.step()
        self.optG.zero_grad()
        fake_c, fake_u = self._d(fake, c)
        loss_g = self.bce(fake_c, ones) + (self.bce(fake_u, ones) if fake_u is not None else 0)
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).mean()
        (loss_g + 2.0 * kl).backward()
        self.optG.step()
