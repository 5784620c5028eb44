//! People (administrators only): the users with a search, creating one, and per user a
//! Profile tab (name, e-mail, profile, password, lock, delete) and the Personal Access Tokens
//! tab of the seed. Every change goes through `users`, as the CLI's and the REST API's do.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use cells_core::records::{Profile, User};
use serde::Deserialize;

use super::tokens::{self, Owner, PersonTabs, TokensQuery};
use super::{Browser, ConfirmPage, Nav, Notice, encode_component, format_time, redirect};
use cells_core::SharedApp;
use cells_core::error::{Error, Result};
use cells_core::users::{self, Actor, UserSpec};

pub fn routes() -> Router<SharedApp> {
    Router::new()
        .route("/admin/people", get(list).post(create))
        .route("/admin/people/{login}", get(person).post(update))
        .route("/admin/people/{login}/delete", get(confirm_delete))
        .route(
            "/admin/people/{login}/tokens",
            get(person_tokens).post(create_token),
        )
        .route(
            "/admin/people/{login}/tokens/{token_id}/revoke",
            get(confirm_revoke).post(revoke),
        )
}

fn person_href(login: &str) -> String {
    format!("/admin/people/{}", encode_component(login))
}

struct PersonRow {
    login: String,
    display_name: String,
    email: String,
    profile: &'static str,
    locked: bool,
    href: String,
}

/// The new-user form, kept as typed when it is refused.
#[derive(Default)]
struct NewPerson {
    login: String,
    display_name: String,
    email: String,
    profile: String,
}

#[derive(Template)]
#[template(path = "console/people.html")]
struct PeoplePage {
    nav: Nav,
    query: String,
    rows: Vec<PersonRow>,
    total: usize,
    new_person: NewPerson,
    notice: Option<Notice>,
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    nav: Nav,
    person: PersonTabs,
    display_name: String,
    email: String,
    is_admin: bool,
    locked: bool,
    failed_logins: i64,
    created: String,
    is_self: bool,
    delete_href: String,
    notice: Option<Notice>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    done: Option<String>,
}

async fn people_page(
    browser: &Browser,
    query: &str,
    new_person: NewPerson,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    browser.require_admin()?;
    let users = users::list(&browser.app).await?;
    let needle = query.trim().to_lowercase();
    let rows: Vec<PersonRow> = users
        .iter()
        .filter(|u| {
            needle.is_empty()
                || [&u.login, &u.display_name, &u.email]
                    .iter()
                    .any(|field| field.to_lowercase().contains(&needle))
        })
        .map(|u| PersonRow {
            login: u.login.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            profile: u.profile.as_str(),
            locked: u.locked,
            href: person_href(&u.login),
        })
        .collect();
    let page = PeoplePage {
        nav: browser.nav("people"),
        query: query.to_string(),
        rows,
        total: users.len(),
        new_person,
        notice,
    };
    Ok(browser.render(status, &page))
}

