"""Trained torch and Keras models, and raw weights, to ONNX graphs with one LSTM node per layer."""
