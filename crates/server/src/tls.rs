//! TLS server configuration shared by every TLS listener (AMQPS here; the
//! management and metrics HTTPS listeners reuse it): loading a certificate
//! chain, key and CA bundle from PEM files into a `rustls::ServerConfig`,
//! RabbitMQ's `verify_peer` / `fail_if_no_peer_cert`, TLS 1.2/1.3, and
//! reloading the files without a restart (SIGHUP, or a change of their
//! modification time) behind one holder.
//!
//! A listener takes `TlsConfigHolder::current()` once per accepted
//! connection (an `Arc` clone under a read lock, never per message), so a
//! reload affects new connections only; established ones keep the
//! configuration they were accepted with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context};
use parking_lot::{Mutex, RwLock};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use crate::cert_login::CertLoginFrom;

/// Which TLS versions a listener accepts (RabbitMQ's `ssl_options.versions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    /// Accept TLS 1.2.
    pub tls12: bool,
    /// Accept TLS 1.3.
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

impl std::str::FromStr for TlsVersions {
    type Err = anyhow::Error;

    /// A comma-separated list of `tlsv1.2` / `tlsv1.3` (RabbitMQ's names).
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let mut v = TlsVersions {
            tls12: false,
            tls13: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "tlsv1.2" => v.tls12 = true,
                "tlsv1.3" => v.tls13 = true,
                other => bail!("unsupported TLS version {other} (tlsv1.2, tlsv1.3)"),
            }
        }
        if !v.tls12 && !v.tls13 {
            bail!("no TLS version given");
        }
        Ok(v)
    }
}

/// Files and peer-verification options of one TLS listener.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain of the server, leaf first (`certfile`).
    pub cert_file: PathBuf,
    /// PEM private key of the server: PKCS#8, PKCS#1 or SEC1 (`keyfile`).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs that client certificates must chain to
    /// (`cacertfile`); required with `verify_peer`.
    pub ca_file: Option<PathBuf>,
    /// Ask every client for a certificate and verify it (`verify_peer`);
    /// false is `verify_none`: no certificate is asked for.
    pub verify_peer: bool,
    /// With `verify_peer`: refuse a client that sends no certificate.
    pub fail_if_no_peer_cert: bool,
    /// Versions accepted.
    pub versions: TlsVersions,
    /// Which part of a verified client certificate names the user for the
    /// EXTERNAL mechanism (`ssl_cert_login_from`).
    pub cert_login_from: CertLoginFrom,
    /// How often the files' modification times are compared with those of
    /// the last load; a change reloads. 0 = reload only on SIGHUP.
    pub reload_check_interval_ms: u64,
}

impl TlsSettings {
    /// Settings for `cert_file` and `key_file` with RabbitMQ's defaults
    /// otherwise (verify_none, both versions, reload checks every 5 s).
    pub fn new(cert_file: PathBuf, key_file: PathBuf) -> TlsSettings {
        TlsSettings {
            cert_file,
            key_file,
            ca_file: None,
            verify_peer: false,
            fail_if_no_peer_cert: false,
            versions: TlsVersions::default(),
            cert_login_from: CertLoginFrom::default(),
            reload_check_interval_ms: 5_000,
        }
    }
}

/// Modification times of the files of one load, to notice changes.
type FileStamps = Vec<Option<SystemTime>>;

/// The current `rustls::ServerConfig` of a listener, replaced on reload.
pub struct TlsConfigHolder {
    /// What to load from.
    settings: TlsSettings,
    /// The configuration new connections get.
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// Modification times of the files at the last load or attempt.
    stamps: Mutex<FileStamps>,
}

impl TlsConfigHolder {
    /// Loads the files once; an error here is a startup error.
    pub fn load(settings: TlsSettings) -> anyhow::Result<Arc<TlsConfigHolder>> {
        let stamps = file_stamps(&settings);
        let config = build_server_config(&settings)?;
        Ok(Arc::new(TlsConfigHolder {
            settings,
            current: RwLock::new(config),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The configuration for a connection being accepted now.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().clone()
    }

    /// The settings this holder loads from.
    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Reads the files again. On error the previous configuration stays
    /// in force (a half-written certificate never takes the listener down).
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamps = file_stamps(&self.settings);
        let config = build_server_config(&self.settings)?;
        *self.current.write() = config;
        *self.stamps.lock() = stamps;
        Ok(())
    }

    /// Reloads if any file's modification time changed since the last
    /// load. Returns whether a new configuration was installed.
    /// A failed attempt is not retried until the files change again (one
    /// warning per change, not one per check).
    pub fn reload_if_changed(&self) -> anyhow::Result<bool> {
        let now = file_stamps(&self.settings);
        {
            let mut seen = self.stamps.lock();
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        self.reload().map(|()| true)
    }

    /// Runs until the task is aborted: reloads on SIGHUP and, every
    /// `reload_check_interval_ms`, when a file changed. `label` names the
    /// listener in log lines.
    pub fn spawn_watcher(self: &Arc<Self>, label: &'static str) -> tokio::task::JoinHandle<()> {
        let holder = self.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!("{label}: cannot watch SIGHUP for TLS reload: {e}");
                    None
                }
            };
            let every_ms = holder.settings.reload_check_interval_ms;
            let period = Duration::from_millis(every_ms.max(1));
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let from_signal = tokio::select! {
                    Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
                    _ = interval.tick(), if every_ms > 0 => false,
                    // No SIGHUP stream and no file checks: nothing to do.
                    else => return,
                };
                let result = if from_signal {
                    holder.reload().map(|()| true)
                } else {
                    holder.reload_if_changed()
                };
                match result {
                    Ok(true) => tracing::info!("{label}: TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        "{label}: TLS reload failed, keeping the previous certificate: {e:#}"
                    ),
                }
            }
        })
    }
}

fn file_stamps(s: &TlsSettings) -> FileStamps {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut v = vec![mtime(&s.cert_file), mtime(&s.key_file)];
    if let Some(ca) = &s.ca_file {
        v.push(mtime(ca));
    }
    v
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("parsing certificates in {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", path.display());
    }
    Ok(certs)
}

/// Builds a server configuration from the files named in `s`.
pub fn build_server_config(s: &TlsSettings) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(&s.cert_file)?;
    let key_pem =
        std::fs::read(&s.key_file).with_context(|| format!("reading {}", s.key_file.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow!("parsing the private key in {}: {e}", s.key_file.display()))?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if s.versions.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if s.versions.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("TLS versions")?;
    let builder = if s.verify_peer {
        let Some(ca_file) = &s.ca_file else {
            bail!("verify_peer needs a CA bundle (tls_ca_file)");
        };
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca_file)? {
            roots
                .add(cert)
                .map_err(|e| anyhow!("CA certificate in {}: {e}", ca_file.display()))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if s.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(verifier.build().context("client verifier")?)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(chain, key)
        .context("certificate and key do not match")?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
