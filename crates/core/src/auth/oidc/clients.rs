//! OAuth clients: Cells' default public clients, `staticClients` from `pydio.json` (Hydra
//! client JSON), and clients added with `cells admin client add` (stored, secret hashed).
//!
//! Redirect URIs match exactly, byte for byte: no prefix, wildcard or case folding. A
//! `[A-B]` port range in a registered URI expands to one exact URI per port.

use anyhow::{Context, bail};
use aws_lc_rs::digest;
use cells_store::{ClientRow, NewClient, Store};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::keys::{alg_name, parse_alg};
use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientSecret {
    /// A public client: no secret, PKCE instead.
    None,
    /// From `pydio.json`: compared in constant time.
    Plain(String),
    /// From the database: hex SHA-256 of a generated high-entropy secret.
    Sha256(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Default,
    Config,
    Database,
}

impl Source {
    /// How listings name it: built in, from `pydio.json`, or added with the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::Config => "config",
            Source::Database => "added",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub id: String,
    pub name: String,
    pub secret: ClientSecret,
    /// Exact URIs, ranges expanded.
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    pub scopes: Vec<String>,
    pub id_token_alg: Algorithm,
    /// What signs this client's access tokens: ES256 unless the client's JSON asks for RS256
    /// or EdDSA (`access_token_signed_response_alg`). ES256 and RS256 are what every resource
    /// server's JOSE library verifies (cjose in mod_auth_openidc has no EdDSA).
    pub access_token_alg: Algorithm,
    /// May introspect personal access tokens too (`introspect_personal_tokens`): for a
    /// reverse proxy in front of another service. Off by default: a PAT is a full credential
    /// on four protocols, and introspection tells its owner and scopes.
    pub introspect_personal_tokens: bool,
    /// First-party clients get no consent page.
    pub skip_consent: bool,
    /// Cells' public apps (`cells-sync`, `cells-client`, `cells-mobile`): consent is asked at
    /// every authorization, never remembered, and `prompt=none` gets `consent_required`.
    /// Their redirect URIs are localhost ports and a custom scheme that any local program
    /// can listen on, and without a secret nothing proves the app is the real one: a page
    /// could otherwise make a signed-in browser hand such a program a code silently, PKCE or
    /// not, since the attacker picks the verifier (RFC 8252 §8.6).
    pub always_ask_consent: bool,
    /// Cells' default clients: their real apps predate PKCE, so it is not required of them.
    pub pkce_optional: bool,
    /// Where RP-initiated logout may send the browser back (exact match).
    pub post_logout_redirect_uris: Vec<String>,
    /// `client_secret_basic` or `client_secret_post` when declared: then only that method is
    /// accepted. Undeclared: either.
    pub auth_method: Option<String>,
    pub source: Source,
}

impl OAuthClient {
    pub fn is_public(&self) -> bool {
        self.secret == ClientSecret::None
    }

    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// Exact match of a redirect URI (RFC 6749 §3.1.2.3, OAuth security BCP §4.1.3).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered.as_bytes().ct_eq(uri.as_bytes()).into())
    }

    pub fn allows_post_logout(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris
            .iter()
            .any(|registered| registered.as_bytes().ct_eq(uri.as_bytes()).into())
    }

    /// Check a presented secret in constant time. Public clients have none to check.
    pub fn secret_matches(&self, presented: &str) -> bool {
        match &self.secret {
            ClientSecret::None => false,
            ClientSecret::Plain(expected) => expected.as_bytes().ct_eq(presented.as_bytes()).into(),
            ClientSecret::Sha256(hash) => {
                let presented = hex::encode(digest::digest(&digest::SHA256, presented.as_bytes()));
                hash.as_bytes().ct_eq(presented.as_bytes()).into()
            }
        }
    }

    /// Scopes requested that this client may have, in request order; an unknown one is an error.
    pub fn check_scopes(&self, requested: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for scope in requested.split_whitespace() {
            if !self.scopes.iter().any(|s| s == scope) {
                return Err(Error::invalid(
                    "scope",
                    format!("{scope:?} is not allowed for {}", self.id),
                ));
            }
            if !out.iter().any(|s: &String| s == scope) {
                out.push(scope.to_string());
            }
        }
        Ok(out)
    }
}

