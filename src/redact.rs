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
        (r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", MARK),
        // key=value and key: value where the key names a secret.
        (
            r#"(?i)((?:[a-z0-9_.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)["']?\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&"'}]+)"#,
            "${1}[REDACTED]",
        ),
    ];
    table.iter().filter_map(|(re, with)| Regex::new(re).ok().map(|re| Pattern { re, with })).collect()
});

/// Returns `text` with every secret it recognises replaced by `[REDACTED]`.
pub fn redact(text: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(text);
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
    fn leaves_ordinary_text_alone() {
        let text = "disk 91% used of /var, 1.2 GiB free; token bucket refilled";
        assert_eq!(redact(text), text);
    }
}
