//! `tls`: days until the certificate served at host:port (with SNI), or held
//! in a PEM file, expires. Inside `warn_days` is a warning; under `min_days`
//! or expired is failing.
//!
//! A served certificate is also checked as a client checks it, with the same
//! rustls/webpki the connection uses: it must cover `server_name` (wildcards
//! as clients match them), and its chain must verify to the system roots or
//! to the certificates of `ca_file` (a certificate listed there is trusted
//! as it is, as curl's `--cacert` trusts a self-signed one). A failure is
//! classified: name mismatch, self-signed, incomplete chain (only the leaf is
//! served and its issuer is not trusted: a missing intermediate), unknown
//! issuer (the served intermediates lead to a root the trust store lacks),
//! or another verification error. Each is failing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{Check, Context, Outcome, Status, TlsSource};

pub struct Tls<'a> {
    pub source: &'a TlsSource,
    pub warn_days: u32,
    pub min_days: u32,
    pub timeout: Duration,
    /// Extra trust anchors for the served chain (relative to the workspace).
    pub ca_file: Option<&'a Path>,
}

/// What nightshift reads off a certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub not_after: i64,
    pub dns_names: Vec<String>,
    /// Subjects of the certificates served, leaf first.
    pub chain: Vec<String>,
}

pub fn parse_der(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo { subject: cert.subject().to_string(), issuer: cert.issuer().to_string(), not_after: cert.validity().not_after.timestamp(), dns_names, chain: vec![cert.subject().to_string()] })
}

/// Reads the first certificate of a PEM file.
pub fn from_file(path: &Path) -> Result<CertInfo, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&data).map_err(|e| format!("{}: no PEM certificate: {e}", path.display()))?;
    parse_der(&pem.contents)
}

/// Accepts any certificate during the handshake: this connection only reads
/// the chain served and sends nothing, and a chain a client would refuse must
/// still be read to say why. The chain is then verified as a client does
/// (`verify_chain`, `covers`), with the same webpki.
#[derive(Debug)]
struct ReadOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for ReadOnly {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `address`, sends `server_name` as SNI, and returns the leaf certificate.
pub async fn fetch(address: &str, server_name: &str, timeout: Duration) -> Result<CertInfo, String> {
    let certs = fetch_chain(address, server_name, timeout).await?;
    describe(&certs, address)
}

/// The leaf parsed, with the subjects of the rest of the chain.
fn describe(certs: &[CertificateDer<'static>], address: &str) -> Result<CertInfo, String> {
    let leaf = certs.first().ok_or_else(|| format!("{address} sent no certificate"))?;
    let mut info = parse_der(leaf.as_ref())?;
    info.chain.extend(certs.iter().skip(1).filter_map(|c| parse_der(c.as_ref()).ok()).map(|c| c.subject));
    Ok(info)
}

/// Connects to `address`, sends `server_name` as SNI, and returns the certificates served, leaf first.
pub async fn fetch_chain(address: &str, server_name: &str, timeout: Duration) -> Result<Vec<CertificateDer<'static>>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| format!("bad server name {server_name:?}: {e}"))?;
    let work = async {
        let tcp = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("cannot connect to {address}: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| format!("TLS handshake with {address}: {e}"))?;
        let (_, conn) = tls.get_ref();
        let certs: Vec<CertificateDer<'static>> = conn.peer_certificates().unwrap_or_default().iter().map(|c| c.clone().into_owned()).collect();
        if certs.is_empty() {
            return Err(format!("{address} sent no certificate"));
        }
        Ok(certs)
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("no TLS handshake with {address} within {}", crate::duration::format(timeout)))?
}

/// What a client makes of a served chain, besides its dates.
#[derive(Debug, Clone, PartialEq)]
pub enum Trust {
    /// Verifies to a trust anchor (or is itself listed in `ca_file`).
    Trusted,
    /// The leaf signs itself.
    SelfSigned,
    /// Only the leaf `last` is served, and its issuer `missing` is not trusted: a missing intermediate.
    Incomplete { last: String, missing: String },
    /// The served chain ends at (or below) `root`, which the trust store lacks.
    UnknownIssuer { root: String },
    /// Another reason webpki gives.
    Invalid(String),
}

/// The certificates of a PEM file (any other blocks are skipped).
pub fn pem_certificates(data: &[u8]) -> Vec<CertificateDer<'static>> {
    x509_parser::pem::Pem::iter_from_buffer(data).filter_map(Result::ok).filter(|p| p.label == "CERTIFICATE").map(|p| CertificateDer::from(p.contents)).collect()
}

/// The system's trust store, read once: `SSL_CERT_FILE`, else the first
/// bundle of the usual places (Debian, RHEL, SUSE, Alpine).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
        let places = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/ca-bundle.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/cert.pem"];
        env.into_iter().chain(places.iter().map(std::path::PathBuf::from)).find_map(|p| std::fs::read(p).ok().map(|d| pem_certificates(&d)).filter(|c| !c.is_empty())).unwrap_or_default()
    })
}

