//! The server configuration: flags, then `CELLS_*` environment, then `pydio.json`, then defaults.
//!
//! The JSON file keeps Cells' layout so that OAuth settings sit where the seeds say
//! (`services."pydio.web.oauth"`); our own keys are top-level: `bind`, `sftp-bind`,
//! `external-url`, `database-url`, `s3-gateway-secret`, `s3-bucket-alias`, `tls-cert`,
//! `tls-key`, `tls-self-signed`, `http-redirect-bind`, `trusted-proxies`, and the limits
//! (`Limits`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::proxy::{Cidr, TrustedProxies};

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_SFTP_BIND: &str = "127.0.0.1:2022";
/// The S3 secret that goes with a token used as access key (seed 003: "the string
/// gatewaysecret as password").
pub const DEFAULT_S3_GATEWAY_SECRET: &str = "gatewaysecret";
/// The second name of the S3 bucket `io` (`s3-bucket-alias`).
pub const DEFAULT_S3_BUCKET_ALIAS: &str = "cells";

/// What the command line (with its environment fallbacks) said; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub database_url: Option<String>,
    pub blob_store: Option<String>,
    pub bind: Option<String>,
    pub sftp_bind: Option<String>,
    pub external_url: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: bool,
    pub http_redirect_bind: Option<String>,
    /// `--trusted-proxy`, repeatable; replaces the file's list when given.
    pub trusted_proxies: Vec<String>,
    /// Limits given on the command line (`--dependency-timeout 5s`), by their key: they win
    /// over the environment and the file.
    pub limits: Vec<(&'static str, String)>,
}

/// Where file content is kept (`--blob-store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// `file://DIR`: a folder on this node's disk (default `DATA/blobs`).
    Disk(PathBuf),
    /// `s3://BUCKET[/PREFIX]`: an S3-compatible object store, reached with the standard
    /// `AWS_*` variables.
    S3 { bucket: String, prefix: String },
}

