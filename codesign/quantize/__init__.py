"""Bring your own trained model: per-layer mixed precision for an ONNX classifier, measured in
onnxruntime and costed on a target (``codesign quantize``).

One job per module: ``dataset`` (the user's data and its split), ``model`` (the float model: its
input, output and quantizable layers), ``session`` (running a model in onnxruntime),
``calibrate`` (activation ranges), ``writer`` (a bit map -> a QDQ model), ``accuracy``,
``costing`` (the target's cost model on the float model's Workload), ``sensitivity``,
``bitsearch`` (optuna over bit maps), ``hardware`` (a template's config for the chosen map),
``artifacts``, ``pipeline`` (the whole flow) and ``api`` (the Python entry for a torch module).
"""
