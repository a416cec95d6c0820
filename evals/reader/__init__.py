"""The project's own reader: a cross-encoder fine-tuned on lay and near-topic questions.

`python -m evals.reader` (`make reader`) rebuilds it: float weights from the bundled int8
ms-marco model (`base`), labelled pairs about documents nobody here wrote (`data`), fine-tuning
on this CPU (`train`), int8 ONNX with its sha256 (`export`) and the held-out report (`report`).
"""