impl BlobLocation {
    /// Parse `file://DIR` (relative to `data_dir` unless absolute) or `s3://BUCKET[/PREFIX]`.
    pub fn parse(url: &str, data_dir: &Path) -> anyhow::Result<BlobLocation> {
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                anyhow::bail!("blob-store {url:?}: give a folder, as in file:///srv/cells/blobs");
            }
            return Ok(BlobLocation::Disk(data_dir.join(dir)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let prefix = prefix.trim_matches('/');
            // S3's bucket naming rules (3-63 of a-z, 0-9, '.', '-'); the prefix is a key
            // prefix of printable characters.
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
            let prefix_ok = prefix.len() <= 512
                && prefix.chars().all(|c| !c.is_control())
                && prefix
                    .split('/')
                    .all(|part| !part.is_empty() && part != "." && part != "..")
                || prefix.is_empty();
            if !bucket_ok || !prefix_ok {
                anyhow::bail!(
                    "blob-store {url:?}: s3://BUCKET[/PREFIX] with a bucket name of 3 to 63 \
                     lower-case letters, digits, '.' and '-'"
                );
            }
            return Ok(BlobLocation::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        anyhow::bail!("blob-store {url:?}: expected file://DIR or s3://BUCKET[/PREFIX]")
    }
}

/// HTTPS served by this process itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// `--tls-cert` and `--tls-key`: PEM files, reloaded when they change or on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// `--tls-self-signed`: a pair made once in `DATA/tls/` and kept.
    SelfSigned,
}

/// A value that must not reach a log line: `Debug` prints a placeholder, and the value is
/// read only through `expose`, where a reader can see it is secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// `services."pydio.web.oauth"` of `pydio.json`, as Cells writes it. The keys we do not use
/// (Cells carries more: `secret`, `cors`, `insecureRedirects`, `connectors`, …) are accepted
/// and ignored, so a Cells configuration loads as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSection {
    /// Go durations (`10m`, `1h`), as Hydra reads them.
    pub access_token_lifespan: Option<String>,
    pub id_token_lifespan: Option<String>,
    pub refresh_token_lifespan: Option<String>,
    pub auth_code_lifespan: Option<String>,
    /// Hydra client documents (`auth::oidc::clients` reads them); they carry client secrets.
    #[serde(default)]
    pub static_clients: Secret<Vec<Value>>,
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Secret<T>, D::Error> {
        T::deserialize(deserializer).map(Secret)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub config_file: PathBuf,
    /// May carry the database's password (`postgres://user:password@…`).
    pub database_url: Secret,
    /// `blob-store`: where file content is kept.
    pub blob_store: BlobLocation,
    pub bind: String,
    pub sftp_bind: String,
    /// Public base URL, without a trailing slash.
    pub external_url: String,
    /// The external URL was derived from `bind` (not given), so it follows the bound port.
    pub external_url_is_default: bool,
    /// First administrator, created when the database has no user yet.
    pub admin_login: String,
    /// Its password; `None` generates one and prints it once.
    pub admin_password: Option<Secret>,
    /// S3 secret access key for a token used as the access key.
    pub s3_gateway_secret: Secret,
    /// HTTPS on `bind`; `None` serves plain HTTP (behind a proxy that ends TLS, say).
    pub tls: Option<Tls>,
    /// `http-redirect-bind`: a plain-HTTP port beside HTTPS that only redirects.
    pub http_redirect_bind: Option<String>,
    /// `trusted-proxy`: who may name the client in `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
    /// `s3-bucket-alias`: a second name of the `io` bucket, for clients that check S3's
    /// 3-63 character rule before they send anything (minio-go, so restic and `mc`).
    pub s3_bucket_alias: String,
    /// `services."pydio.web.oauth"` of `pydio.json`: the provider's clients and lifespans.
    pub oauth: OAuthSection,
    pub limits: Limits,
}

/// Limits on what one client may hold or try. Each is set by an environment variable
/// (`CELLS_` + the key in upper case with `_`) or a top-level `pydio.json` key; durations are
/// written `30s`, `10m`, `2h`, `1d` or as seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `http-header-timeout`: the whole request head must arrive within this.
    pub http_header_timeout: Duration,
    /// `http-idle-timeout`: a connection with no request in progress and no traffic is closed.
    pub http_idle_timeout: Duration,
    /// `http-connections-per-address`: open HTTP connections from one address (IPv6: one /64);
    /// past it, requests get 503 (`/healthz` excepted).
    pub http_connections_per_address: usize,
    /// `sftp-auth-timeout`: an SSH connection must have authenticated within this.
    pub sftp_auth_timeout: Duration,
    /// `sftp-connections-per-user`, `sftp-connections-per-address`: open SSH connections.
    pub sftp_connections_per_user: usize,
    pub sftp_connections_per_address: usize,
    /// `login-suspension`: how long failed logins first suspend password logins; it doubles
    /// with each suspension in a row, up to `login-suspension-max`.
    pub login_suspension: Duration,
    pub login_suspension_max: Duration,
    /// `tls-handshake-timeout`: a TLS connection must have finished its handshake within this.
    pub tls_handshake_timeout: Duration,
    /// `max-file-size`: the largest file any write may leave, however written (a sparse
    /// extension by truncate included); `1T`, `500G` (binary units) or bytes.
    pub max_file_size: u64,
    /// `dependency-timeout`: the longest a request waits for the database (or the blob store)
    /// that does not answer; once it is known down, requests are answered "unavailable" at once.
    pub dependency_timeout: Duration,
    /// `shutdown-timeout`: after SIGTERM, how long requests and transfers in flight may take
    /// to finish before the node closes anyway.
    pub shutdown_timeout: Duration,
    /// `delete-reserve`: disk space kept back on the blob store's file system for deletes and
    /// the database's own writes: writes are refused (507) before the disk is completely full.
    pub delete_reserve: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            http_header_timeout: Duration::from_secs(30),
            http_idle_timeout: Duration::from_secs(120),
            http_connections_per_address: 256,
            sftp_auth_timeout: Duration::from_secs(30),
            sftp_connections_per_user: 32,
            sftp_connections_per_address: 64,
            login_suspension: Duration::from_secs(15 * 60),
            login_suspension_max: Duration::from_secs(24 * 3600),
            tls_handshake_timeout: Duration::from_secs(10),
            max_file_size: 1 << 40,
            dependency_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            delete_reserve: 4 << 20,
        }
    }
}