fn name_raw(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>, String, String)> {
    let (_, c) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec(), c.subject().to_string(), c.issuer().to_string()))
}

/// Whether `certs` (leaf first) verify to the system roots and `extra` at
/// `now`, and if not, why, as a client would say it.
pub fn verify_chain(certs: &[CertificateDer<'_>], extra: &[CertificateDer<'_>], now: UnixTime) -> Trust {
    let Some(leaf) = certs.first() else { return Trust::Invalid("no certificate".into()) };
    if extra.iter().any(|c| c.as_ref() == leaf.as_ref()) {
        return Trust::Trusted;
    }
    // The system's anchors are parsed once per process; a check's ca_file is added to a copy.
    static SYSTEM: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    let mut roots = SYSTEM
        .get_or_init(|| {
            let mut r = rustls::RootCertStore::empty();
            r.add_parsable_certificates(system_roots().iter().cloned());
            r
        })
        .clone();
    roots.add_parsable_certificates(extra.iter().map(|c| CertificateDer::from(c.as_ref())));
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let error = match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(parsed) => match rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, &roots, &certs[1..], now, provider.signature_verification_algorithms.all) {
            Ok(()) => return Trust::Trusted,
            Err(e) => e.to_string(),
        },
        Err(e) => return Trust::Invalid(e.to_string()),
    };
    // Walk the served chain by names to say what is missing.
    let anchors: Vec<&CertificateDer<'_>> = system_roots().iter().chain(extra.iter()).collect();
    let anchor_subjects: Vec<Vec<u8>> = anchors.iter().filter_map(|c| name_raw(c.as_ref())).map(|n| n.0).collect();
    let served: Vec<_> = certs.iter().filter_map(|c| name_raw(c.as_ref())).collect();
    let mut at = 0;
    for _ in 0..served.len() {
        let Some((subject, issuer, subject_text, issuer_text)) = served.get(at) else { break };
        if subject == issuer {
            return if at == 0 { Trust::SelfSigned } else { Trust::UnknownIssuer { root: subject_text.clone() } };
        }
        if anchor_subjects.contains(issuer) {
            return Trust::Invalid(error);
        }
        match served.iter().position(|s| &s.0 == issuer) {
            Some(next) if next != at => at = next,
            // Only the leaf was sent: its intermediate is missing.
            _ if at == 0 => return Trust::Incomplete { last: subject_text.clone(), missing: issuer_text.clone() },
            // Intermediates were sent, and servers leave the root out: it is the root that is not trusted.
            _ => return Trust::UnknownIssuer { root: issuer_text.clone() },
        }
    }
    Trust::Invalid(error)
}

