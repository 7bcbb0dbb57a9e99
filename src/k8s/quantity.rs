//! Memory quantities as Kubernetes writes them (`256Mi`, `1Gi`, `512M`,
//! `1e9`, `1073741824`), and raising a limit by a factor to a sensible unit.

const BINARY: [(&str, u128); 6] = [("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40), ("Pi", 1 << 50), ("Ei", 1 << 60)];
const DECIMAL: [(&str, u128); 6] = [("k", 1_000), ("M", 1_000_000), ("G", 1_000_000_000), ("T", 1_000_000_000_000), ("P", 1_000_000_000_000_000), ("E", 1_000_000_000_000_000_000)];

/// Bytes of a memory quantity; `None` when it is not one.
pub fn bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    for (suffix, mul) in BINARY.iter().chain(DECIMAL.iter()) {
        if let Some(n) = q.strip_suffix(suffix) {
            let v: f64 = n.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
            return Some((v * *mul as f64).round() as u128);
        }
    }
    if let Some(n) = q.strip_suffix('m') {
        // Milli-bytes: legal, rare, and rounded up to whole bytes.
        let v: f64 = n.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
        return Some((v / 1000.0).ceil() as u128);
    }
    let v: f64 = q.parse().ok().filter(|v: &f64| v.is_finite() && *v >= 0.0)?;
    Some(v.round() as u128)
}

/// The quantity raised by `factor`, in the family the user wrote (binary or
/// decimal), rounded up to a whole unit: 512Mi × 1.5 → 768Mi, 1Gi → 1536Mi,
/// 2Gi → 3Gi, 500M → 750M.
pub fn raise(q: &str, factor: f64) -> Option<String> {
    let old = bytes(q)?;
    let decimal = DECIMAL.iter().any(|(s, _)| q.trim().ends_with(s)) && !BINARY.iter().any(|(s, _)| q.trim().ends_with(s));
    let units: &[(&str, u128)] = if decimal { &DECIMAL } else { &BINARY };
    let target = (old as f64 * factor).ceil() as u128;
    // The smallest unit the value is written in (Mi for Mi and Gi inputs, at least).
    let step = if decimal { 1_000_000 } else { 1 << 20 };
    let rounded = target.div_ceil(step) * step;
    let (suffix, mul) = units.iter().rev().find(|(_, m)| rounded % m == 0 && *m <= rounded).copied().unwrap_or(units[1]);
    Some(format!("{}{suffix}", rounded / mul))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_kubernetes_writes() {
        assert_eq!(bytes("256Mi"), Some(256 << 20));
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("1.5Gi"), Some(1536 << 20));
        assert_eq!(bytes("512M"), Some(512_000_000));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("134217728"), Some(134_217_728));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("-1Gi"), None);
    }

    #[test]
    fn raises_to_a_sensible_unit() {
        assert_eq!(raise("512Mi", 1.5).as_deref(), Some("768Mi"));
        assert_eq!(raise("1Gi", 1.5).as_deref(), Some("1536Mi"));
        assert_eq!(raise("2Gi", 1.5).as_deref(), Some("3Gi"));
        assert_eq!(raise("100Mi", 1.5).as_deref(), Some("150Mi"));
        assert_eq!(raise("500M", 1.5).as_deref(), Some("750M"));
        assert_eq!(raise("134217728", 1.5).as_deref(), Some("192Mi"));
        assert_eq!(raise("333Mi", 1.5).as_deref(), Some("500Mi"));
    }
}