/// `GET /admin/people?q=…`.
async fn list(browser: Browser, Query(query): Query<ListQuery>) -> Response {
    let notice = match query.done.as_deref() {
        Some("deleted") => Notice::ok("The user was deleted, with their personal files and tokens."),
        _ => None,
    };
    let q = query.q.unwrap_or_default();
    let page = people_page(&browser, &q, NewPerson::default(), notice, StatusCode::OK).await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct CreateForm {
    login: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    profile: Option<String>,
}

fn parse_profile(text: &str) -> Result<Profile> {
    Profile::parse(text).ok_or_else(|| Error::invalid("profile", "must be admin or standard"))
}

/// `POST /admin/people`: a new user.
async fn create(browser: Browser, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        browser.require_admin()?;
        let form: CreateForm = browser.read_form(&headers, &body)?;
        let typed = NewPerson {
            login: form.login.unwrap_or_default().trim().to_string(),
            display_name: form.display_name.unwrap_or_default().trim().to_string(),
            email: form.email.unwrap_or_default().trim().to_string(),
            profile: form.profile.unwrap_or_default(),
        };
        let password = form.password.unwrap_or_default();
        let created = async {
            if password.is_empty() {
                return Err(Error::invalid("password", "is required"));
            }
            let spec = UserSpec {
                login: &typed.login,
                password: &password,
                profile: parse_profile(&typed.profile)?,
                display_name: &typed.display_name,
                email: &typed.email,
            };
            users::create_user(&browser.app, spec).await
        }
        .await;
        match created {
            Ok(user) => Ok(redirect(&format!("{}?done=created", person_href(&user.login)))),
            Err(error) => {
                let status = cells_http::error::status(&error);
                people_page(&browser, "", typed, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

fn tabs(user: &User) -> PersonTabs {
    let profile_href = person_href(&user.login);
    PersonTabs {
        login: user.login.clone(),
        tokens_href: format!("{profile_href}/tokens"),
        profile_href,
    }
}

/// The user of an administrator's page; "not found" for anyone else than an administrator.
async fn target(browser: &Browser, login: &str) -> Result<User> {
    browser.require_admin()?;
    users::get_user(&browser.app, login).await
}

async fn person_page(
    browser: &Browser,
    user: &User,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response> {
    let page = PersonPage {
        nav: browser.nav("people"),
        person: tabs(user),
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        is_admin: user.profile == Profile::Admin,
        locked: user.locked,
        failed_logins: user.failed_logins,
        created: format_time(user.created_at),
        is_self: user.id == browser.user.id,
        delete_href: format!("{}/delete", person_href(&user.login)),
        notice,
    };
    Ok(browser.render(status, &page))
}

#[derive(Deserialize, Default)]
struct PersonQuery {
    done: Option<String>,
}

/// `GET /admin/people/<login>`: the Profile tab.
async fn person(browser: Browser, Path(login): Path<String>, Query(query): Query<PersonQuery>) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        let notice = match query.done.as_deref() {
            Some("created") => Notice::ok("The user was created."),
            Some("saved") => Notice::ok("Saved."),
            Some("password") => Notice::ok("The password was changed; the old one no longer works anywhere."),
            Some("locked") => Notice::ok("The account is locked: every login and token of it is refused."),
            Some("unlocked") => Notice::ok("The account is unlocked."),
            _ => None,
        };
        person_page(&browser, &user, notice, StatusCode::OK).await
    }
    .await;
    browser.finish(page)
}

#[derive(Deserialize)]
struct UpdateForm {
    action: Option<String>,
    display_name: Option<String>,
    email: Option<String>,
    profile: Option<String>,
    password: Option<String>,
}

/// `POST /admin/people/<login>`: save the profile, set a password, lock, unlock or delete.
async fn update(browser: Browser, Path(login): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        let form: UpdateForm = browser.read_form(&headers, &body)?;
        let href = person_href(&user.login);
        let actor = Actor::Principal(&browser.principal);
        let done = async {
            match form.action.as_deref() {
                Some("profile") => {
                    let profile = parse_profile(form.profile.as_deref().unwrap_or_default())?;
                    let display_name = form.display_name.unwrap_or_default();
                    let email = form.email.unwrap_or_default();
                    users::update_user(
                        &browser.app,
                        actor,
                        &user,
                        display_name.trim(),
                        email.trim(),
                        profile,
                    )
                    .await?;
                    Ok(format!("{href}?done=saved"))
                }
                Some("password") => {
                    let password = form.password.unwrap_or_default();
                    if password.is_empty() {
                        return Err(Error::invalid("password", "is required"));
                    }
                    users::set_password(&browser.app, &user, &password).await?;
                    Ok(format!("{href}?done=password"))
                }
                Some(action @ ("lock" | "unlock")) => {
                    let lock = action == "lock";
                    users::set_locked(&browser.app, actor, &user, lock).await?;
                    Ok(format!("{href}?done={action}ed"))
                }
                Some("delete") => {
                    users::delete_user(&browser.app, actor, &user).await?;
                    Ok("/admin/people?done=deleted".to_string())
                }
                _ => Err(Error::invalid(
                    "action",
                    "must be profile, password, lock, unlock or delete",
                )),
            }
        }
        .await;
        match done {
            Ok(location) => Ok(redirect(&location)),
            Err(error) => {
                let status = cells_http::error::status(&error);
                person_page(&browser, &user, Notice::error(&error), status).await
            }
        }
    }
    .await;
    browser.finish(page)
}

/// `GET /admin/people/<login>/delete`: confirm first.
async fn confirm_delete(browser: Browser, Path(login): Path<String>) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        let href = person_href(&user.login);
        let page = ConfirmPage {
            nav: browser.nav("people"),
            title: format!("Delete the user {}?", user.login),
            message: "This deletes the account, its personal files and all its tokens, at once. \
                      It cannot be undone."
                .into(),
            action: href.clone(),
            fields: vec![("action".into(), "delete".into())],
            button: "Delete the user".into(),
            cancel_href: href,
        };
        Ok(browser.render(StatusCode::OK, &page))
    }
    .await;
    browser.finish(page)
}

fn owner<'a>(user: &'a User) -> Owner<'a> {
    let person = tabs(user);
    Owner {
        user,
        base: person.tokens_href.clone(),
        person: Some(person),
    }
}

/// `GET /admin/people/<login>/tokens`: the seed's Personal Access Tokens panel.
async fn person_tokens(
    browser: Browser,
    Path(login): Path<String>,
    Query(query): Query<TokensQuery>,
) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        tokens::show(&browser, &owner(&user), query).await
    }
    .await;
    browser.finish(page)
}

/// `POST /admin/people/<login>/tokens`: a token for that user (the `+` of the seed).
async fn create_token(
    browser: Browser,
    Path(login): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        tokens::create(&browser, &owner(&user), &headers, &body).await
    }
    .await;
    browser.finish(page)
}

/// `GET /admin/people/<login>/tokens/<id>/revoke`.
async fn confirm_revoke(browser: Browser, Path((login, id)): Path<(String, String)>) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        tokens::confirm_revoke(&browser, &owner(&user), &id).await
    }
    .await;
    browser.finish(page)
}

/// `POST /admin/people/<login>/tokens/<id>/revoke`.
async fn revoke(
    browser: Browser,
    Path((login, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let page = async {
        let user = target(&browser, &login).await?;
        tokens::revoke(&browser, &owner(&user), &id, &headers, &body).await
    }
    .await;
    browser.finish(page)
}
