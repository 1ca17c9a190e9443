"""l2l: learning to learn by gradient descent by gradient descent, in PyTorch."""