impl Limits {
    /// Read every limit from the environment, then `file`, then the default.
    fn load(file: &Value, given: &[(&'static str, String)]) -> anyhow::Result<Limits> {
        let defaults = Limits::default();
        let text = |key: &str| -> Option<String> {
            let variable = format!("CELLS_{}", key.to_ascii_uppercase().replace('-', "_"));
            let flag = given.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
            flag.or_else(|| std::env::var(&variable).ok())
                .filter(|v| !v.trim().is_empty())
                .or_else(|| match file.get(key) {
                    Some(Value::String(text)) => Some(text.clone()),
                    Some(Value::Number(number)) => Some(number.to_string()),
                    _ => None,
                })
        };
        let duration = |key: &str, default: Duration| -> anyhow::Result<Duration> {
            match text(key) {
                // The CLI's parser: Go-style with days, or a bare number of seconds.
                Some(value) => crate::duration::parse(&value, true)
                    .map(|seconds| Duration::from_secs(seconds as u64))
                    .with_context(|| format!("{key}: not a duration such as 30s, 10m, 2h or 1d")),
                None => Ok(default),
            }
        };
        let count = |key: &str, default: usize| -> anyhow::Result<usize> {
            match text(key) {
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => anyhow::bail!("{key}: {value:?} is not a positive whole number"),
                },
                None => Ok(default),
            }
        };
        let limits = Limits {
            http_header_timeout: duration("http-header-timeout", defaults.http_header_timeout)?,
            http_idle_timeout: duration("http-idle-timeout", defaults.http_idle_timeout)?,
            http_connections_per_address: count(
                "http-connections-per-address",
                defaults.http_connections_per_address,
            )?,
            sftp_auth_timeout: duration("sftp-auth-timeout", defaults.sftp_auth_timeout)?,
            sftp_connections_per_user: count(
                "sftp-connections-per-user",
                defaults.sftp_connections_per_user,
            )?,
            sftp_connections_per_address: count(
                "sftp-connections-per-address",
                defaults.sftp_connections_per_address,
            )?,
            login_suspension: duration("login-suspension", defaults.login_suspension)?,
            login_suspension_max: duration("login-suspension-max", defaults.login_suspension_max)?,
            tls_handshake_timeout: duration("tls-handshake-timeout", defaults.tls_handshake_timeout)?,
            max_file_size: match text("max-file-size") {
                Some(value) => parse_size(&value).with_context(|| {
                    format!("max-file-size: {value:?} is not a size such as 1T, 500G or 10M")
                })?,
                None => defaults.max_file_size,
            },
            dependency_timeout: duration("dependency-timeout", defaults.dependency_timeout)?,
            shutdown_timeout: duration("shutdown-timeout", defaults.shutdown_timeout)?,
            delete_reserve: match text("delete-reserve") {
                Some(value) if value.trim() == "0" => 0,
                Some(value) => parse_size(&value)
                    .with_context(|| format!("delete-reserve: {value:?} is not a size such as 4M or 0"))?,
                None => defaults.delete_reserve,
            },
        };
        if limits.dependency_timeout.is_zero() {
            anyhow::bail!("dependency-timeout must be at least 1s");
        }
        if limits.login_suspension_max < limits.login_suspension {
            anyhow::bail!("login-suspension-max must be at least login-suspension");
        }
        Ok(limits)
    }
}

/// A size in bytes: a number, with an optional binary unit `K`, `M`, `G`, `T` (`Ki`, `KiB`, `KB`
/// alike: 1024-based); never zero.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit = text[digits..].trim().to_ascii_uppercase();
    let unit = unit.trim_end_matches('B').trim_end_matches('I');
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => return None,
    };
    number.checked_mul(1u64 << shift).filter(|size| *size > 0)
}

impl Config {
    /// Resolve the configuration. The data dir is created if missing.
    pub fn load(overrides: Overrides) -> anyhow::Result<Config> {
        let data_dir = overrides.data_dir.unwrap_or_else(|| PathBuf::from("cells-data"));
        if !data_dir.exists() {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
            // The database holds password and token hashes: keep the new dir to its owner.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", data_dir.display()))?;
        }
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("cannot resolve data dir {}", data_dir.display()))?;
        let config_file = overrides
            .config_file
            .unwrap_or_else(|| data_dir.join("pydio.json"));
        let file = read_json(&config_file)?;
        let key = |name: &str| file.get(name).and_then(Value::as_str).map(str::to_string);

