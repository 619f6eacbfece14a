"""Baselines (GAN-INT-CLS family) and ablation variants on the StackGAN interfaces."""
