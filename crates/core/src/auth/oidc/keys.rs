//! Signing keys of the OpenID provider: RS256 (ID tokens by default), ES256 (access tokens by
//! default) and EdDSA, each on request per client, generated with aws-lc-rs, stored sealed in
//! the database. Each key pair is parsed once, at load: signing is one operation per token.
//!
//! The newest unretired key of an algorithm signs. Retired keys stay in the JWKS and keep
//! verifying until their `expires_at` (the longest lifetime of a token they may have signed).
//! Every node reloads the ring when the auth epoch moves, which rotation bumps.

use std::sync::{Arc, RwLock};

use anyhow::{Context, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cells_store::{NewSigningKey, Store};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;

use crate::auth::vault::Vault;

/// The algorithms we sign with, each with its own current key.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

pub fn parse_alg(name: &str) -> Option<Algorithm> {
    ALGORITHMS.into_iter().find(|alg| alg_name(*alg) == name)
}

pub struct LoadedKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    pub jwk: Jwk,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// The parsed pair: jsonwebtoken would parse the PKCS#8 document at every signature (a
    /// scalar multiplication for Ed25519 and P-256, key checks for RSA), which at least
    /// doubles the cost of a token.
    pair: Pair,
}

enum Pair {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Pair {
    fn parse(alg: Algorithm, pkcs8: &[u8]) -> anyhow::Result<Pair> {
        Ok(match alg {
            Algorithm::RS256 => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| anyhow!("stored RSA key"))?)
            }
            Algorithm::ES256 => Pair::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| anyhow!("stored P-256 key"))?,
            ),
            Algorithm::EdDSA => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| anyhow!("stored Ed25519 key"))?)
            }
            other => return Err(anyhow!("unsupported algorithm {other:?}")),
        })
    }

    /// The JWS signature of `input`: PKCS#1 v1.5 with SHA-256, ECDSA P-256 as `r || s`, or
    /// Ed25519 (RFC 7518 §3.3-3.4, RFC 8037 §3.1).
    fn sign(&self, input: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = SystemRandom::new();
        Ok(match self {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .map_err(|_| anyhow!("RSA signing failed"))?;
                signature
            }
            Pair::P256(pair) => pair
                .sign(&rng, input)
                .map_err(|_| anyhow!("P-256 signing failed"))?
                .as_ref()
                .to_vec(),
            Pair::Ed25519(pair) => pair.sign(input).as_ref().to_vec(),
        })
    }
}

impl LoadedKey {
    /// A JWS in compact serialization (RFC 7515 §7.1) of `claims`, with this key's `alg` and
    /// `kid` and the given `typ` in its header.
    pub fn sign_jwt(&self, typ: &str, claims: &impl Serialize) -> anyhow::Result<String> {
        let header = serde_json::json!({ "typ": typ, "alg": alg_name(self.alg), "kid": self.kid });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let signature = URL_SAFE_NO_PAD.encode(self.pair.sign(input.as_bytes())?);
        Ok(format!("{input}.{signature}"))
    }
}

pub struct KeyRing {
    store: Store,
    vault: Arc<Vault>,
    keys: RwLock<Vec<Arc<LoadedKey>>>,
}

fn vault_name(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// A fresh PKCS#8 private key for `alg`.
fn generate(alg: Algorithm) -> anyhow::Result<Vec<u8>> {
    let der = match alg {
        Algorithm::RS256 => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| anyhow!("RSA key generation failed"))?;
            pair.as_der()
                .map_err(|_| anyhow!("RSA key encoding failed"))?
                .as_ref()
                .to_vec()
        }
        Algorithm::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| anyhow!("P-256 key generation failed"))?
                .as_ref()
                .to_vec()
        }
        // A v1 document: `Jwk::from_encoding_key` refuses v2 (which carries the public key).
        Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
            .map_err(|_| anyhow!("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
        other => return Err(anyhow!("no key generation for {other:?}")),
    };
    Ok(der)
}

fn encoding_key(alg: Algorithm, pkcs8: &[u8]) -> anyhow::Result<EncodingKey> {
    Ok(match alg {
        // jsonwebtoken wants PKCS#1 DER for RSA; PKCS#8 goes through PEM.
        Algorithm::RS256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(pkcs8)
            );
            EncodingKey::from_rsa_pem(pem.as_bytes())?
        }
        Algorithm::ES256 => EncodingKey::from_ec_der(pkcs8),
        Algorithm::EdDSA => EncodingKey::from_ed_der(pkcs8),
        other => return Err(anyhow!("unsupported algorithm {other:?}")),
    })
}

