//! The file browser: `/files/<workspace>/<path>` lists a folder or downloads a file; a POST to
//! a folder uploads into it (multipart, streamed to the blob store) or runs one action on a
//! child (new folder, rename, delete). Every operation is a `files::Tree` call.

use askama::Template;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::multipart::Field;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::{Browser, ConfirmPage, Nav, Notice, encode_component, format_size, format_time, redirect};
use cells_core::SharedApp;
use cells_core::auth::principal::Principal;
use cells_core::error::{Error, Result};
use cells_core::files::Entry;
use cells_core::files::blob::ByteStream;
use cells_core::files::path::{TreePath, validate_name};
use cells_http::extract::read_limited;

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/files", get(|| async { redirect("/files/") }))
        .route("/files/", get(browse_root))
        .route(
            "/files/{*path}",
            get(browse)
                .post(act)
                // Uploads stream to the blob store: any size, never held in memory.
                .layer(DefaultBodyLimit::disable()),
        )
}

/// `/files/personal-files/a%20b/`: a folder's URL ends with a slash, a file's does not.
pub fn href(path: &TreePath, is_folder: bool) -> String {
    let mut out = format!("/files/{}", path.workspace().as_str());
    for name in path.names() {
        out.push('/');
        out.push_str(&encode_component(name));
    }
    if is_folder {
        out.push('/');
    }
    out
}

struct Crumb {
    name: String,
    href: String,
}

struct Row {
    name: String,
    href: String,
    is_folder: bool,
    size: String,
    modified: String,
    info_href: String,
    selected: bool,
}

struct Details {
    name: String,
    is_folder: bool,
    size: String,
    modified: String,
    uuid: String,
    path: String,
    href: String,
    token_href: String,
    delete_href: String,
}

#[derive(Template)]
#[template(path = "console/files.html")]
struct FilesPage {
    nav: Nav,
    title: String,
    crumbs: Vec<Crumb>,
    /// Where the folder's forms post; empty at the top, where nothing can be created.
    action: String,
    can_write: bool,
    rows: Vec<Row>,
    details: Option<Details>,
    notice: Option<Notice>,
    /// What the workspace's files take, and of what quota (empty at the top).
    usage: String,
}

#[derive(Deserialize, Default)]
struct BrowseQuery {
    /// A child whose details panel is open.
    info: Option<String>,
    /// A child to confirm the deletion of.
    delete: Option<String>,
}

fn crumbs(path: Option<&TreePath>) -> Vec<Crumb> {
    let mut out = vec![Crumb {
        name: "Files".into(),
        href: "/files/".into(),
    }];
    if let Some(path) = path {
        let mut at = TreePath::root(path.workspace().clone());
        out.push(Crumb {
            name: path.workspace().as_str().into(),
            href: href(&at, true),
        });
        for name in path.names() {
            // The names of a parsed path: each is valid again.
            let Ok(next) = at.child(name) else { break };
            at = next;
            out.push(Crumb {
                name: name.clone(),
                href: href(&at, true),
            });
        }
    }
    out
}

fn display_name(entry: &Entry) -> String {
    entry
        .path()
        .name()
        .unwrap_or(entry.path().workspace().as_str())
        .to_string()
}

fn row(entry: &Entry, folder_href: &str, selected: Option<&str>) -> Row {
    let name = display_name(entry);
    let is_folder = entry.node().is_collection();
    Row {
        href: href(entry.path(), is_folder),
        is_folder,
        size: if is_folder {
            String::new()
        } else {
            format_size(entry.node().size)
        },
        modified: format_time(entry.node().mtime),
        info_href: format!("{folder_href}?info={}", encode_component(&name)),
        selected: selected == Some(name.as_str()),
        name,
    }
}

fn details(entry: &Entry, folder_href: &str) -> Details {
    let name = display_name(entry);
    let is_folder = entry.node().is_collection();
    Details {
        is_folder,
        size: format_size(entry.node().size),
        modified: format_time(entry.node().mtime),
        uuid: entry.node().id.to_string(),
        path: entry.path().to_string(),
        href: href(entry.path(), is_folder),
        token_href: format!("/tokens?node={}#new-token", entry.node().id),
        delete_href: format!("{folder_href}?delete={}", encode_component(&name)),
        name,
    }
}

