"""Pretrained checkpoints of the zoo: ``index.yaml`` and the safetensors files it names."""