/// `http://localhost:[3636-3666]` → one URI per port; other URIs as they are.
pub fn expand_range(uri: &str) -> Result<Vec<String>> {
    let (Some(open), Some(close)) = (uri.find('['), uri.find(']')) else {
        return Ok(vec![uri.to_string()]);
    };
    let bad = || {
        Error::invalid(
            "redirect_uris",
            format!("{uri:?}: a port range is written [FROM-TO]"),
        )
    };
    if close < open {
        return Err(bad());
    }
    let (from, to) = uri[open + 1..close].split_once('-').ok_or_else(bad)?;
    let (from, to): (u16, u16) = (from.parse().map_err(|_| bad())?, to.parse().map_err(|_| bad())?);
    if from > to || to - from > 1000 {
        return Err(bad());
    }
    Ok((from..=to)
        .map(|port| format!("{}{port}{}", &uri[..open], &uri[close + 1..]))
        .collect())
}

/// Each URI as written, and with Cells' `/servers/callback` path (SPEC 3.3).
fn with_cells_callbacks(uris: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for uri in uris {
        out.push(uri.clone());
        if !uri.ends_with("/servers/callback") {
            out.push(format!("{}/servers/callback", uri.trim_end_matches('/')));
        }
    }
    out
}

const DEFAULT_SCOPES: &str = "openid email profile pydio offline offline_access";

fn default_client(id: &str, name: &str, uris: &[&str]) -> Result<OAuthClient> {
    let mut expanded = Vec::new();
    for uri in uris {
        expanded.extend(expand_range(uri)?);
    }
    Ok(OAuthClient {
        id: id.into(),
        name: name.into(),
        secret: ClientSecret::None,
        redirect_uris: with_cells_callbacks(&expanded),
        grant_types: vec![
            "authorization_code".into(),
            "refresh_token".into(),
            DEVICE_GRANT.into(),
        ],
        response_types: vec!["code".into()],
        scopes: DEFAULT_SCOPES.split(' ').map(str::to_string).collect(),
        id_token_alg: Algorithm::RS256,
        access_token_alg: Algorithm::ES256,
        introspect_personal_tokens: false,
        // Our own pages: the code comes back to this server, so there is nothing to ask.
        skip_consent: id == "cells-frontend",
        always_ask_consent: id != "cells-frontend",
        pkce_optional: true,
        post_logout_redirect_uris: Vec::new(),
        auth_method: None,
        source: Source::Default,
    })
}

pub const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The host of the external URL: Cells' "serverName" in `cellsauth://serverName`.
fn server_name(external_url: &str) -> String {
    let rest = external_url
        .split_once("://")
        .map_or(external_url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => authority.to_string(),
    }
}

fn defaults(external_url: &str) -> Result<Vec<OAuthClient>> {
    let mobile = format!("cellsauth://{}", server_name(external_url));
    let oob2 = format!("{external_url}/oauth2/oob");
    let oob = format!("{external_url}/oauth/oob");
    let frontend = format!("{external_url}/login/callback");
    Ok(vec![
        default_client(
            "cells-sync",
            "Cells Sync",
            &["http://localhost:[3636-3666]", "http://localhost:3000"],
        )?,
        default_client("cells-mobile", "Cells Mobile", &[&mobile, "cellsauth://callback"])?,
        default_client(
            "cells-client",
            "Cells Client",
            &[
                "http://localhost:3636",
                "http://localhost:3000/servers/callback",
                &oob2,
                &oob,
            ],
        )?,
        default_client("cells-frontend", "Cells web pages", &[&frontend])?,
    ])
}

