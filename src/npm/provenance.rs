//! Provenance attestations sent with `npm publish --provenance`: a Sigstore bundle
//! (attachment `<name>-<version>.sigstore`, the bundle JSON as a plain string) whose
//! DSSE envelope signs an in-toto statement about the tarball.
//!
//! Checked here: the bundle's shape and media type, that the statement's subject is
//! this package and version with the tarball's SHA-512, and the DSSE signature
//! against the public key of the bundle's leaf certificate (ECDSA P-256, SHA-256).
//! Not checked: that the certificate chains to a Sigstore (Fulcio) root and that the
//! transparency-log (Rekor) entry exists; see docs/publish.md, "Provenance".
//!
//! Pure: no I/O; any input gives `Ok` or `Err`, never a panic.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;
use x509_cert::der::{Decode, Encode};

/// Largest bundle accepted, in bytes of JSON (a real one is 5–10 KiB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;
/// The only DSSE payload type a provenance statement has.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The bundle format versions, by `mediaType`: they differ in where the leaf
/// certificate sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleFormat {
    /// 0.1 and 0.2: `verificationMaterial.x509CertificateChain.certificates[0]`.
    CertificateChain,
    /// 0.3: `verificationMaterial.certificate`.
    SingleCertificate,
}

impl BundleFormat {
    pub fn of_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.dev.sigstore.bundle+json;version=0.1"
            | "application/vnd.dev.sigstore.bundle+json;version=0.2" => {
                Some(Self::CertificateChain)
            }
            "application/vnd.dev.sigstore.bundle.v0.3+json"
            | "application/vnd.dev.sigstore.bundle+json;version=0.3" => {
                Some(Self::SingleCertificate)
            }
            _ => None,
        }
    }
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The statement's `predicateType` (e.g. `https://slsa.dev/provenance/v1`).
    pub predicate_type: String,
    /// `predicate.buildDefinition.externalParameters.workflow`, when the statement
    /// names the CI workflow that built the package (SLSA v1 from GitHub/GitLab).
    pub workflow: Option<Workflow>,
}

/// The CI workflow a statement says built the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub repository: Option<String>,
    pub path: Option<String>,
    pub git_ref: Option<String>,
}

/// Why a bundle is refused; every message names the attachment and is fit for npm
/// to print.
#[derive(Debug, thiserror::Error)]
#[error("attachment {file:?}: {reason}")]
pub struct ProvenanceError {
    pub file: String,
    pub reason: String,
}

/// Checks `bundle` (the attachment's text) sent as `file` with `content_type` for a
/// publish of `name@version` whose tarball has the SHA-512 `sha512_hex`.
pub fn check(
    file: &str,
    content_type: Option<&str>,
    bundle: &str,
    name: &str,
    version: &str,
    sha512_hex: &str,
) -> Result<Provenance, ProvenanceError> {
    let fail = |reason: String| ProvenanceError {
        file: file.to_owned(),
        reason,
    };
    if bundle.len() > MAX_BUNDLE_BYTES {
        return Err(fail(format!(
            "the provenance bundle is larger than {} KiB",
            MAX_BUNDLE_BYTES / 1024
        )));
    }
    let doc: Value = serde_json::from_str(bundle)
        .map_err(|e| fail(format!("the provenance bundle is not valid JSON: {e}")))?;
    let media_type = doc
        .get("mediaType")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("the provenance bundle has no mediaType".into()))?;
    let format = BundleFormat::of_media_type(media_type).ok_or_else(|| {
        fail(format!(
            "unknown provenance bundle mediaType {media_type:?} (Sigstore bundles 0.1 to 0.3 are accepted)"
        ))
    })?;
    if let Some(ct) = content_type
        && ct != media_type
    {
        return Err(fail(format!(
            "content_type {ct:?} differs from the bundle's mediaType {media_type:?}"
        )));
    }
    let envelope = doc
        .get("dsseEnvelope")
        .and_then(Value::as_object)
        .ok_or_else(|| fail("the provenance bundle has no dsseEnvelope".into()))?;
    let payload_type = envelope
        .get("payloadType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(fail(format!(
            "dsseEnvelope.payloadType must be {IN_TOTO_PAYLOAD_TYPE:?}, not {payload_type:?}"
        )));
    }
    let payload = envelope
        .get("payload")
        .and_then(Value::as_str)
        .and_then(decode_b64)
        .ok_or_else(|| fail("dsseEnvelope.payload must be base64 text".into()))?;
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|e| fail(format!("the in-toto statement is not valid JSON: {e}")))?;
    let predicate_type = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("the in-toto statement has no predicateType".into()))?
        .to_owned();
    check_subject(&statement, name, version, sha512_hex).map_err(fail)?;

    let signatures = envelope
        .get("signatures")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // A Sigstore bundle signs with the one key of its certificate.
    let [signature] = signatures else {
        return Err(fail(format!(
            "dsseEnvelope must carry exactly one signature, not {}",
            signatures.len()
        )));
    };
    let sig = signature
        .get("sig")
        .and_then(Value::as_str)
        .and_then(decode_b64)
        .ok_or_else(|| fail("the DSSE signature must be base64 text".into()))?;
    let key = leaf_key(&doc, format).map_err(fail)?;
    let signed = pae(payload_type, &payload);
    let verified = match DerSignature::try_from(sig.as_slice()) {
        Ok(der) => key.verify(&signed, &der).is_ok(),
        Err(_) => Signature::from_slice(&sig).is_ok_and(|s| key.verify(&signed, &s).is_ok()),
    };
    if !verified {
        return Err(fail(
            "the DSSE signature does not verify with the bundle's certificate \
             (the statement was changed after signing, or signed with another key)"
                .into(),
        ));
    }
    Ok(Provenance {
        predicate_type,
        workflow: workflow_of(&statement),
    })
}

