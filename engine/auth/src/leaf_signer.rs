//! A leafnode remote's `nkey`: the key pair from its seed, signing the hub's nonce as
//! nats-server's leafs do (ed25519, base64url without padding).

use base64::Engine;
use tachyon_core::leaf::LeafSigner;

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

impl LeafSigner for NkeySigner {
    fn public_key(&self) -> String {
        self.0.public_key()
    }

    fn sign(&self, nonce: &[u8]) -> Result<String, String> {
        let raw = self.0.sign(nonce).map_err(|e| e.to_string())?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_what_the_public_key_verifies() {
        let kp = nkeys::KeyPair::new_user();
        let seed = kp.seed().expect("seed");
        let s = NkeySigner::from_seed(&seed).expect("signer");
        assert_eq!(s.public_key(), kp.public_key());
        let sig = s.sign(b"nonce").expect("sign");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .expect("base64url");
        kp.verify(b"nonce", &raw).expect("valid signature");
        assert!(NkeySigner::from_seed("SUnot-a-seed").is_err());
        assert!(
            NkeySigner::from_seed(&kp.public_key()).is_err(),
            "a public key is no seed"
        );
    }
}