/// `code`, `token`, `id_token` or a space-separated combination of them (OAuth 2.0 Multiple
/// Response Type Encoding Practices §3-5): what a Hydra client may list.
fn is_known_response_type(value: &str) -> bool {
    let mut parts: Vec<&str> = value.split(' ').collect();
    parts.sort_unstable();
    let len = parts.len();
    parts.dedup();
    len == parts.len() && parts.iter().all(|p| ["code", "token", "id_token"].contains(p))
}

/// A client as Hydra (and Cells' `staticClients`) write it.
#[derive(Deserialize)]
pub struct HydraClient {
    pub client_id: String,
    #[serde(default)]
    pub client_name: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub grant_types: Vec<String>,
    #[serde(default)]
    pub response_types: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    pub id_token_signed_response_alg: Option<String>,
    /// Ours: what signs this client's access tokens (`OAuthClient::access_token_alg`).
    #[serde(default)]
    pub access_token_signed_response_alg: Option<String>,
    /// Ours: may introspect personal access tokens.
    #[serde(default)]
    pub introspect_personal_tokens: bool,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Ours: no consent page for this client.
    #[serde(default)]
    pub skip_consent: bool,
}

impl HydraClient {
    /// Check the client. `generated_secret`: the server will make the secret (CLI), so a
    /// confidential grant without `client_secret` is fine.
    fn validate(&self, generated_secret: bool) -> Result<()> {
        let id = &self.client_id;
        if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == ':') {
            return Err(Error::invalid(
                "client_id",
                "1 to 128 characters, no ':' or control characters",
            ));
        }
        for grant in &self.grant_types {
            if ![
                "authorization_code",
                "refresh_token",
                "client_credentials",
                DEVICE_GRANT,
            ]
            .contains(&grant.as_str())
            {
                return Err(Error::invalid(
                    "grant_types",
                    format!("{grant:?} is not supported"),
                ));
            }
        }
        for response in &self.response_types {
            if !is_known_response_type(response) {
                return Err(Error::invalid(
                    "response_types",
                    format!("{response:?}: \"code\", \"token\", \"id_token\" or a combination"),
                ));
            }
        }
        for uri in self.redirect_uris.iter().chain(&self.post_logout_redirect_uris) {
            if uri.contains('#') || !uri.contains("://") {
                return Err(Error::invalid(
                    "redirect_uris",
                    format!("{uri:?} must be absolute, without fragment"),
                ));
            }
        }
        let public = self.client_secret.as_deref().is_none_or(str::is_empty);
        if public && !generated_secret && self.grant_types.iter().any(|g| g == "client_credentials") {
            return Err(Error::invalid(
                "grant_types",
                "client_credentials needs a client_secret",
            ));
        }
        if let Some(method) = &self.token_endpoint_auth_method
            && !["client_secret_basic", "client_secret_post", "none"].contains(&method.as_str())
        {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "client_secret_basic, client_secret_post or none",
            ));
        }
        for (field, alg) in [
            ("id_token_signed_response_alg", &self.id_token_signed_response_alg),
            (
                "access_token_signed_response_alg",
                &self.access_token_signed_response_alg,
            ),
        ] {
            if alg.as_deref().is_some_and(|alg| parse_alg(alg).is_none()) {
                return Err(Error::invalid(field, "RS256, ES256 or EdDSA"));
            }
        }
        if self.introspect_personal_tokens
            && self.client_secret.as_deref().is_none_or(str::is_empty)
            && !generated_secret
        {
            return Err(Error::invalid(
                "introspect_personal_tokens",
                "only a confidential client (with a client_secret) may introspect",
            ));
        }
        Ok(())
    }

    fn into_client(self, secret: ClientSecret, source: Source) -> Result<OAuthClient> {
        self.validate(false)?;
        // Cells' documentation lists "code, token, id_token" for its clients, so a copied
        // configuration carries them: it loads, and only the code flow is served. The
        // authorization endpoint answers the others `unsupported_response_type`.
        let unserved: Vec<&str> = self
            .response_types
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "code")
            .collect();
        if !unserved.is_empty() {
            tracing::warn!(
                client = %self.client_id,
                response_types = ?unserved,
                "implicit and hybrid responses are not served (RFC 9700 §2.1.2); this client gets the code flow only"
            );
        }
        let mut redirect_uris = Vec::new();
        for uri in &self.redirect_uris {
            redirect_uris.extend(expand_range(uri)?);
        }
        let grant_types = if self.grant_types.is_empty() {
            vec!["authorization_code".to_string()]
        } else {
            self.grant_types
        };
        Ok(OAuthClient {
            name: if self.client_name.is_empty() {
                self.client_id.clone()
            } else {
                self.client_name
            },
            id: self.client_id,
            secret,
            redirect_uris,
            grant_types,
            response_types: vec!["code".into()],
            scopes: self
                .scope
                .as_deref()
                .unwrap_or(DEFAULT_SCOPES)
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            id_token_alg: self
                .id_token_signed_response_alg
                .as_deref()
                .and_then(parse_alg)
                .unwrap_or(Algorithm::RS256),
            access_token_alg: self
                .access_token_signed_response_alg
                .as_deref()
                .and_then(parse_alg)
                .unwrap_or(Algorithm::ES256),
            introspect_personal_tokens: self.introspect_personal_tokens,
            skip_consent: self.skip_consent,
            always_ask_consent: false,
            pkce_optional: false,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            auth_method: self.token_endpoint_auth_method.filter(|m| m != "none"),
            source,
        })
    }
}

