"""flowrt.export: ONNX export of the flow and its verification."""