/// The `predicateType` of a stored (already checked) bundle.
pub fn predicate_type_of(bundle: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(bundle).ok()?;
    let payload = decode_b64(doc.get("dsseEnvelope")?.get("payload")?.as_str()?)?;
    let statement: Value = serde_json::from_slice(&payload).ok()?;
    statement.get("predicateType")?.as_str().map(str::to_owned)
}

/// The package URL npm writes for `name@version`: the scope's `@` is
/// percent-encoded (`pkg:npm/%40scope/name@1.0.0`).
pub fn purl(name: &str, version: &str) -> String {
    match name.strip_prefix('@') {
        Some(rest) => format!("pkg:npm/%40{rest}@{version}"),
        None => format!("pkg:npm/{name}@{version}"),
    }
}

/// Requires a subject naming `name@version` (its purl, percent-decoded before
/// comparing, so `%40` and `@` both match) with the tarball's SHA-512.
fn check_subject(
    statement: &Value,
    name: &str,
    version: &str,
    sha512_hex: &str,
) -> Result<(), String> {
    let wanted = percent_decoded(&purl(name, version));
    let subjects = statement
        .get("subject")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut named = subjects.iter().filter(|s| {
        s.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| percent_decoded(n) == wanted)
    });
    let Some(subject) = named.next() else {
        return Err(format!(
            "the provenance statement is not about {name}@{version} (no subject named {})",
            purl(name, version)
        ));
    };
    let digest = subject
        .get("digest")
        .and_then(|d| d.get("sha512"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !digest.eq_ignore_ascii_case(sha512_hex) {
        return Err(format!(
            "the provenance statement's sha512 for {name}@{version} does not match the uploaded tarball"
        ));
    }
    if named.next().is_some() {
        return Err(format!(
            "the provenance statement names {name}@{version} more than once"
        ));
    }
    Ok(())
}

fn percent_decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// DSSE's pre-authentication encoding: what the signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

fn decode_b64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .ok()
}

/// The P-256 public key of the bundle's leaf certificate.
fn leaf_key(doc: &Value, format: BundleFormat) -> Result<VerifyingKey, String> {
    let material = doc.get("verificationMaterial");
    let raw = match format {
        BundleFormat::SingleCertificate => material
            .and_then(|m| m.get("certificate"))
            .and_then(|c| c.get("rawBytes")),
        BundleFormat::CertificateChain => material
            .and_then(|m| m.get("x509CertificateChain"))
            .and_then(|c| c.get("certificates"))
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("rawBytes")),
    };
    let der = raw
        .and_then(Value::as_str)
        .and_then(decode_b64)
        .ok_or("the provenance bundle carries no signing certificate (verificationMaterial)")?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| format!("the signing certificate is not valid DER X.509: {e}"))?;
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("the signing certificate's public key is unreadable: {e}"))?;
    VerifyingKey::from_public_key_der(&spki).map_err(|_| {
        "the signing certificate's key is not an ECDSA P-256 key (the only kind accepted)".into()
    })
}

