"""The engines a model plugin runs its forward passes on: torch's inference layers, OpenVINO, ONNX Runtime
and llama.cpp, the export each needs, and the measured choice among them. Not plugins: the model plugins in
``harness.plugins.models`` call them."""