fn public_jwk(kid: &str, alg: Algorithm, encoding: &EncodingKey) -> anyhow::Result<Jwk> {
    let mut jwk = Jwk::from_encoding_key(encoding, alg).context("public JWK")?;
    jwk.common.key_id = Some(kid.to_string());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::EdDSA,
    });
    Ok(jwk)
}

fn new_kid(alg: Algorithm) -> String {
    let mut random = [0u8; 9];
    crate::random::fill(&mut random);
    format!("{}-{}", alg_name(alg).to_lowercase(), hex::encode(random))
}

impl KeyRing {
    /// Load the keys, creating one per algorithm on first start.
    pub async fn open(store: Store, vault: Arc<Vault>) -> anyhow::Result<KeyRing> {
        let ring = KeyRing {
            store,
            vault,
            keys: RwLock::new(Vec::new()),
        };
        ring.reload().await?;
        let missing: Vec<Algorithm> = ALGORITHMS
            .into_iter()
            .filter(|alg| ring.signer(*alg).is_none())
            .collect();
        if !missing.is_empty() {
            ring.add_keys(&missing, None).await?;
        }
        Ok(ring)
    }

    /// Make new keys for `algs`; with `retire_until`, current keys of those algorithms are
    /// retired and keep verifying until then.
    async fn add_keys(&self, algs: &[Algorithm], retire_until: Option<i64>) -> anyhow::Result<()> {
        let mut made = Vec::new();
        for alg in algs {
            let alg = *alg;
            let pkcs8 = tokio::task::spawn_blocking(move || generate(alg)).await??;
            let kid = new_kid(alg);
            let jwk = public_jwk(&kid, alg, &encoding_key(alg, &pkcs8)?)?;
            let sealed = self.vault.seal(&vault_name(&kid), &pkcs8);
            made.push((kid, alg, sealed, serde_json::to_string(&jwk)?));
        }
        let rows: Vec<NewSigningKey<'_>> = made
            .iter()
            .map(|(kid, alg, sealed, jwk)| NewSigningKey {
                kid,
                alg: alg_name(*alg),
                private_sealed: sealed,
                public_jwk: jwk,
            })
            .collect();
        self.store.add_signing_keys(&rows, retire_until).await?;
        self.reload().await
    }

    /// Replace every signing key; the old ones verify until `retire_until`.
    pub async fn rotate(&self, retire_until: i64) -> anyhow::Result<()> {
        self.add_keys(&ALGORITHMS, Some(retire_until)).await
    }

    /// Read the keys from the database again (another node may have rotated them).
    pub async fn reload(&self) -> anyhow::Result<()> {
        let now = cells_store::now();
        let mut loaded = Vec::new();
        for row in self.store.list_signing_keys().await? {
            if row.expires_at.is_some_and(|at| at < now) {
                continue;
            }
            let Some(alg) = parse_alg(&row.alg) else { continue };
            let pkcs8 = self.vault.unseal(&vault_name(&row.kid), &row.private_sealed)?;
            let encoding = encoding_key(alg, &pkcs8)?;
            let pair = Pair::parse(alg, &pkcs8)?;
            let jwk: Jwk = serde_json::from_str(&row.public_jwk).context("stored JWK")?;
            let decoding = DecodingKey::from_jwk(&jwk).context("decoding key")?;
            loaded.push(Arc::new(LoadedKey {
                kid: row.kid,
                alg,
                encoding,
                decoding,
                jwk,
                created_at: row.created_at,
                retired_at: row.retired_at,
                expires_at: row.expires_at,
                pair,
            }));
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(())
    }

    /// The key that signs with `alg` now.
    pub fn signer(&self, alg: Algorithm) -> Option<Arc<LoadedKey>> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter(|k| k.alg == alg && k.retired_at.is_none())
            .max_by_key(|k| k.created_at)
            .cloned()
    }

    /// The key named `kid`, if it may still verify.
    pub fn verifier(&self, kid: &str) -> Option<Arc<LoadedKey>> {
        let now = cells_store::now();
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .find(|k| k.kid == kid && k.expires_at.is_none_or(|at| at >= now))
            .cloned()
    }

    /// Every key that may still verify, for `/oidc/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        let now = cells_store::now();
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        JwkSet {
            keys: keys
                .iter()
                .filter(|k| k.expires_at.is_none_or(|at| at >= now))
                .map(|k| k.jwk.clone())
                .collect(),
        }
    }

    /// All loaded keys, newest first (for `cells admin keys list`).
    pub fn all(&self) -> Vec<Arc<LoadedKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
