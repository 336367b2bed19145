//! A leafnode remote's `nkey` or `credentials` file: the key pair from its seed signs the hub's
//! nonce as nats-server's leafs do (ed25519, base64url without padding); a credentials file also
//! gives the user JWT CONNECT carries, and is read again at each connect, as nats-server reads
//! it (rotated credentials apply on the next connect).

use std::path::PathBuf;

use base64::Engine;
use tachyon_core::leaf::{LeafProof, LeafSigner};

#[derive(thiserror::Error, Debug)]
#[error("Remote leafnode nkey is not a valid seed: {0:?}")]
pub struct BadSeed(String);

pub struct NkeySigner(nkeys::KeyPair);

impl std::fmt::Debug for NkeySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NkeySigner({})", self.0.public_key())
    }
}

impl NkeySigner {
    /// nats-server refuses a remote whose `nkey` is not a seed; so does Tachyon, at start.
    pub fn from_seed(seed: &str) -> Result<NkeySigner, BadSeed> {
        nkeys::KeyPair::from_seed(seed)
            .map(NkeySigner)
            .map_err(|_| BadSeed(seed.chars().take(4).collect::<String>() + "..."))
    }
}

fn sign(kp: &nkeys::KeyPair, nonce: &[u8]) -> Result<String, String> {
    let raw = kp
        .sign(nonce)
        .map_err(|e| format!("Error signing the nonce: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

impl LeafSigner for NkeySigner {
    fn prove(&self, nonce: &[u8]) -> Result<LeafProof, String> {
        Ok(LeafProof {
            nkey: Some(self.0.public_key()),
            jwt: None,
            sig: sign(&self.0, nonce)?,
        })
    }
}

/// A remote's `credentials` file.
#[derive(Debug)]
pub struct CredsSigner(pub PathBuf);

impl LeafSigner for CredsSigner {
    fn prove(&self, nonce: &[u8]) -> Result<LeafProof, String> {
        let text = std::fs::read_to_string(&self.0)
            .map_err(|e| format!("open {}: {e}", self.0.display()))?;
        let (jwt, seed) = creds_parts(&text).ok_or("Credentials file malformed")?;
        let kp = nkeys::KeyPair::from_seed(seed)
            .map_err(|_| "Credentials file has malformed seed".to_string())?;
        Ok(LeafProof {
            nkey: None,
            jwt: Some(jwt.to_string()),
            sig: sign(&kp, nonce)?,
        })
    }
}

/// The user JWT and the seed of a credentials file: the first two values each standing alone
/// between two `---...---` marker lines (nats-server's `credsRe`).
fn creds_parts(text: &str) -> Option<(&str, &str)> {
    let marker = |l: &str| {
        let l = l.trim();
        l.len() >= 6 && l.starts_with("---") && l.ends_with("---")
    };
    let value = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.=".contains(&b))
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut found = lines
        .windows(3)
        .filter(|w| marker(w[0]) && value(w[1].trim()) && marker(w[2]))
        .map(|w| w[1].trim());
    Some((found.next()?, found.next()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_what_the_public_key_verifies() {
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().expect("seed");
        let s = NkeySigner::from_seed(&seed).expect("signer");
        let p = s.prove(b"nonce").expect("sign");
        assert_eq!(p.nkey.as_deref(), Some(kp.public_key().as_str()));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.sig)
            .expect("base64url");
        kp.verify(b"nonce", &raw).expect("valid signature");
        assert!(NkeySigner::from_seed("SUnot-a-seed").is_err());
        assert!(
            NkeySigner::from_seed(&kp.public_key()).is_err(),
            "a public key is no seed"
        );
    }

    #[test]
    fn a_credentials_file_gives_its_jwt_and_signs_with_its_seed() {
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().expect("seed");
        let dir = std::env::temp_dir().join(format!("tachyon-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("u.creds");
        let text = format!(
            "-----BEGIN NATS USER JWT-----\neyJ0eXAi.eyJqdGki.c2ln\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\n\
             -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n"
        );
        std::fs::write(&path, text).expect("write");
        let p = CredsSigner(path.clone()).prove(b"abc").expect("prove");
        assert_eq!(p.jwt.as_deref(), Some("eyJ0eXAi.eyJqdGki.c2ln"));
        assert_eq!(p.nkey, None);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(p.sig)
            .expect("base64url");
        kp.verify(b"abc", &raw).expect("signed by the file's seed");
        std::fs::write(&path, "no markers here").expect("write");
        assert_eq!(
            CredsSigner(path.clone()).prove(b"abc").unwrap_err(),
            "Credentials file malformed"
        );
        let missing = CredsSigner(dir.join("missing.creds"))
            .prove(b"abc")
            .unwrap_err();
        assert!(missing.starts_with("open "), "{missing}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