/// Every client we know: defaults and config first, then the database.
pub struct Clients {
    fixed: Vec<OAuthClient>,
    store: Store,
}

impl Clients {
    pub fn load(config: &Config, store: Store) -> anyhow::Result<Clients> {
        let mut fixed = defaults(&config.external_url).map_err(|e| anyhow::anyhow!("{e}"))?;
        let configured = Value::Array(config.oauth.static_clients.expose().clone());
        let configured: Vec<HydraClient> =
            serde_json::from_value(configured).context("services.\"pydio.web.oauth\".staticClients")?;
        for client in configured {
            let id = client.client_id.clone();
            let secret = match client.client_secret.clone().filter(|s| !s.is_empty()) {
                Some(secret) => ClientSecret::Plain(secret),
                None => ClientSecret::None,
            };
            let client = client
                .into_client(secret, Source::Config)
                .map_err(|e| anyhow::anyhow!("client {id}: {e}"))?;
            // A configured client replaces a default one of the same id.
            fixed.retain(|c| c.id != client.id);
            fixed.push(client);
        }
        Ok(Clients { fixed, store })
    }

    pub async fn find(&self, id: &str) -> Result<Option<OAuthClient>> {
        if let Some(client) = self.fixed.iter().find(|c| c.id == id) {
            return Ok(Some(client.clone()));
        }
        match self.store.find_client(id).await? {
            Some(row) => Ok(Some(from_row(row)?)),
            None => Ok(None),
        }
    }

    pub async fn list(&self) -> Result<Vec<OAuthClient>> {
        let mut out = self.fixed.clone();
        for row in self.store.list_clients().await? {
            out.push(from_row(row)?);
        }
        Ok(out)
    }

    /// Store a new client. A confidential client gets a generated secret, returned once.
    /// Delete an added client and revoke its grants; `NotFound` for a default or configured
    /// one (they live in code and `pydio.json`) or an unknown id.
    pub async fn delete(&self, id: &str) -> crate::error::Result<()> {
        Ok(self.store.delete_client(id).await?)
    }