/// Whether the leaf covers `server_name` (SAN DNS names with clients' wildcard rules, or an IP SAN).
pub fn covers(leaf: &CertificateDer<'_>, server_name: &str) -> Result<bool, String> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| format!("bad server name {server_name:?}: {e}"))?;
    let parsed = rustls::server::ParsedCertificate::try_from(leaf).map_err(|e| e.to_string())?;
    Ok(rustls::client::verify_server_name(&parsed, &name).is_ok())
}

/// A failing tls verdict for the note: its problem class, a title, what it
/// means in one sentence, and whether a renewal (`renew:`) can fix it.
pub fn explain(result: &super::CheckResult) -> (&'static str, String, String, bool) {
    let ev = |k: &str| result.evidence.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    let t = &result.target;
    let expired = ev("problem") == "expired" || result.summary.contains("expired");
    match ev("problem").as_str() {
        _ if expired => ("cert-expired", format!("Certificate of {t} has expired"), "the certificate has expired: every client refuses the connection until a new one is served".into(), true),
        "name-mismatch" => (
            "cert-name-mismatch",
            format!("Certificate of {t} does not cover {}", ev("server_name")),
            format!(
                "the server sends a certificate for other names than {}, so every client refuses it: the site is configured with the wrong certificate, or SNI selects another site's; a renewal of the same certificate does not change that, the server's configuration must",
                ev("server_name")
            ),
            false,
        ),
        "self-signed" => (
            "cert-self-signed",
            format!("Certificate of {t} is self-signed"),
            "the certificate is signed by its own key, not by a CA: clients refuse it unless each of them pins it (a placeholder certificate is served instead of the CA-issued one)".into(),
            true,
        ),
        "incomplete-chain" => (
            "cert-incomplete-chain",
            format!("{t} serves an incomplete certificate chain"),
            "the server sends its certificate without the intermediate certificate that links it to a trusted root, so clients that do not fetch it themselves refuse the connection; fix: serve the full chain (e.g. nginx `ssl_certificate` pointing at fullchain.pem, not cert.pem), then reload".into(),
            false,
        ),
        "unknown-issuer" => (
            "cert-unknown-issuer",
            format!("Certificate of {t} is issued by an unknown CA"),
            "the chain ends at a CA that this host's trust store does not hold, so clients refuse it unless the CA is in theirs (for a private CA, give its certificate as `ca_file:`)".into(),
            true,
        ),
        "invalid-chain" => (
            "cert-invalid-chain",
            format!("Certificate chain of {t} does not verify"),
            "the chain the server sends does not verify (see the reason): clients refuse the connection; the served certificates must be replaced".into(),
            false,
        ),
        _ => ("cert-expiring", format!("Certificate of {t} expires soon"), "the certificate expires within `min_days`: renew it before clients start refusing it".into(), true),
    }
}

