"""Image classification: a small CNN on scikit-learn's digits, ResNet-18 and ViT on CIFAR-10."""
