"""One ONNX model on many backends behind one small interface (see runtimes.base)."""
