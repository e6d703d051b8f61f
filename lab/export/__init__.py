"""What leaves the lab: PyTorch code, weights, ONNX, config and the HTML report."""
