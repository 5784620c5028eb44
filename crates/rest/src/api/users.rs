//! `/a/user/{Login}` (administrators): read, create or update, delete a user, in Cells'
//! `idm.User` shape (`Login`, `Attributes.displayName/email/profile`).

use axum::Json;
use axum::extract::{Path, State};
use cells_core::records::{Profile, User};
use serde::Deserialize;
use serde_json::{Value, json};

use cells_core::SharedApp;
use cells_core::error::Error;
use cells_core::users::{self, Actor, UserSpec};
use cells_http::error::Result;
use cells_http::extract::{Admin, ApiJson};

pub fn user_json(user: &User) -> Value {
    json!({
        "Uuid": user.id,
        "Login": user.login,
        "GroupPath": "/",
        "Attributes": {
            "displayName": user.display_name,
            "email": user.email,
            "profile": user.profile.as_str(),
        },
        "Locked": user.locked,
        "FailedLogins": user.failed_logins,
        "Quota": user.quota,
    })
}

pub async fn get_user(
    State(app): State<SharedApp>,
    _: Admin,
    Path(login): Path<String>,
) -> Result<Json<Value>> {
    Ok(Json(user_json(&users::get_user(&app, &login).await?)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    display_name: Option<String>,
    email: Option<String>,
    profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutUser {
    login: Option<String>,
    password: Option<String>,
    #[serde(default)]
    attributes: Attributes,
    locked: Option<bool>,
    /// The quota of their personal files: `10G`, bytes, or `none`.
    quota: Option<String>,
}

/// `PUT /a/user/{Login}`: create the user (a `Password` is then required) or update it.
pub async fn put_user(
    State(app): State<SharedApp>,
    Admin(admin): Admin,
    Path(login): Path<String>,
    ApiJson(body): ApiJson<PutUser>,
) -> Result<Json<Value>> {
    if let Some(body_login) = &body.login
        && body_login != &login
    {
        return Err(Error::invalid(
            "Login",
            "differs from the login in the URL; logins cannot be renamed",
        )
        .into());
    }
    let profile = match body.attributes.profile.as_deref() {
        None => None,
        Some(text) => {
            Some(Profile::parse(text).ok_or_else(|| Error::invalid("profile", "must be admin or standard"))?)
        }
    };
    let existing = users::find(&app, &login).await?;
    let mut user = match existing {
        None => {
            let password = body
                .password
                .as_deref()
                .ok_or_else(|| Error::invalid("Password", "is required to create a user"))?;
            users::create_user(
                &app,
                UserSpec {
                    login: &login,
                    password,
                    profile: profile.unwrap_or(Profile::Standard),
                    display_name: body.attributes.display_name.as_deref().unwrap_or(""),
                    email: body.attributes.email.as_deref().unwrap_or(""),
                },
            )
            .await?
        }
        Some(user) => {
            let user = users::update_user(
                &app,
                Actor::Principal(&admin),
                &user,
                body.attributes
                    .display_name
                    .as_deref()
                    .unwrap_or(&user.display_name),
                body.attributes.email.as_deref().unwrap_or(&user.email),
                profile.unwrap_or(user.profile),
            )
            .await?;
            if let Some(password) = &body.password {
                users::set_password(&app, &user, password).await?;
            }
            user
        }
    };
    if let Some(locked) = body.locked {
        users::set_locked(&app, Actor::Principal(&admin), &user, locked).await?;
    }
    if let Some(quota) = body.quota.as_deref() {
        let quota = cells_core::workspaces::parse_quota(quota)?;
        cells_core::workspaces::set_user_quota(&app, &user, quota).await?;
    }
    user = users::get_user(&app, &login).await?;
    Ok(Json(user_json(&user)))
}

pub async fn delete_user(
    State(app): State<SharedApp>,
    Admin(admin): Admin,
    Path(login): Path<String>,
) -> Result<Json<Value>> {
    let user = users::get_user(&app, &login).await?;
    users::delete_user(&app, Actor::Principal(&admin), &user).await?;
    Ok(Json(json!({ "Success": true })))
}
