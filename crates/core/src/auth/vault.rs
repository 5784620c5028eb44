//! Server-generated secrets (PAT checksum key, session-cookie key, signing keys, the SFTP host
//! key), stored in the database sealed with AES-256-GCM under a master key that never enters
//! the database, so every node of a cluster shares them.
//!
//! The master key comes from `CELLS_MASTER_KEY` (64 hex characters), or from
//! `<data>/master.key`, created with mode 0600 on the first start of a new database. Every node
//! of a cluster needs the same master key: a node whose key cannot open the database's secrets
//! refuses to start, and never replaces a secret it cannot open.

use std::path::Path;

use anyhow::{Context, bail};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cells_store::Store;

pub struct Vault {
    key: LessSafeKey,
}

const SEALED_PREFIX: &str = "v1:";

/// The first secret a database gets: its presence says the database has a master key already,
/// and opening it says this node holds that key.
const FIRST_SECRET: &str = "pat_checksum_key";

impl Vault {
    /// The master key from the environment or the data dir; created in the data dir only for
    /// a database that has no secrets yet, and checked against the database's secrets.
    pub async fn open(data_dir: &Path, store: &Store) -> anyhow::Result<Vault> {
        let file = data_dir.join("master.key");
        let first = store.find_setting(FIRST_SECRET).await?;
        let hex_key = match std::env::var("CELLS_MASTER_KEY") {
            Ok(value) if !value.is_empty() => value,
            _ => match std::fs::read_to_string(&file) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && first.is_some() => bail!(
                    "this database's secrets are sealed under a master key this node does not have: \
                     start it with the cluster's key in CELLS_MASTER_KEY, or copy master.key from \
                     another node's data dir into {}",
                    data_dir.display()
                ),
                Err(_) => read_or_create_key_file(&file)?,
            },
        };
        let bytes = hex::decode(hex_key.trim()).context("master key is not hex")?;
        if bytes.len() != 32 {
            bail!("master key must be 32 bytes (64 hex characters)");
        }
        let vault = Vault::from_bytes(&bytes);
        if let Some(sealed) = first
            && vault.unseal(FIRST_SECRET, &sealed).is_err()
        {
            bail!(
                "the master key (CELLS_MASTER_KEY, or {}) is not the one this database's secrets \
                 are sealed with: start every node with the same master key (nothing was changed)",
                file.display()
            );
        }
        Ok(vault)
    }

    pub fn from_bytes(bytes: &[u8]) -> Vault {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte AES key");
        Vault {
            key: LessSafeKey::new(unbound),
        }
    }

    /// Encrypt `plain`, bound to `name` so a sealed value cannot be moved to another setting.
    pub fn seal(&self, name: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        crate::random::fill(&mut nonce);
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .expect("AES-GCM sealing of a small buffer");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    pub fn unseal(&self, name: &str, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .context("unknown sealed format")?;
        let mut data = STANDARD.decode(body).context("sealed value is not base64")?;
        if data.len() < NONCE_LEN {
            bail!("sealed value too short");
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&data[..NONCE_LEN]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data[NONCE_LEN..],
            )
            .map_err(|_| anyhow::anyhow!("cannot decrypt {name}: wrong master key?"))?;
        Ok(plain.to_vec())
    }

    /// The secret stored under `name`, generated (`len` random bytes) on first use. Several
    /// processes starting at once agree on the first one stored.
    pub async fn secret(&self, store: &Store, name: &str, len: usize) -> anyhow::Result<Vec<u8>> {
        self.secret_or(store, name, || {
            let mut fresh = vec![0u8; len];
            crate::random::fill(&mut fresh);
            Ok(fresh)
        })
        .await
    }

    /// The secret stored under `name`, or the one `make` gives, stored for every node (the
    /// first stored wins when several nodes start at once).
    pub async fn secret_or(
        &self,
        store: &Store,
        name: &str,
        make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Vec<u8>> {
        let sealed = match store.find_setting(name).await? {
            Some(sealed) => sealed,
            None => store.init_setting(name, &self.seal(name, &make()?)).await?,
        };
        self.unseal(name, &sealed)
    }
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            crate::random::fill(&mut bytes);
            let text = hex::encode(bytes);
            write_private(path, &text).with_context(|| format!("cannot create {}", path.display()))?;
            // Another process may have won the race: read back what is on disk.
            Ok(std::fs::read_to_string(path)?)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    };
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_binding() {
        let vault = Vault::from_bytes(&[7u8; 32]);
        let sealed = vault.seal("pat_key", b"secret bytes");
        assert!(!sealed.contains("secret"));
        assert_eq!(vault.unseal("pat_key", &sealed).unwrap(), b"secret bytes");
        assert!(vault.unseal("other_name", &sealed).is_err());
        assert!(Vault::from_bytes(&[8u8; 32]).unseal("pat_key", &sealed).is_err());
        assert!(vault.unseal("pat_key", "v1:AAAA").is_err());
        assert!(vault.unseal("pat_key", "garbage").is_err());
    }
}
