#!/usr/bin/env bash
# A LLaMA-Factory 0.9.5 environment for tests/trainers/test_llamafactory.py: VENV (default .venv-lf).
#
# LLaMA-Factory pins datasets<=4.0.0 and mixer needs datasets>=5, so it gets a venv of its own.
# It declares torchaudio and torchvision, which have no build for torch 2.13 and would make pip
# fetch a multi-GB CUDA torch; so LLaMA-Factory goes in without its dependencies (--no-deps), then
# the ones it declares, within its own version ranges, except torchaudio/torchvision and the web
# UI/API/hub extras (gradio, fastapi, uvicorn, sse-starlette, modelscope, hf-transfer), none of
# which its data loading imports. torch==2.13.0 is the CPU wheel on this machine's disk.
set -euo pipefail
VENV="${1:-.venv-lf}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet torch==2.13.0
"$VENV/bin/python" -m pip install --quiet --no-deps llamafactory==0.9.5
"$VENV/bin/python" -m pip install --quiet torch==2.13.0 \
    "datasets>=2.16,<=4.0.0" "transformers>=4.55,<=5.6.0,!=4.57.0" "accelerate>=1.3,<=1.11.0" \
    "peft>=0.18,<=0.18.1" "trl>=0.18,<=0.24.0" "torchdata>=0.10,<=0.11.0" "tyro<0.9" "av>=10,<=16.0.0" \
    einops fire "matplotlib>=3.7" numpy omegaconf packaging pandas protobuf pydantic pyyaml safetensors \
    scipy sentencepiece tiktoken