    pub async fn add(&self, client: HydraClient) -> Result<(OAuthClient, Option<String>)> {
        if self.fixed.iter().any(|c| c.id == client.client_id) {
            return Err(Error::Conflict(format!(
                "client {} is defined by default or in pydio.json",
                client.client_id
            )));
        }
        client.validate(true)?;
        let confidential = client.client_secret.is_some()
            || client.grant_types.iter().any(|g| g == "client_credentials")
            || client
                .token_endpoint_auth_method
                .as_deref()
                .is_some_and(|m| m != "none");
        let secret = confidential.then(|| {
            let mut bytes = [0u8; 32];
            crate::random::fill(&mut bytes);
            hex::encode(bytes)
        });
        let hash = secret
            .as_ref()
            .map(|s| hex::encode(digest::digest(&digest::SHA256, s.as_bytes())));
        let method = match (confidential, client.token_endpoint_auth_method.as_deref()) {
            (false, _) => "none",
            (true, Some("client_secret_post")) => "client_secret_post",
            (true, _) => "client_secret_basic",
        };
        let alg = client.id_token_signed_response_alg.as_deref().unwrap_or("RS256");
        let access_alg = client
            .access_token_signed_response_alg
            .as_deref()
            .unwrap_or("ES256");
        let scope = client.scope.clone().unwrap_or_else(|| DEFAULT_SCOPES.to_string());
        let grant_types = if client.grant_types.is_empty() {
            vec!["authorization_code".to_string()]
        } else {
            client.grant_types.clone()
        };
        let redirect_uris: Vec<&str> = client.redirect_uris.iter().map(String::as_str).collect();
        let post_logout: Vec<&str> = client
            .post_logout_redirect_uris
            .iter()
            .map(String::as_str)
            .collect();
        let grant_types: Vec<&str> = grant_types.iter().map(String::as_str).collect();
        let row = self
            .store
            .create_client(NewClient {
                client_id: &client.client_id,
                client_name: &client.client_name,
                secret_hash: hash.as_deref(),
                redirect_uris: &redirect_uris,
                grant_types: &grant_types,
                response_types: &["code"],
                scope: &scope,
                token_endpoint_auth_method: method,
                id_token_alg: alg,
                skip_consent: client.skip_consent,
                post_logout_redirect_uris: &post_logout,
                access_token_alg: access_alg,
                introspect_personal_tokens: client.introspect_personal_tokens && confidential,
            })
            .await
            .map_err(|e| match e {
                cells_store::StoreError::Conflict(_) => {
                    Error::Conflict(format!("client {} exists", client.client_id))
                }
                other => other.into(),
            })?;
        Ok((from_row(row)?, secret))
    }
}

fn from_row(row: ClientRow) -> Result<OAuthClient> {
    let secret = match row.secret_hash {
        Some(hash) => ClientSecret::Sha256(hash),
        None => ClientSecret::None,
    };
    let mut redirect_uris = Vec::new();
    for uri in &row.redirect_uris {
        redirect_uris.extend(expand_range(uri)?);
    }
    Ok(OAuthClient {
        name: if row.client_name.is_empty() {
            row.client_id.clone()
        } else {
            row.client_name
        },
        id: row.client_id,
        secret,
        redirect_uris,
        grant_types: row.grant_types,
        response_types: row.response_types,
        scopes: row.scope.split_whitespace().map(str::to_string).collect(),
        id_token_alg: parse_alg(&row.id_token_alg).unwrap_or(Algorithm::RS256),
        access_token_alg: parse_alg(&row.access_token_alg).unwrap_or(Algorithm::ES256),
        introspect_personal_tokens: row.introspect_personal_tokens,
        skip_consent: row.skip_consent,
        always_ask_consent: false,
        pkce_optional: false,
        post_logout_redirect_uris: row.post_logout_redirect_uris,
        auth_method: Some(row.token_endpoint_auth_method).filter(|m| m != "none"),
        source: Source::Database,
    })
}

/// Parse a client file for `cells admin client add --file`.
pub fn parse_client_file(text: &str) -> anyhow::Result<HydraClient> {
    let client: HydraClient = serde_json::from_str(text).context("not a client JSON (Hydra format)")?;
    if client.client_id.is_empty() {
        bail!("client_id is required");
    }
    Ok(client)
}

