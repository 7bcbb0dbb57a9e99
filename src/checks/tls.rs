//! `tls`: days until the certificate served at host:port (with SNI), or held
//! in a PEM file, expires. Inside `warn_days` is a warning; under `min_days`
//! or expired is failing.

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

/// Accepts any certificate: this connection only reads the certificate's
/// dates and sends nothing, so trust is not what is being checked.
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
        let certs = conn.peer_certificates().unwrap_or_default();
        let leaf = certs.first().ok_or_else(|| format!("{address} sent no certificate"))?;
        let mut info = parse_der(leaf.as_ref())?;
        // The leaf is already parsed; the rest of the chain only for its subjects.
        info.chain.extend(certs.iter().skip(1).filter_map(|c| parse_der(c.as_ref()).ok()).map(|c| c.subject));
        Ok(info)
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| format!("no TLS handshake with {address} within {}", crate::duration::format(timeout)))?
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

    async fn run(&self, _ctx: &Context) -> Outcome {
        let (info, unreachable_status) = match self.source {
            TlsSource::Address { address, server_name } => {
                let host = address.rsplit_once(':').map_or(address.as_str(), |(h, _)| h.trim_start_matches('[').trim_end_matches(']'));
                (fetch(address, server_name.as_deref().unwrap_or(host), self.timeout).await, Status::Failing)
            }
            TlsSource::File(path) => (from_file(path), Status::Error),
        };
        let info = match info {
            Ok(i) => i,
            Err(e) => return Outcome::new(unreachable_status, e),
        };
        let now = chrono::Utc::now().timestamp();
        let secs_left = info.not_after - now;
        let days_left = secs_left.div_euclid(86_400);
        let what = self.target();
        let (status, summary) = if secs_left <= 0 {
            (Status::Failing, format!("certificate of {what} expired on {}", date(info.not_after)))
        } else if days_left < i64::from(self.min_days) {
            (Status::Failing, format!("certificate of {what} expires in {days_left} days ({}), under min_days {}", date(info.not_after), self.min_days))
        } else if days_left < i64::from(self.warn_days) {
            (Status::Warning, format!("certificate of {what} expires in {days_left} days ({}), under warn_days {}", date(info.not_after), self.warn_days))
        } else {
            (Status::Ok, format!("certificate of {what} valid for {days_left} more days"))
        };
        Outcome::new(status, summary)
            .with("days_left", days_left)
            .with("not_after", date(info.not_after))
            .with("subject", info.subject)
            .with("issuer", info.issuer)
            .with("dns_names", info.dns_names)
            .with("chain", info.chain)
    }
}
