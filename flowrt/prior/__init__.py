"""The flow prior: its torch definition, model folders, and the torch / ONNX Runtime backends."""
