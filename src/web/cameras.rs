//! `/api/ip-cameras[/{id}]`: list, read, add (POST), replace (PUT), change (PATCH) and remove
//! (DELETE) cameras at runtime. Changes go through `control::Manager`, which persists them.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::error::ApiError;
use super::state::WebState;
use crate::control::{CameraView, ChangeError};

/// Largest accepted request body.
pub const MAX_BODY: u64 = 64 * 1024;

pub(super) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the body is not JSON: {e}"),
        )
    })
}

/// The JSON answer for a result, with `status` on success.
pub(super) fn respond<T: Serialize>(result: Result<T, ApiError>, status: StatusCode) -> Response {
    match result {
        Ok(v) => {
            let mut res = warp::reply::json(&v).into_response();
            *res.status_mut() = status;
            res
        }
        Err(e) => e.into_response(),
    }
}

pub async fn list(s: WebState) -> Response {
    respond(Ok(json!({"cameras": s.manager.list()})), StatusCode::OK)
}

pub async fn get_one(id: String, s: WebState) -> Response {
    let found = s
        .hub
        .get(&id)
        .map(|cam| CameraView::of(&cam.config()))
        .ok_or_else(|| ChangeError::NotFound(id.chars().take(64).collect()).into());
    respond(found, StatusCode::OK)
}

pub async fn add(body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.add(b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::CREATED)
}

pub async fn replace(id: String, body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.replace(&id, b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::OK)
}

pub async fn patch(id: String, body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.patch(&id, b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::OK)
}

pub async fn remove(id: String, s: WebState) -> Response {
    let result = s.manager.remove(&id).await.map(|()| json!({"removed": id}));
    respond(result.map_err(ApiError::from), StatusCode::OK)
}
