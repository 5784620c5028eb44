//! `/admin/clients`: the OAuth clients the provider knows (built in, from `pydio.json`, added
//! with the CLI), read-only. Adding and deleting stay with `cells admin client`.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Browser, Nav};
use cells_core::auth::oidc::clients::describe_alg;

struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    source: &'static str,
    grants: Vec<String>,
    consent: &'static str,
    pkce: &'static str,
    id_token_alg: &'static str,
    redirects: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/clients.html")]
struct ClientsPage {
    nav: Nav,
    rows: Vec<ClientRow>,
}

/// `GET /admin/clients`.
pub async fn list(browser: Browser) -> Response {
    let page = async {
        browser.require_admin()?;
        let clients = browser.app.oidc.clients.list().await?;
        let rows = clients
            .iter()
            .map(|client| ClientRow {
                id: client.id.clone(),
                name: client.name.clone(),
                kind: if client.is_public() {
                    "public"
                } else {
                    "confidential"
                },
                source: client.source.as_str(),
                grants: client.grant_types.clone(),
                consent: if client.skip_consent {
                    "automatic"
                } else {
                    "asked once"
                },
                pkce: if client.is_public() && !client.pkce_optional {
                    "required"
                } else {
                    "optional"
                },
                id_token_alg: describe_alg(client),
                redirects: client.redirect_uris.clone(),
            })
            .collect();
        let page = ClientsPage {
            nav: browser.nav("clients"),
            rows,
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}