/// The workflow a stored (already checked) bundle's statement names, if any.
pub fn workflow_of_bundle(bundle: &str) -> Option<Workflow> {
    let doc: Value = serde_json::from_str(bundle).ok()?;
    let payload = decode_b64(doc.get("dsseEnvelope")?.get("payload")?.as_str()?)?;
    workflow_of(&serde_json::from_slice(&payload).ok()?)
}

impl Workflow {
    /// `<repository> / <workflow path>` (either part alone when only one is known).
    pub fn describe(&self) -> String {
        match (&self.repository, &self.path) {
            (Some(r), Some(p)) => format!("{r} / {p}"),
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (None, None) => String::new(),
        }
    }
}

fn workflow_of(statement: &Value) -> Option<Workflow> {
    let w = statement
        .get("predicate")?
        .get("buildDefinition")?
        .get("externalParameters")?
        .get("workflow")?;
    let field = |k: &str| w.get(k).and_then(Value::as_str).map(str::to_owned);
    let workflow = Workflow {
        repository: field("repository"),
        path: field("path"),
        git_ref: field("ref"),
    };
    (workflow.repository.is_some() || workflow.path.is_some()).then_some(workflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_encode_the_scope() {
        assert_eq!(purl("left-pad", "1.0.0"), "pkg:npm/left-pad@1.0.0");
        assert_eq!(
            purl("@acme/w", "2.0.0-rc.1"),
            "pkg:npm/%40acme/w@2.0.0-rc.1"
        );
    }

    #[test]
    fn pae_has_the_dsse_layout() {
        assert_eq!(
            pae("application/vnd.in-toto+json", b"{}"),
            b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
        );
    }

    /// A v0.3 bundle for `x@1.0.0` with the SHA-512 `00…`, signed with a fresh key.
    fn signed() -> String {
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::DecodePrivateKey;
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ci".to_owned()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(&pair.serialize_der()).unwrap();
        let statement = serde_json::json!({"subject": [{"name": "pkg:npm/x@1.0.0",
            "digest": {"sha512": "00"}}], "predicateType": "p",
            "predicate": {"buildDefinition": {"externalParameters": {"workflow":
                {"repository": "r", "path": "w.yml"}}}}});
        let payload = serde_json::to_vec(&statement).unwrap();
        let sig: DerSignature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
        serde_json::json!({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": STANDARD.encode(cert.der())}},
            "dsseEnvelope": {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": STANDARD.encode(&payload),
                "signatures": [{"sig": STANDARD.encode(sig.as_bytes())}]}})
        .to_string()
    }

    #[test]
    fn a_signed_bundle_passes_and_any_change_is_refused_without_panic() {
        let bundle = signed();
        let ok = check("x-1.0.0.sigstore", None, &bundle, "x", "1.0.0", "00").unwrap();
        assert_eq!(ok.predicate_type, "p");
        assert_eq!(predicate_type_of(&bundle).as_deref(), Some("p"));
        let workflow = workflow_of_bundle(&bundle).unwrap();
        assert_eq!(workflow.describe(), "r / w.yml");
        assert!(check("x-1.0.0.sigstore", None, &bundle, "x", "1.0.1", "00").is_err());
        assert!(check("x-1.0.0.sigstore", None, &bundle, "x", "1.0.0", "01").is_err());
        // Every prefix and some one-byte mutations: an error or a pass, never a panic.
        let bytes = bundle.as_bytes();
        for cut in 0..bytes.len() {
            for m in [None, Some(b'"'), Some(b'\\'), Some(b'A'), Some(b'{')] {
                let mut input = bytes[..cut].to_vec();
                if let Some(m) = m {
                    input.push(m);
                    input.extend_from_slice(&bytes[cut + 1..]);
                }
                let text = String::from_utf8_lossy(&input);
                let _ = check("x-1.0.0.sigstore", None, &text, "x", "1.0.0", "00");
            }
        }
    }

    #[test]
    fn no_input_panics() {
        for text in [
            "",
            "[]",
            "{}",
            r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
            r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"sig":"AAAA"}]}}"#,
            r#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}}"#,
        ] {
            assert!(check("x.sigstore", None, text, "x", "1.0.0", "00").is_err());
        }
    }
}
