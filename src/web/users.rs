//! `/api/users[/{name}]`: the people who log in, for admins (the settings page). Listing shows
//! names, roles and scopes, never hashes; adding and replacing take a password in the body
//! and store only its argon2id hash (made on the blocking pool, as a login's check); every
//! change goes through `control::Manager`, which writes the config file and hands the new list
//! to the access guard.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::cameras::respond;
use super::error::ApiError;
use super::state::WebState;
use crate::config::auth::{RoleName, UserConfig};
use crate::config::AuthConfig;
use crate::control::ChangeError;

use crate::access::users::{MAX_PASSWORD, MIN_PASSWORD};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    #[serde(default)]
    name: Option<String>,
    /// Required to add a user; absent in a replacement: the password stays.
    #[serde(default)]
    password: Option<String>,
    role: RoleName,
    #[serde(default)]
    cameras: Option<Vec<String>>,
    #[serde(default)]
    views: Option<Vec<String>>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ChangeError::InvalidUser {
        field: field.into(),
        message: message.into(),
    }
    .into()
}

fn parse(body: &Bytes) -> Result<UserBody, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(body)".to_string()
        } else {
            path
        };
        // serde's message never holds the password: it names fields and types only.
        invalid(&field, e.inner().to_string())
    })
}

/// The argon2id hash of `password`, made off the async workers.
async fn hashed(password: String) -> Result<String, ApiError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(invalid(
            "password",
            format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    let Ok(Ok(_permit)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        super::login::HASHING.acquire(),
    )
    .await
    else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many passwords being checked: try again",
        ));
    };
    tokio::task::spawn_blocking(move || crate::access::users::hash_password(&password))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "hashing failed",
            )
        })
}

/// `user` checked as the config file would check it, fields named as in the body.
fn checked(user: UserConfig, s: &WebState) -> Result<UserConfig, ApiError> {
    let views = s.manager.views();
    let ids = views.iter().map(|v| v.id.as_str()).collect();
    let auth = AuthConfig {
        users: vec![user],
        ..AuthConfig::default()
    };
    if let Some((field, message)) = crate::config::auth::validate(&auth, &ids)
        .into_iter()
        .next()
    {
        let field = field.rsplit('.').next().unwrap_or("(body)").to_string();
        return Err(invalid(&field, message));
    }
    Ok(auth
        .users
        .into_iter()
        .next()
        .unwrap_or_else(|| unreachable!("one user was put in")))
}

pub async fn list(s: WebState) -> Response {
    respond(
        Ok(json!({"users": s.manager.users().await})),
        StatusCode::OK,
    )
}

pub async fn add(body: Bytes, s: WebState) -> Response {
    let result = async {
        let b = parse(&body)?;
        let name = b.name.ok_or_else(|| invalid("name", "required"))?;
        let password = b.password.ok_or_else(|| invalid("password", "required"))?;
        let user = UserConfig {
            name,
            password_hash: hashed(password).await?,
            role: b.role,
            cameras: b.cameras,
            views: b.views,
        };
        let user = checked(user, &s)?;
        Ok::<_, ApiError>(s.manager.add_user(user).await?)
    }
    .await;
    respond(result, StatusCode::CREATED)
}

pub async fn replace(name: String, body: Bytes, s: WebState) -> Response {
    let result = async {
        let b = parse(&body)?;
        let Some(before) = s.manager.user(&name).await else {
            return Err(ChangeError::UnknownUser(name.chars().take(64).collect()).into());
        };
        if b.name
            .as_ref()
            .is_some_and(|n| !n.eq_ignore_ascii_case(&before.name))
        {
            return Err(invalid(
                "name",
                "a user's name cannot change: add another user",
            ));
        }
        let password_hash = match b.password {
            Some(p) => hashed(p).await?,
            None => before.password_hash.clone(),
        };
        let user = UserConfig {
            name: before.name.clone(),
            password_hash,
            role: b.role,
            cameras: b.cameras,
            views: b.views,
        };
        let user = checked(user, &s)?;
        Ok::<_, ApiError>(s.manager.replace_user(&name, user).await?)
    }
    .await;
    respond(result, StatusCode::OK)
}

pub async fn remove(name: String, s: WebState) -> Response {
    let result = s
        .manager
        .remove_user(&name)
        .await
        .map(|()| json!({"removed": name}))
        .map_err(ApiError::from);
    respond(result, StatusCode::OK)
}