pub fn describe_alg(client: &OAuthClient) -> &'static str {
    alg_name(client.id_token_alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_to_exact_ports() {
        let uris = expand_range("http://localhost:[3636-3666]").unwrap();
        assert_eq!(uris.len(), 31);
        assert_eq!(uris[0], "http://localhost:3636");
        assert_eq!(uris[30], "http://localhost:3666");
        assert!(expand_range("http://localhost:[3666-3636]").is_err());
        assert!(expand_range("http://localhost:[a-b]").is_err());
        assert_eq!(expand_range("http://x/cb").unwrap(), ["http://x/cb"]);
    }

    #[test]
    fn default_clients_match_exactly() {
        let clients = defaults("http://cells.example:8080").unwrap();
        let sync = clients.iter().find(|c| c.id == "cells-sync").unwrap();
        assert!(sync.allows_redirect("http://localhost:3650"));
        assert!(sync.allows_redirect("http://localhost:3650/servers/callback"));
        assert!(sync.allows_redirect("http://localhost:3000"));
        for bad in [
            "http://localhost:3667",
            "http://localhost:3635",
            "http://localhost:3650/",
            "http://LOCALHOST:3650",
            "http://localhost:3650/servers/callback/..",
            "http://localhost:3650/x",
            "http://localhost:3650?x=1",
            "http://localhost:3650#f",
            "http://evil@localhost:3650",
            "http://localhost:3650.evil.com",
        ] {
            assert!(!sync.allows_redirect(bad), "{bad} must not match");
        }
        let client = clients.iter().find(|c| c.id == "cells-client").unwrap();
        assert!(client.allows_redirect("http://cells.example:8080/oauth2/oob"));
        assert!(client.allows_redirect("http://cells.example:8080/oauth/oob"));
        assert!(client.allows_redirect("http://localhost:3000/servers/callback"));
        let mobile = clients.iter().find(|c| c.id == "cells-mobile").unwrap();
        assert!(mobile.allows_redirect("cellsauth://cells.example"));
        assert!(mobile.allows_redirect("cellsauth://callback"));
        assert!(clients.iter().all(|c| c.is_public() && c.pkce_optional));
    }

    #[test]
    fn hydra_clients_are_validated() {
        let parse = |text: &str| {
            parse_client_file(text).and_then(|c| c.validate(false).map_err(|e| anyhow::anyhow!("{e}")))
        };
        assert!(parse(r#"{"client_id":"cells-curl","client_secret":"password","grant_types":["authorization_code"],"redirect_uris":["http://x/oauth2/oob"]}"#).is_ok());
        // Seed 003's client lists "code, token, id_token": it loads, served the code flow only.
        assert!(parse(r#"{"client_id":"a","response_types":["code","token","id_token"]}"#).is_ok());
        assert!(parse(r#"{"client_id":"a","response_types":["code id_token"]}"#).is_ok());
        assert!(parse(r#"{"client_id":"a","response_types":["device"]}"#).is_err());
        assert!(parse(r#"{"client_id":"a","response_types":["code code"]}"#).is_err());
        assert!(parse(r#"{"client_id":"a","grant_types":["implicit"]}"#).is_err());
        assert!(parse(r#"{"client_id":"a","grant_types":["client_credentials"]}"#).is_err());
        assert!(parse(r#"{"client_id":"a","redirect_uris":["http://x/#frag"]}"#).is_err());
        assert!(parse(r#"{"client_id":""}"#).is_err());
    }

    #[test]
    fn secrets_compare_exactly() {
        let mut client = defaults("http://x").unwrap().remove(0);
        assert!(!client.secret_matches(""));
        client.secret = ClientSecret::Plain("password".into());
        assert!(client.secret_matches("password"));
        assert!(!client.secret_matches("passwore"));
        client.secret = ClientSecret::Sha256(hex::encode(digest::digest(&digest::SHA256, b"s3cret")));
        assert!(client.secret_matches("s3cret"));
        assert!(!client.secret_matches("s3cre"));
    }
}
