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

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let table: &[(&str, &str)] = &[
        // PEM private keys, whole blocks (also inside JSON with escaped newlines).
        (r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----", "[REDACTED PRIVATE KEY]"),
        (r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*", "[REDACTED PRIVATE KEY]"),
        // Authorization headers and bearer tokens.
        (r"(?i)(authorization\s*[:=]\s*)(?:bearer|basic|token|digest)\s+[A-Za-z0-9._~+/=-]+", "${1}[REDACTED]"),
        (r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}", "${1}[REDACTED]"),
        // Passwords in URLs: scheme://user:password@host
        (r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", "${1}[REDACTED]@"),
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
        // A PEM block, base64-encoded (as in Kubernetes Secrets and kubeconfigs).
        (r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]{16,}", MARK),
        // The data of a Kubernetes Secret as JSON.
        (r#"("(?:data|stringData)"\s*:\s*)\{[^{}]*\}"#, "${1}{\"[REDACTED]\": \"\"}"),
        (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MARK),
        // key=value and key: value where the key names a secret.
        (
            r#"(?i)((?:[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)"#,
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
            out = std::borrow::Cow::Owned(p.re.replace_all(&out, p.with).into_owned());
        }
    }
    out.into_owned()
}

#[cfg(test)]
mod tests {
    use super::redact;

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
        let text = "disk 91% used of /var, 1.2 GiB free; token bucket refilled";
        assert_eq!(redact(text), text);
    }
}
