"""StackGAN models (conditioning augmentation, Stage-I, Stage-II), losses and train step."""