/// `GET /files/`: the workspaces.
async fn browse_root(browser: Browser, Query(query): Query<BrowseQuery>) -> Response {
    let page = async {
        let workspaces = browser.app.tree.workspaces(&browser.principal).await?;
        let selected = query.info.as_deref();
        let details = selected
            .and_then(|name| workspaces.iter().find(|w| display_name(w) == name))
            .map(|entry| details(entry, "/files/"));
        let page = FilesPage {
            nav: browser.nav("files"),
            title: "Files".into(),
            crumbs: crumbs(None),
            action: String::new(),
            can_write: false,
            rows: workspaces.iter().map(|w| row(w, "/files/", selected)).collect(),
            details,
            notice: None,
            usage: String::new(),
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}

/// `GET /files/<path>`: a folder's page, or a file's content.
async fn browse(browser: Browser, Path(raw): Path<String>, Query(query): Query<BrowseQuery>) -> Response {
    let page = async {
        let path = TreePath::parse(&raw)?;
        if let Some(name) = query.delete.as_deref() {
            return confirm_delete(&browser, &path, name).await;
        }
        folder_page(&browser, &path, query.info.as_deref(), None, StatusCode::OK).await
    }
    .await;
    browser.finish(page)
}

async fn folder_page(
    browser: &Browser,
    path: &TreePath,
    info: Option<&str>,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let tree = &browser.app.tree;
    let (folder, children) = tree.list(&browser.principal, path).await?;
    if !folder.node().is_collection() {
        return download(browser, path).await;
    }
    let folder_href = href(path, true);
    let details = info
        .and_then(|name| children.iter().find(|c| c.path().name() == Some(name)))
        .map(|entry| details(entry, &folder_href));
    let usage = match tree.usage(&browser.principal, path).await? {
        (used, Some(quota)) => format!(
            "{} of the quota of {} used ({} left)",
            format_size(used as i64),
            format_size(quota as i64),
            format_size(quota.saturating_sub(used) as i64)
        ),
        (used, None) => format!("{} used", format_size(used as i64)),
    };
    let page = FilesPage {
        nav: browser.nav("files"),
        usage,
        title: display_name(&folder),
        crumbs: crumbs(Some(path)),
        can_write: tree.can_write(&browser.principal, path).await?,
        rows: children.iter().map(|c| row(c, &folder_href, info)).collect(),
        action: folder_href,
        details,
        notice,
    };
    Ok(browser.render(status, &page))
}

async fn confirm_delete(browser: &Browser, folder: &TreePath, name: &str) -> Result<Response> {
    let target = folder.child(name)?;
    let entry = browser.app.tree.stat(&browser.principal, &target).await?;
    let what = if entry.node().is_collection() {
        "the folder"
    } else {
        "the file"
    };
    let extra = if entry.node().is_collection() {
        " and everything in it"
    } else {
        ""
    };
    let page = ConfirmPage {
        nav: browser.nav("files"),
        title: format!("Delete {name}?"),
        message: format!("This deletes {what} {target}{extra}, at once and for every protocol."),
        action: href(folder, true),
        fields: vec![
            ("action".into(), "delete".into()),
            ("name".into(), name.to_string()),
        ],
        button: "Delete".into(),
        cancel_href: format!("{}?info={}", href(folder, true), encode_component(name)),
    };
    Ok(browser.render(StatusCode::OK, &page))
}

/// A file as a download: never rendered by the browser as a page of this site.
async fn download(browser: &Browser, path: &TreePath) -> Result<Response> {
    let (entry, body) = browser.app.tree.open(&browser.principal, path, None).await?;
    let name = display_name(&entry);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        encode_component(&name)
    );
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(entry.node().size as u64),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).map_err(Error::internal)?,
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(cells_http::user_content::CSP),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct ActionForm {
    action: Option<String>,
    name: Option<String>,
    new_name: Option<String>,
}

/// `POST /files/<folder>`: an upload (multipart) or an action on a child (form).
async fn act(browser: Browser, Path(raw): Path<String>, request: Request) -> Response {
    let page = async {
        let path = TreePath::parse(&raw)?;
        let headers = request.headers().clone();
        let is_multipart = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if is_multipart {
            let mut form = Multipart::from_request(request, &browser.app)
                .await
                .map_err(|e| Error::invalid("form", e.body_text()))?;
            // The form's first field is its CSRF token: nothing is written for a forged form.
            let csrf = match form.next_field().await.map_err(bad_part)? {
                Some(field) if field.name() == Some("csrf") => Some(field.text().await.map_err(bad_part)?),
                _ => None,
            };
            browser.check_csrf(&headers, csrf.as_deref())?;
            let (notice, status) = match upload(&browser, &path, form).await {
                Ok(count) => {
                    let text = format!("Uploaded {count} file{}.", if count == 1 { "" } else { "s" });
                    (Notice::ok(text), StatusCode::OK)
                }
                Err(error) => (Notice::error(&error), cells_http::error::status(&error)),
            };
            return folder_page(&browser, &path, None, notice, status).await;
        }
        let body: Bytes = read_limited(request.into_body()).await?.into();
        let form: ActionForm = browser.read_form(&headers, &body)?;
        let name = form.name.unwrap_or_default();
        match child_action(&browser, &path, form.action.as_deref(), &name, form.new_name).await {
            Ok(location) => Ok(redirect(&location)),
            Err(error) => {
                let status = cells_http::error::status(&error);
                let info = (!name.is_empty()).then_some(name.as_str());
                folder_page(&browser, &path, info, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

fn bad_part(error: axum::extract::multipart::MultipartError) -> Error {
    Error::invalid("form", error.body_text())
}

/// New folder, rename or delete a child of `folder`; the page to show next.
async fn child_action(
    browser: &Browser,
    folder: &TreePath,
    action: Option<&str>,
    name: &str,
    new_name: Option<String>,
) -> Result<String> {
    let tree = &browser.app.tree;
    let principal = &browser.principal;
    let folder_href = href(folder, true);
    match action {
        Some("mkdir") => {
            // A typed name: surrounding spaces are a slip of the keyboard.
            let name = validate_name(name.trim())?;
            tree.create_folder(principal, &folder.child(name)?, false).await?;
            Ok(format!("{folder_href}?info={}", encode_component(name)))
        }
        // An existing child's name comes back exactly as the page had it.
        Some("rename") => {
            let target = folder.child(name)?;
            let new_name = new_name.unwrap_or_default();
            let new_name = validate_name(new_name.trim())?;
            tree.rename(principal, &target, &folder.child(new_name)?).await?;
            Ok(format!("{folder_href}?info={}", encode_component(new_name)))
        }
        Some("delete") => {
            tree.delete(principal, &folder.child(name)?).await?;
            Ok(folder_href)
        }
        _ => Err(Error::invalid("action", "must be mkdir, rename or delete")),
    }
}

/// Stream every `file` part of the form into `folder`; how many files came.
async fn upload(browser: &Browser, folder: &TreePath, mut form: Multipart) -> Result<usize> {
    let mut count = 0;
    while let Some(field) = form.next_field().await.map_err(bad_part)? {
        if field.name() != Some("file") {
            continue;
        }
        let Some(name) = field.file_name().map(str::to_string) else {
            continue;
        };
        if name.is_empty() {
            // A file input left empty still sends its (nameless) part.
            continue;
        }
        let target = folder.child(&name)?;
        put_field(&browser.app, &browser.principal, &target, field).await?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::invalid("file", "choose at least one file to upload"));
    }
    Ok(count)
}

/// Write one form part as the file `target`. The part borrows the form, so it is fed to the
/// blob store through a small channel in the same task; an error or a cut connection ends
/// the stream with an error, and the blob store then keeps nothing.
async fn put_field(
    app: &SharedApp,
    principal: &Principal,
    target: &TreePath,
    mut field: Field<'_>,
) -> Result<Entry> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let body: ByteStream = Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|item| (item, receiver)) },
    ));
    let feed = async move {
        loop {
            let item = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(error) => Err(cells_core::files::body_error(error.body_text())),
            };
            let failed = item.is_err();
            if sender.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (written, ()) = tokio::join!(app.tree.put(principal, target, body), feed);
    written
}
