//! Secret redaction: applied to everything nightshift records or forwards
//! (check output, evidence, notes), so tokens, passwords and keys never reach
//! memory, notifications or a model.

use std::sync::LazyLock;

use regex::Regex;

const MARK: &str = "[REDACTED]";

struct Pattern {
    re: Regex,
    /// Replacement; `$1`… keep the non-secret prefix.
    with: &'static str,
}

/// A private key's armour line: PEM (`RSA`, `EC`, `OPENSSH`, `ENCRYPTED`, …)
/// and PGP (`PGP PRIVATE KEY BLOCK`).
const KEY_BEGIN: &str = r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----";
const KEY_END: &str = r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----";
/// What follows the armour line of a key cut short (a log line or a field
/// that ends mid-key): the armour headers (`Proc-Type:`, `DEK-Info:`,
/// PGP's `Version:`, `Comment:`), each on a line of its own, then
/// base64, one piece after another, separated by whitespace or by escaped
/// newlines (a key inside JSON). A piece is base64 of 16 characters or more,
/// a short last line ending in `=`, or PGP's `=XXXX` checksum, so ordinary
/// words after the key are left alone; a short last line without padding
/// (at most 15 characters of a key's tail) is the price of that.
const KEY_BODY: &str =
    r"(?:(?:\r?\n|\\+r\\+n|\\+n)(?:Proc-Type|DEK-Info|Version|Comment|Hash|Charset): [^\r\n\\]*)*(?:(?:\s|\\+[rnt])+(?:[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9+/]{1,15}={1,2}|=[A-Za-z0-9+/]{4}))*";

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let whole_key = format!(r"{KEY_BEGIN}[\s\S]*?{KEY_END}");
    let cut_key = format!("{KEY_BEGIN}{KEY_BODY}");
    let table: &[(&str, &str)] = &[
        // Private keys, whole blocks (also inside JSON with escaped newlines),
        // then keys cut short: only their base64 body goes with them.
        (whole_key.as_str(), "[REDACTED PRIVATE KEY]"),
        (cut_key.as_str(), "[REDACTED PRIVATE KEY]"),
        // Authorization headers and bearer tokens.
        (r"(?i)(authorization\s*[:=]\s*)(?:bearer|basic|token|digest)\s+[A-Za-z0-9._~+/=-]+", "${1}[REDACTED]"),
        (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", "${1}[REDACTED]"),
        // Cookies: the value of a `Cookie:` or `Set-Cookie:` header (after the first cookie's name).
        (r#"(?i)(\b(?:set-)?cookie["']?\s*:\s*["']?[^\s=;"']+=)[^\r\n"'\\]*"#, "${1}[REDACTED]"),
        // Discord webhooks: the token after the (public) webhook id.
        (r"(https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/[0-9]+/)[A-Za-z0-9_-]+", "${1}[REDACTED]"),
        // Passwords in URLs: scheme://user:password@host; the password may
        // hold `@` and `/`, so it runs to the last `@` before the query.
        (r#"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^\s?#"'<>]*@"#, "${1}[REDACTED]@"),
        // Passwords on command lines: `mysql -pSECRET`, `curl -u user:pass`, netrc.
        (r#"(\bmysql(?:dump|admin|import|show|slap|check|binlog)?\b[^\n]*?\s-p)(?:'[^']*'|"[^"]*"|[^\s'"]+)"#, "${1}[REDACTED]"),
        (r#"(\bcurl\b[^\n]*?\s(?:-u|--user)(?:\s+|=)?["']?[^\s:'"]+:)[^\s'"]+"#, "${1}[REDACTED]"),
        (r"(?i)(\b(?:machine\s+\S+|default)(?:\s+(?:login|account|port)\s+\S+)*\s+password\s+)\S+", "${1}[REDACTED]"),
        // Azure: storage and Service Bus connection strings, SAS signatures.
        (r"(?i)(\b(?:Account|SharedAccess)Key\s*=\s*)[A-Za-z0-9+/=]+", "${1}[REDACTED]"),
        (r"\b(sig=)[A-Za-z0-9%+/=_-]{16,}", "${1}[REDACTED]"),
        // Docker's config.json: `"auth": "<base64 of user:password>"`.
        (r#"("auth"\s*:\s*")[A-Za-z0-9+/]{12,}={0,2}""#, "${1}[REDACTED]\""),
        // An AWS secret access key next to its key id on one line (CSV, `aws configure list`).
        (r#"(?m)(\b(?:AKIA|ASIA)[0-9A-Z]{16}\b[^\n]*?[\s:=,;"'|(])[A-Za-z0-9+/]{40}([\s,;"'|)]|$)"#, "${1}[REDACTED]${2}"),
        // Cloud and SaaS token formats.
        (r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b", MARK),
        (r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b", MARK),
        (r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b", MARK),
        (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", MARK),
        (r"\bxapp-[0-9]-[A-Za-z0-9-]{10,}", MARK),
        (r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+", "https://hooks.slack.com/services/[REDACTED]"),
        (r"\bAIza[0-9A-Za-z_-]{35}\b", MARK),
        (r"\bya29\.[0-9A-Za-z_-]{20,}", MARK),
        (r"\bglpat-[0-9A-Za-z_-]{20,}", MARK),
        (r"\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}", MARK),
        (r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}", MARK),
        (r"\bnpm_[A-Za-z0-9]{36}\b", MARK),
        (r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}", MARK),
        (r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", MARK),
        (r"\bhf_[A-Za-z0-9]{30,}", MARK),
        (r"\bpypi-AgE[A-Za-z0-9_-]{50,}", MARK),
        // A PEM block, base64-encoded (as in Kubernetes Secrets and kubeconfigs).
        (r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{16,}", MARK),
        // The data of a Kubernetes Secret as JSON.
        (r#"("(?:data|stringData)"\s*:\s*)\{[^{}]*\}"#, "${1}{\"[REDACTED]\": \"\"}"),
        (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MARK),
        // key=value and key: value where the key names a secret.
        (
            r#"(?i)((?:[a-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)"#,
            "${1}[REDACTED]",
        ),
    ];
    table.iter().filter_map(|(re, with)| Regex::new(re).ok().map(|re| Pattern { re, with })).collect()
});

/// In YAML documents of `kind: Secret`, every value under `data:` or
/// `stringData:` is replaced, whatever its key is called.
fn secret_manifests(text: &str) -> Option<String> {
    if !text.contains("kind: Secret") {
        return None;
    }
    let mut out = Vec::new();
    for doc in text.split("\n---") {
        let is_secret = doc.lines().any(|l| l.trim() == "kind: Secret");
        let mut block: Option<usize> = None;
        let mut lines = Vec::new();
        for line in doc.split('\n') {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim();
            match block {
                Some(base) if !trimmed.is_empty() && indent > base => {
                    let redacted = match trimmed.split_once(':') {
                        Some((k, _)) => format!("{}{k}: {MARK}", &line[..indent]),
                        None => format!("{}{MARK}", &line[..indent]),
                    };
                    lines.push(redacted);
                    continue;
                }
                _ => block = None,
            }
            if is_secret && (trimmed == "data:" || trimmed == "stringData:") {
                block = Some(indent);
            }
            lines.push(line.to_string());
        }
        out.push(lines.join("\n"));
    }
    Some(out.join("\n---"))
}

/// Returns `text` with every secret it recognises replaced by `[REDACTED]`.
pub fn redact(text: &str) -> String {
    let manifests = secret_manifests(text);
    let mut out = match &manifests {
        Some(m) => std::borrow::Cow::Borrowed(m.as_str()),
        None => std::borrow::Cow::Borrowed(text),
    };
    for p in PATTERNS.iter() {
        if p.re.is_match(&out) {
            out = std::borrow::Cow::Owned(p.re.replace_all(&out, |c: &regex::Captures<'_>| replacement(p, c)).into_owned());
        }
    }
    out.into_owned()
}

/// One match's replacement. A value that is already the mark (text redacted once,
/// then quoted in a code span and redacted again as its note is written) stays as
/// it is, so the span's closing backticks are not taken for part of the secret.
fn replacement(p: &Pattern, c: &regex::Captures<'_>) -> String {
    let whole = c.get(0).map_or("", |m| m.as_str());
    let value = c.get(1).map_or(whole, |prefix| &whole[prefix.end() - c.get(0).map_or(0, |m| m.start())..]);
    if value.trim_end_matches('`') == MARK {
        return whole.to_string();
    }
    let mut out = String::new();
    c.expand(p.with, &mut out);
    out
}

/// Redacts every string of a JSON value in place (keys are left as they
/// are): a payload stays valid JSON however its strings change.
pub fn redact_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            let clean = redact(s);
            if clean != *s {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        Value::Object(fields) => fields.values_mut().for_each(redact_json),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacting_twice_keeps_a_code_span_closed() {
        for secret in ["token=abc123def456", "password: hunter2", "mysqldump -u root -phunter2 db"] {
            let once = crate::markdown::code(&redact(secret));
            assert_eq!(redact(&once), once, "a second redaction changed the span of {secret:?}");
            assert!(once.ends_with('`') && !once.contains("hunter2") && !once.contains("abc123"), "{once}");
        }
        // The mark is not a way around redaction: a value that only starts with it is still a secret.
        assert_eq!(redact("password=[REDACTED]hunter2"), "password=[REDACTED]");
    }

    #[test]
    fn redacts_real_formats() {
        let cases = [
            ("Authorization: Bearer abcdef0123456789abcdef", "Authorization: [REDACTED]"),
            ("curl https://admin:hunter2@db.internal:5432/x", "curl https://admin:[REDACTED]@db.internal:5432/x"),
            ("key AKIAIOSFODNN7EXAMPLE used", "key [REDACTED] used"),
            ("token ghp_0123456789abcdefghijABCDEFGHIJ0123456789", "token [REDACTED]"),
            ("slack xoxb-1234567890-abcdefghij", "slack [REDACTED]"),
            ("DB_PASSWORD=s3cr3t! next", "DB_PASSWORD=[REDACTED] next"),
            ("{\"client_secret\": \"abc123\"}", "{\"client_secret\": [REDACTED]}"),
            ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "[REDACTED PRIVATE KEY]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    /// What an ops log, a shell history or a config dump really carries.
    #[test]
    fn redacts_the_formats_of_a_real_ops_log() {
        let cases = [
            (
                "gpg export:\n-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBGVhZ3sBCADHd3nP0mQ8zvPjN5Xl2vQm0Jd8lq1Qx2vR7c9kqkTUyq8m1nq3\n=J6ro\n-----END PGP PRIVATE KEY BLOCK-----\ndone",
                "gpg export:\n[REDACTED PRIVATE KEY]\ndone",
            ),
            (
                "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
                "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey=[REDACTED];EndpointSuffix=core.windows.net",
            ),
            (
                "GET https://prodlogs.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&sig=Zx3q%2FlJm0k9yX1pL8vQeR2tUwN5sA7bC4dE6fG8hI0j%3D 403",
                "GET https://prodlogs.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-01T00:00:00Z&sig=[REDACTED] 403",
            ),
            ("machine api.github.com login deploy-bot password 9f8e7d6c5b4a", "machine api.github.com login deploy-bot password [REDACTED]"),
            ("machine registry.internal\n  login ci\n  password hunter2\n", "machine registry.internal\n  login ci\n  password [REDACTED]\n"),
            ("+ mysql -h db.internal -u app -pS3cretPw! orders < migrate.sql", "+ mysql -h db.internal -u app -p[REDACTED] orders < migrate.sql"),
            ("mysqldump --user=app --password=S3cretPw! orders", "mysqldump --user=app --password=[REDACTED] orders"),
            ("curl -sf -u admin:Adm1nPass https://grafana.internal/api/health", "curl -sf -u admin:[REDACTED] https://grafana.internal/api/health"),
            ("curl --user 'ci:tok3n-value' https://nexus.internal/", "curl --user 'ci:[REDACTED]' https://nexus.internal/"),
            ("> Cookie: session=eyJhbGciOi9xq; csrftoken=a81f", "> Cookie: session=[REDACTED]"),
            ("< Set-Cookie: sid=s%3AkqW0LJ2b.8Yw; Path=/; HttpOnly", "< Set-Cookie: sid=[REDACTED]"),
            (r#"{"headers": {"Cookie": "grafana_session=83c2b1f0"}}"#, r#"{"headers": {"Cookie": "grafana_session=[REDACTED]"}}"#),
            ("VAULT_TOKEN hvs.CAESIJ3kZ9y7xQnVbL0mR2sT4uW6yA8cE0gI2kM4oQ6sU8w", "VAULT_TOKEN [REDACTED]"),
            ("batch hvb.AAAAAQJ3kZ9y7xQnVbL0mR2sT4uW6yA8cE0g recovery hvr.AAAAAQJ3kZ9y7xQnVbL0mR2sT4u", "batch [REDACTED] recovery [REDACTED]"),
            ("sendgrid key 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 rejected", "sendgrid key [REDACTED] rejected"),
            ("HF_HUB 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 pulled", "HF_HUB [REDACTED] pulled"),
            ("twine upload -u __token__ -p pypi-AgEIcHlwaS5vcmcCJDQ1ZjY3ODkwLWFiY2QtNDEyMy1iNTY3LTg5MGFiY2RlZjAxMgACKlszLCI", "twine upload -u __token__ -p [REDACTED]"),
            (
                "POST https://discord.com/api/webhooks/1187263540098765432/Xk9_q2LmN4pR7sT0vW3yZ6aB8cD1eF5gH9iJ2kL5mN8oP1qR4sT7uV0wX3yZ6 204",
                "POST https://discord.com/api/webhooks/1187263540098765432/[REDACTED] 204",
            ),
            ("https://discordapp.com/api/webhooks/42/abcDEF_123-xyz", "https://discordapp.com/api/webhooks/42/[REDACTED]"),
            (r#"{"auths": {"registry.internal": {"auth": "Y2k6aHVudGVyMmh1bnRlcjI="}}}"#, r#"{"auths": {"registry.internal": {"auth": "[REDACTED]"}}}"#),
            ("ssh-keygen -p -f id_ed25519 passphrase=correct-horse-battery", "ssh-keygen -p -f id_ed25519 passphrase=[REDACTED]"),
            ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [REDACTED]"),
            ("creds: AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY (rotated)", "creds: [REDACTED] [REDACTED] (rotated)"),
            ("deploy,AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "deploy,[REDACTED],[REDACTED]"),
            ("dial postgres://app:p@ss/w0rd@db.internal:5432/orders failed", "dial postgres://app:[REDACTED]@db.internal:5432/orders failed"),
            ("amqp://guest:gu@st@rabbit:5672", "amqp://guest:[REDACTED]@rabbit:5672"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    /// A key cut short (a truncated log, a field of its own) loses its base64
    /// body, and nothing after it.
    #[test]
    fn a_key_cut_short_takes_only_its_body() {
        let cases = [
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\nerror: connection reset\nretrying in 5s",
                "[REDACTED PRIVATE KEY]\nerror: connection reset\nretrying in 5s",
            ),
            (
                r#"{"service": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n", "severity": "critical"}"#,
                r#"{"service": "[REDACTED PRIVATE KEY]\n", "severity": "critical"}"#,
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,D4B3A7C9E2F1A0B8\n\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\nAwEHoUQDQgAEPR3tU2Ej\n--- end of dump",
                "[REDACTED PRIVATE KEY]\n--- end of dump",
            ),
            ("-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ AAAA== Severity: critical, Status: open", "[REDACTED PRIVATE KEY] Severity: critical, Status: open"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn every_string_of_a_json_payload_is_redacted_and_it_stays_json() {
        let mut v = serde_json::json!({"message": "GET https://u:hunter2@api/x", "n": 3, "nested": [{"auth": "Bearer abcdefgh12345678"}], "token": null});
        super::redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"message": "GET https://u:[REDACTED]@api/x", "n": 3, "nested": [{"auth": "Bearer [REDACTED]"}], "token": null}));
    }

    #[test]
    fn kubernetes_secret_data_is_redacted_whatever_the_keys() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  username: YWRtaW4=\n  conn.string: cG9zdGdyZXM6Ly8=\ntype: Opaque\n---\nkind: ConfigMap\ndata:\n  mode: fast\n";
        let out = redact(yaml);
        assert!(!out.contains("YWRtaW4=") && !out.contains("cG9zdGdyZXM6Ly8="), "{out}");
        assert!(out.contains("  username: [REDACTED]") && out.contains("type: Opaque") && out.contains("  mode: fast"), "{out}");
        let json = r#"{"apiVersion":"v1","kind":"Secret","data":{"token":"c2VjcmV0","ca.crt":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"}}"#;
        let out = redact(json);
        assert!(!out.contains("c2VjcmV0") && out.contains(r#""data":{"[REDACTED]": ""}"#), "{out}");
        assert_eq!(redact("client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUV2"), "client-key-data: [REDACTED]");
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        let lines = [
            "disk 91% used of /var, 1.2 GiB free; token bucket refilled",
            "frontend design=compact layout=grid; resign=false",
            "paged oncall: alice@example.com, cc bob.smith@example.org",
            "git clone git@github.com:acme/payments.git && git fetch ssh://git@github.com:22/acme/infra.git",
            "curl -u alice https://api.example.com/health (prompts for the password)",
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "deployed 3f786850e387550fdab836ed7e6dc881de23001b to prod",
            "docker run -u 1000:1000 app:latest",
            "mysql -u app -p -h db.internal orders",
            "no cookie: redirecting to /login",
            "kill sent sig=15 to pid 4242",
            "machine learning job failed: password reset service down",
            "GET http://localhost:8080/healthz?verbose=1 → 200",
            "-----BEGIN CERTIFICATE-----",
        ];
        for text in lines {
            assert_eq!(redact(text), text);
        }
    }
}
