//! Loading and reloading TLS configurations from generated files.

use super::*;

/// A CA and a server certificate it signed, written as PEM files in `dir`.
fn write_files(dir: &Path, server_cn: &str) -> TlsSettings {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, server_cn);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    let mut s = TlsSettings::new(dir.join("cert.pem"), dir.join("key.pem"));
    s.ca_file = Some(dir.join("ca.pem"));
    s
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warren-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn loads_and_checks_settings() {
    let dir = temp_dir("load");
    let mut s = write_files(&dir, "one");
    assert!(build_server_config(&s).is_ok());
    s.verify_peer = true;
    s.fail_if_no_peer_cert = true;
    assert!(build_server_config(&s).is_ok());
    s.ca_file = None;
    let e = build_server_config(&s).unwrap_err().to_string();
    assert!(e.contains("CA bundle"), "{e}");
    // A key that is not the certificate's.
    let mut s = write_files(&dir, "two");
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("other.pem"), other.serialize_pem()).unwrap();
    s.key_file = dir.join("other.pem");
    assert!(build_server_config(&s).is_err());
    s.key_file = dir.join("missing.pem");
    assert!(build_server_config(&s).is_err());
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    s.cert_file = dir.join("empty.pem");
    assert!(build_server_config(&s).is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn versions_parse() {
    assert_eq!(
        "tlsv1.2".parse::<TlsVersions>().unwrap(),
        TlsVersions {
            tls12: true,
            tls13: false
        }
    );
    assert_eq!(
        "tlsv1.3, tlsv1.2".parse::<TlsVersions>().unwrap(),
        TlsVersions::default()
    );
    assert!("tlsv1.1".parse::<TlsVersions>().is_err());
    assert!("".parse::<TlsVersions>().is_err());
}

#[test]
fn reload_on_change_keeps_old_config_on_error() {
    let dir = temp_dir("reload");
    let s = write_files(&dir, "one");
    let holder = TlsConfigHolder::load(s.clone()).unwrap();
    let first = holder.current();
    assert!(!holder.reload_if_changed().unwrap(), "nothing changed yet");
    // A broken certificate file: the reload fails, the old config stays.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&s.cert_file, "garbage").unwrap();
    assert!(holder.reload_if_changed().is_err());
    assert!(Arc::ptr_eq(&first, &holder.current()));
    // A new valid pair: installed.
    write_files(&dir, "two");
    assert!(holder.reload_if_changed().unwrap());
    assert!(!Arc::ptr_eq(&first, &holder.current()));
    let _ = std::fs::remove_dir_all(dir);
}
