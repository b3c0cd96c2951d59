//! Request signing for macOS builds: the SHA-256 digests and HMAC-SHA256 that AWS SigV4
//! needs, from the pure-Rust `sha2` and `hmac` crates.
//!
//! Elsewhere object_store signs with aws-lc-rs (its `aws` feature). aws-lc-rs compiles C
//! for the target, which cannot be done for an Apple target without Apple's SDK, so the
//! macOS build uses object_store's `aws-base` feature and hands it this provider instead
//! (see Cargo.toml). RSA signing (Google Cloud service accounts) is never asked for by S3
//! and is refused.

use hmac::{Hmac, KeyInit, Mac};
use object_store::client::{
    CryptoProvider, DigestAlgorithm, DigestContext, HmacContext, Signer, SigningAlgorithm,
};
use sha2::{Digest, Sha256};

/// SHA-256 and HMAC-SHA256 in Rust.
#[derive(Debug, Default)]
pub(crate) struct RustCrypto;

impl CryptoProvider for RustCrypto {
    fn digest(&self, algorithm: DigestAlgorithm) -> object_store::Result<Box<dyn DigestContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Box::new(Sha256Context {
                ctx: Some(Sha256::new()),
                out: Vec::new(),
            })),
            other => Err(unsupported(format!("digest {other:?}"))),
        }
    }

    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        secret: &[u8],
    ) -> object_store::Result<Box<dyn HmacContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => {
                // HMAC takes a key of any length.
                let mac = Hmac::<Sha256>::new_from_slice(secret)
                    .map_err(|e| unsupported(format!("HMAC key: {e}")))?;
                Ok(Box::new(HmacSha256Context {
                    ctx: Some(mac),
                    out: Vec::new(),
                }))
            }
            other => Err(unsupported(format!("HMAC with {other:?}"))),
        }
    }

    fn sign(
        &self,
        algorithm: SigningAlgorithm,
        _pem: &[u8],
    ) -> object_store::Result<Box<dyn Signer>> {
        Err(unsupported(format!(
            "signing with {algorithm:?} (only S3's SigV4 is supported on macOS)"
        )))
    }
}

fn unsupported(what: String) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("vrift's signing provider: {what}").into(),
    }
}

struct Sha256Context {
    ctx: Option<Sha256>,
    out: Vec<u8>,
}

impl DigestContext for Sha256Context {
    fn update(&mut self, data: &[u8]) {
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.update(data);
        }
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        if let Some(ctx) = self.ctx.take() {
            self.out = ctx.finalize().to_vec();
        }
        Ok(&self.out)
    }
}

struct HmacSha256Context {
    ctx: Option<Hmac<Sha256>>,
    out: Vec<u8>,
}

impl HmacContext for HmacSha256Context {
    fn update(&mut self, data: &[u8]) {
        if let Some(ctx) = self.ctx.as_mut() {
            ctx.update(data);
        }
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        if let Some(ctx) = self.ctx.take() {
            self.out = ctx.finalize().into_bytes().to_vec();
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_of_abc() {
        let mut d = RustCrypto.digest(DigestAlgorithm::Sha256).unwrap();
        d.update(b"a");
        d.update(b"bc");
        assert_eq!(
            hex(d.finish().unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231_case_2() {
        let mut m = RustCrypto.hmac(DigestAlgorithm::Sha256, b"Jefe").unwrap();
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(m.finish().unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rsa_signing_is_refused() {
        assert!(RustCrypto.sign(SigningAlgorithm::RS256, b"").is_err());
    }
}
