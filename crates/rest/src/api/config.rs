//! `GET /a/config/ctl` (administrators): the running services, in Cells' `{"Services","Total"}`
//! shape. The seeds use this call to check that a token works.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_http::extract::Admin;

/// What this process runs, as Cells names its services.
const SERVICES: &[(&str, &str)] = &[
    (
        "pydio.rest.tree",
        "File tree: stats, create, delete, move (/a/tree)",
    ),
    (
        "pydio.rest.content",
        "File content upload and download (/a/content)",
    ),
    ("pydio.rest.user", "User administration (/a/user)"),
    ("pydio.rest.auth", "Personal and document access tokens (/a/auth)"),
    ("pydio.rest.config", "Configuration and services (/a/config)"),
];

pub async fn control(State(app): State<SharedApp>, Admin(_): Admin) -> Json<Value> {
    let (host, port) = match app.config.bind.rsplit_once(':') {
        Some((host, port)) => (host.to_string(), port.parse::<u16>().unwrap_or(0)),
        None => (app.config.bind.clone(), 0),
    };
    let services: Vec<Value> = SERVICES
        .iter()
        .map(|(name, description)| {
            json!({
                "Name": name,
                "Version": env!("CARGO_PKG_VERSION"),
                "Description": description,
                "Tag": "cells",
                "Controllable": false,
                "Status": "STARTED",
                "RunningPeers": [{ "Id": format!("{host}:{port}"), "Address": host, "Port": port,
                                   "Metadata": { "started": app.started_at.to_string() } }],
            })
        })
        .collect();
    let total = services.len();
    Json(json!({ "Services": services, "Total": total }))
}
