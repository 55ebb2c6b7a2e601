//! `/api/views[/{id}]`: the wall's named sets of cameras. Anyone who may watch lists them (with
//! the cameras they may see);
//! adding, replacing and removing them takes the admin token and goes through
//! `control::Manager`, which writes the config file.

use bytes::Bytes;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::cameras::{parse_body, respond};
use super::error::ApiError;
use super::state::WebState;
use crate::access::guard::Principal;

/// The views, each with the cameras the asker may see (a view with none of them is left out).
pub async fn list(who: Principal, s: WebState) -> Response {
    let views: Vec<_> = s
        .manager
        .views()
        .into_iter()
        .filter_map(|mut v| {
            v.cameras.retain(|c| who.scope.allows(c));
            (!v.cameras.is_empty()).then_some(v)
        })
        .collect();
    respond(Ok(json!({"views": views})), StatusCode::OK)
}

pub async fn add(body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.add_view(b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::CREATED)
}

pub async fn replace(id: String, body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.replace_view(&id, b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::OK)
}

pub async fn remove(id: String, s: WebState) -> Response {
    let result = s
        .manager
        .remove_view(&id)
        .await
        .map(|()| json!({"removed": id}));
    respond(result.map_err(ApiError::from), StatusCode::OK)
}
