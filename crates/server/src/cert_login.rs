//! The user name a verified client certificate stands for, for the
//! EXTERNAL SASL mechanism (RabbitMQ's rabbitmq_auth_mechanism_ssl and its
//! `ssl_cert_login_from`).

use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// Where the user name comes from (RabbitMQ's `ssl_cert_login_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertLoginFrom {
    /// The subject's common name(s), joined with "," if there are several.
    #[default]
    CommonName,
    /// The whole subject as RabbitMQ formats it: RDNs last to first,
    /// joined with ",", e.g. `CN=guest,O=client,C=UK`.
    DistinguishedName,
    /// The first DNS name of the subject alternative names (RabbitMQ's
    /// defaults `ssl_cert_login_san_type = dns`, `ssl_cert_login_san_index = 0`).
    SubjectAlternativeName,
}

impl std::str::FromStr for CertLoginFrom {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "common_name" => Ok(CertLoginFrom::CommonName),
            "distinguished_name" => Ok(CertLoginFrom::DistinguishedName),
            "subject_alternative_name" | "subject_alt_name" => {
                Ok(CertLoginFrom::SubjectAlternativeName)
            }
            other => anyhow::bail!(
                "unknown cert login source {other} (common_name, distinguished_name, subject_alternative_name)"
            ),
        }
    }
}

/// The user name in `cert_der` (DER), or None when the certificate cannot
/// be parsed or has no such name.
pub fn login_name(cert_der: &[u8], from: CertLoginFrom) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert_der).ok()?;
    let subject = cert.subject();
    match from {
        CertLoginFrom::CommonName => {
            let cns: Vec<&str> = subject
                .iter_common_name()
                .filter_map(|a| a.as_str().ok())
                .collect();
            (!cns.is_empty()).then(|| cns.join(","))
        }
        CertLoginFrom::DistinguishedName => {
            let rdns: Vec<String> = subject
                .iter_rdn()
                .map(|rdn| rdn.iter().map(format_attr).collect::<Vec<_>>().join("+"))
                .collect();
            let dn: Vec<&str> = rdns.iter().rev().map(String::as_str).collect();
            (!dn.is_empty()).then(|| dn.join(","))
        }
        CertLoginFrom::SubjectAlternativeName => cert.extensions().iter().find_map(|ext| {
            let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() else {
                return None;
            };
            san.general_names.iter().find_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
        }),
    }
}

/// `TYPE=value` as RabbitMQ's rabbit_cert_info formats an attribute.
fn format_attr(a: &AttributeTypeAndValue<'_>) -> String {
    let oid = a.attr_type().to_id_string();
    let name = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "SERIALNUMBER",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "TITLE",
        "2.5.4.42" => "GIVENNAME",
        "2.5.4.43" => "INITIALS",
        "2.5.4.44" => "GENERATIONQUALIFIER",
        "2.5.4.65" => "PSEUDONYM",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "1.2.840.113549.1.9.1" => "EMAILADDRESS",
        _ => oid.as_str(),
    };
    let value = a.as_str().map(escape_value).unwrap_or_default();
    format!("{name}={value}")
}

/// RFC 4514 escaping of an attribute value.
fn escape_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &[&str], san: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(san.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "UK");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "a,b");
        for c in cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *c);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn names_from_each_source() {
        let c = cert(&["guest"], &["client.example", "other.example"]);
        assert_eq!(
            login_name(&c, CertLoginFrom::CommonName).as_deref(),
            Some("guest")
        );
        assert_eq!(
            login_name(&c, CertLoginFrom::SubjectAlternativeName).as_deref(),
            Some("client.example")
        );
        assert_eq!(
            login_name(&c, CertLoginFrom::DistinguishedName).as_deref(),
            Some("CN=guest,O=a\\,b,C=UK")
        );
        let none = cert(&[], &[]);
        assert_eq!(login_name(&none, CertLoginFrom::CommonName), None);
        assert_eq!(
            login_name(&none, CertLoginFrom::SubjectAlternativeName),
            None
        );
        assert_eq!(
            login_name(b"not a certificate", CertLoginFrom::CommonName),
            None
        );
    }
}