        let bind = overrides
            .bind
            .or_else(|| key("bind"))
            .unwrap_or_else(|| DEFAULT_BIND.into());
        let sftp_bind = overrides
            .sftp_bind
            .or_else(|| key("sftp-bind"))
            .unwrap_or_else(|| DEFAULT_SFTP_BIND.into());
        let tls = tls_of(
            overrides.tls_cert,
            overrides.tls_key,
            overrides.tls_self_signed,
            &file,
        )?;
        let given_url = overrides.external_url.or_else(|| key("external-url"));
        let external_url_is_default = given_url.is_none();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let external_url = given_url.unwrap_or_else(|| format!("{scheme}://{bind}"));
        let external_url = external_url.trim_end_matches('/').to_string();
        if !(external_url.starts_with("http://") || external_url.starts_with("https://")) {
            anyhow::bail!("external URL {external_url:?} must start with http:// or https://");
        }
        let database_url = overrides
            .database_url
            .or_else(|| key("database-url"))
            .unwrap_or_else(|| sqlite_url(&data_dir.join("cells.db")));
        let blob_store = match overrides.blob_store.or_else(|| key("blob-store")) {
            Some(url) => BlobLocation::parse(&url, &data_dir)?,
            None => BlobLocation::Disk(data_dir.join("blobs")),
        };
        let env = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        let admin_login =
            env(["CELLS_ADMIN_LOGIN", "PYDIO_ADMIN_USER_LOGIN"]).unwrap_or_else(|| "admin".into());
        let admin_password = env(["CELLS_ADMIN_PASSWORD", "PYDIO_ADMIN_USER_PASSWORD"]);
        let s3_gateway_secret = std::env::var("CELLS_S3_GATEWAY_SECRET")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| key("s3-gateway-secret"))
            .unwrap_or_else(|| DEFAULT_S3_GATEWAY_SECRET.into());
        let s3_bucket_alias = std::env::var("CELLS_S3_BUCKET_ALIAS")
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| key("s3-bucket-alias"))
            .unwrap_or_else(|| DEFAULT_S3_BUCKET_ALIAS.into());
        if !is_bucket_alias(&s3_bucket_alias) {
            anyhow::bail!(
                "s3-bucket-alias {s3_bucket_alias:?}: 3 to 63 lower-case letters, digits and '-', \
                 starting and ending with a letter or digit, other than io"
            );
        }
        let http_redirect_bind = overrides.http_redirect_bind.or_else(|| key("http-redirect-bind"));
        if http_redirect_bind.is_some() && tls.is_none() {
            anyhow::bail!(
                "http-redirect-bind redirects to HTTPS: give --tls-cert and --tls-key or --tls-self-signed"
            );
        }
        let proxies = if overrides.trusted_proxies.is_empty() {
            match file.get("trusted-proxies") {
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(one)) => vec![one.clone()],
                _ => Vec::new(),
            }
        } else {
            overrides.trusted_proxies
        };
        let mut trusted = Vec::new();
        for text in proxies
            .iter()
            .flat_map(|p| p.split(','))
            .filter(|p| !p.trim().is_empty())
        {
            trusted.push(Cidr::parse(text).with_context(|| {
                format!("trusted-proxy {text:?} is not an address range such as 10.0.0.0/8")
            })?);
        }
        Ok(Config {
            data_dir,
            config_file,
            database_url: Secret::new(database_url),
            blob_store,
            bind,
            sftp_bind,
            external_url,
            external_url_is_default,
            admin_login,
            admin_password: admin_password.map(Secret::new),
            s3_gateway_secret: Secret::new(s3_gateway_secret),
            s3_bucket_alias,
            tls,
            http_redirect_bind,
            trusted_proxies: TrustedProxies::new(trusted),
            limits: Limits::load(&file, &overrides.limits)?,
            oauth: match file.pointer("/services/pydio.web.oauth") {
                Some(section) => serde_json::from_value(section.clone())
                    .context("services.\"pydio.web.oauth\" in the configuration file")?,
                None => OAuthSection::default(),
            },
        })
    }

    /// The folder of the blobs on local disk; with an object store, the node's own folder
    /// for SFTP drafts and other spool files.
    pub fn blobs_dir(&self) -> PathBuf {
        match &self.blob_store {
            BlobLocation::Disk(dir) => dir.clone(),
            BlobLocation::S3 { .. } => self.data_dir.join("spool"),
        }
    }

    /// Where `--tls-self-signed` keeps its pair.
    pub fn tls_dir(&self) -> PathBuf {
        self.data_dir.join("tls")
    }

    /// Browsers reach us over HTTPS (here or at a proxy in front): cookies get `Secure` and
    /// the `__Host-` prefix.
    pub fn is_https(&self) -> bool {
        self.external_url.starts_with("https://")
    }

    /// Send `Strict-Transport-Security`: only with a real certificate (`--tls-cert`) for a DNS
    /// name. HSTS ignores ports, so on `localhost` or an address it would break every other
    /// plain-HTTP service of that host; a self-signed certificate would lock browsers out.
    pub fn sends_hsts(&self) -> bool {
        let host = self
            .external_url
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
            .unwrap_or("");
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host,
        };
        let is_name = !host.starts_with('[')
            && host.parse::<std::net::IpAddr>().is_err()
            && host.contains(|c: char| c.is_ascii_alphabetic());
        let local =
            host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost");
        matches!(self.tls, Some(Tls::Files { .. })) && self.is_https() && is_name && !local
    }
}

