"""The rehearsal's chat-judge endpoint: an OpenAI-compatible server on 127.0.0.1 that serves a
reduced LLaVA of LLaMA-2's family (real LLaMA-2 tokenizer, ViT-L/14-336 geometry, random weights)
through the kit's HF backend, where the paper profile's MM-SafetyBench, SIUO and XSTest judges
talk to a GPT-4-class model (docs/rehearsal.md, "Chat judges").

    python scripts/rehearsal/judge_server.py --port 18418 --workdir runs-rehearsal/.judge-server

The server is tests/fixtures/chat_server.py, the one the chat-judge tests use (standard-library
http.server: two JSON routes). A VLM, not a text model: SIUO's protocol sends the image. Prints
"ready <base_url>" once it answers; runs until killed (SIGTERM/SIGINT).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
VISION = {"image_size": 336, "patch_size": 14, "hidden_size": 64, "intermediate_size": 128,
          "num_hidden_layers": 3, "num_attention_heads": 2}
SERVED = "rehearsal-judge"  # the model id experiments/_base/rehearsal.yaml asks for


def build_judge(workdir: Path) -> Path:
    """The served model, built once into ``workdir/llava`` (reused while that folder exists)."""
    from repro.models.llava import assemble_llava
    from repro.models.registry_tokenizer import write_tokenizer
    from repro.models.tiny import build_tiny_llm
    from repro.provenance import pins

    model = workdir / "llava"
    if (model / "config.json").is_file():
        return model
    write_tokenizer(workdir / "tokenizer", pins.load_lock(), "llama2")
    build_tiny_llm(workdir / "llm", None, seed=0, hidden_size=128, num_layers=2, num_heads=4,
                   intermediate_size=256, template="llama2", max_position_embeddings=4096,
                   family="llama2", tokenizer_dir=workdir / "tokenizer")
    assemble_llava(workdir / "llm", model, vision=dict(VISION), seed=0)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=18418)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--max-tokens", type=int, default=8, help="cap on each answer's new tokens")
    args = ap.parse_args()
    from chat_server import ChatServer

    model = build_judge(args.workdir)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with ChatServer(model, name=SERVED, served=SERVED, template="llama2", default_max_tokens=args.max_tokens,
                    max_tokens_cap=args.max_tokens, port=args.port) as server:
        print(f"ready {server.base_url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