fn date(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(|| ts.to_string(), |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
}

impl Check for Tls<'_> {
    const KIND: &'static str = "tls";

    fn target(&self) -> String {
        match self.source {
            TlsSource::Address { address, .. } => address.clone(),
            TlsSource::File(p) => p.display().to_string(),
        }
    }

    async fn run(&self, ctx: &Context) -> Outcome {
        let mut checked: Option<(String, Vec<CertificateDer<'static>>)> = None;
        let (info, unreachable_status) = match self.source {
            TlsSource::Address { address, server_name } => {
                let host = address.rsplit_once(':').map_or(address.as_str(), |(h, _)| h.trim_start_matches('[').trim_end_matches(']'));
                let name = server_name.as_deref().unwrap_or(host);
                let chain = fetch_chain(address, name, self.timeout).await;
                let info = chain.as_ref().map_err(String::clone).and_then(|c| describe(c, address));
                if let Ok(c) = chain {
                    checked = Some((name.to_string(), c));
                }
                (info, Status::Failing)
            }
            TlsSource::File(path) => (from_file(path), Status::Error),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => return Outcome::new(unreachable_status, e),
        };
        let extra = match self.ca_file {
            Some(p) => match std::fs::read(ctx.workdir.join(p)) {
                Ok(d) if !pem_certificates(&d).is_empty() => pem_certificates(&d),
                Ok(_) => return Outcome::new(Status::Error, format!("ca_file {} holds no PEM certificate", p.display())),
                Err(e) => return Outcome::new(Status::Error, format!("cannot read ca_file {}: {e}", p.display())),
            },
            None => Vec::new(),
        };
        let now = chrono::Utc::now().timestamp();
        let secs_left = info.not_after - now;
        let days_left = secs_left.div_euclid(86_400);
        let what = self.target();
        let trusted_by = self.ca_file.map_or("the system roots".to_string(), |p| format!("the system roots or ca_file {}", p.display()));
        // Problems a client refuses the connection for, besides the dates.
        let mut refused: Vec<(&'static str, String)> = Vec::new();
        let mut verified = None;
        if let Some((name, certs)) = &checked {
            match certs.first().map(|leaf| covers(leaf, name)) {
                Some(Ok(false)) => {
                    let names = if info.dns_names.is_empty() { "no DNS name".to_string() } else { info.dns_names.join(", ") };
                    refused.push(("name-mismatch", format!("certificate of {what} does not cover {name}: it is for {names}")));
                }
                Some(Err(e)) => refused.push(("invalid-chain", format!("certificate of {what} cannot be checked for {name}: {e}"))),
                _ => {}
            }
            // An expired leaf is its own problem; the chain is judged as it was while the leaf was valid.
            let at = if secs_left <= 0 { info.not_after - 1 } else { now };
            let trust = verify_chain(certs, &extra, UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64)));
            verified = Some(trust == Trust::Trusted);
            match trust {
                Trust::Trusted => {}
                Trust::SelfSigned => refused.push(("self-signed", format!("certificate of {what} is self-signed ({}): clients do not trust it", info.subject))),
                Trust::Incomplete { last, missing } => {
                    refused.push(("incomplete-chain", format!("the chain served by {what} is incomplete: it stops at {last}, whose issuer {missing} is neither served nor in {trusted_by}")))
                }
                Trust::UnknownIssuer { root } => refused.push(("unknown-issuer", format!("certificate of {what} is issued by an unknown CA: its chain ends at {root}, which is not in {trusted_by}"))),
                Trust::Invalid(e) => refused.push(("invalid-chain", format!("the chain served by {what} does not verify: {e}"))),
            }
        }
        let (status, problem, summary) = if secs_left <= 0 {
            (Status::Failing, "expired", format!("certificate of {what} expired on {}", date(info.not_after)))
        } else if let Some((p, s)) = refused.first() {
            (Status::Failing, *p, s.clone())
        } else if days_left < i64::from(self.min_days) {
            (Status::Failing, "expiring", format!("certificate of {what} expires in {days_left} days ({}), under min_days {}", date(info.not_after), self.min_days))
        } else if days_left < i64::from(self.warn_days) {
            (Status::Warning, "expiring", format!("certificate of {what} expires in {days_left} days ({}), under warn_days {}", date(info.not_after), self.warn_days))
        } else {
            (Status::Ok, "", format!("certificate of {what} valid for {days_left} more days"))
        };
        let mut o = Outcome::new(status, summary)
            .with("days_left", days_left)
            .with("not_after", date(info.not_after))
            .with("subject", info.subject)
            .with("issuer", info.issuer)
            .with("dns_names", info.dns_names)
            .with("chain", info.chain);
        if !problem.is_empty() {
            o = o.with("problem", problem);
        }
        if let Some((name, _)) = &checked {
            o = o.with("server_name", name.as_str()).with("trusted_by", trusted_by);
        }
        if let Some(v) = verified {
            o = o.with("verified", v);
        }
        // Every problem a client would refuse, the first being the class.
        let also: Vec<String> = refused.iter().map(|(_, s)| s.clone()).filter(|s| s != &o.summary).collect();
        if !also.is_empty() {
            o = o.with("also", also);
        }
        o
    }
}