/// HTTPS from the flags, or the file's `tls-cert`/`tls-key`/`tls-self-signed`.
fn tls_of(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    self_signed: bool,
    file: &Value,
) -> anyhow::Result<Option<Tls>> {
    let path = |name: &str| file.get(name).and_then(Value::as_str).map(PathBuf::from);
    let cert = cert.or_else(|| path("tls-cert"));
    let key = key.or_else(|| path("tls-key"));
    let self_signed = self_signed || file.get("tls-self-signed").and_then(Value::as_bool) == Some(true);
    match (cert, key, self_signed) {
        (Some(_), Some(_), true) => {
            anyhow::bail!("give either --tls-cert and --tls-key or --tls-self-signed, not both")
        }
        (Some(cert), Some(key), false) => Ok(Some(Tls::Files { cert, key })),
        (Some(_), None, _) | (None, Some(_), _) => anyhow::bail!("--tls-cert and --tls-key go together"),
        (None, None, true) => Ok(Some(Tls::SelfSigned)),
        (None, None, false) => Ok(None),
    }
}

/// An S3 bucket name clients accept (AWS's rules for new buckets, without dots, so that no
/// client mistakes it for an address) that is not `io` itself.
fn is_bucket_alias(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name != "io"
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
}

/// `sqlite://` URL of a database file, created when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let value: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            if !value.is_object() {
                anyhow::bail!("{} must hold a JSON object", path.display());
            }
            Ok(value)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Object(Default::default())),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::{Config, Overrides, is_bucket_alias, parse_size};

    #[test]
    fn bucket_aliases_follow_the_s3_naming_rules() {
        for good in ["cells", "abc", "team-files-2", &"a".repeat(63)] {
            assert!(is_bucket_alias(good), "{good}");
        }
        for bad in [
            "io",
            "ab",
            "Cells",
            "-cells",
            "cells-",
            "my.bucket",
            "a_b",
            &"a".repeat(64),
            "",
        ] {
            assert!(!is_bucket_alias(bad), "{bad}");
        }
    }

    /// A Cells `pydio.json` loads with every key it carries; its secrets, the admin password
    /// and the database password never show in `Debug`.
    #[test]
    fn cells_configuration_loads_and_debug_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pydio.json");
        std::fs::write(
            &file,
            r#"{"version": "4.4", "defaults": {"url": "https://x"}, "services": {"pydio.web.oauth": {
                "secret": "hydra-system-secret-value", "cors": {"public": {"allowedOrigins": "*"}},
                "insecureRedirects": ["http://localhost/*"], "connectors": [{"type": "pydio", "id": "pydio"}],
                "accessTokenLifespan": "15m", "refreshTokenLifespan": "720h",
                "staticClients": [{"client_id": "c", "client_secret": "client-secret-value",
                    "grant_types": ["client_credentials"]}]}}}"#,
        )
        .unwrap();
        let config = Config::load(Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            config_file: Some(file),
            database_url: Some("postgres://cells:database-password@127.0.0.1/cells".into()),
            ..Overrides::default()
        })
        .unwrap();
        assert_eq!(config.oauth.access_token_lifespan.as_deref(), Some("15m"));
        assert_eq!(config.oauth.static_clients.expose().len(), 1);
        let mut config = config;
        config.admin_password = Some("admin-password-value".into());
        let shown = format!("{config:?}");
        for secret in [
            "client-secret-value",
            "database-password",
            "admin-password-value",
            "hydra-system",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("500G"), Some(500 << 30));
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size(" 2 kb "), Some(2048));
        for bad in ["", "0", "G", "1X", "-1G", "99999999999P", "1.5G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
