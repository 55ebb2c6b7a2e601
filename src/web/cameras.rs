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
use crate::access::guard::Principal;
use crate::control::{CameraView, ChangeError};

/// Largest accepted request body.
pub const MAX_BODY: u64 = 64 * 1024;

pub(super) fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_json(&e))
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

/// The cameras the asker may see.
pub async fn list(who: Principal, s: WebState) -> Response {
    let cameras: Vec<CameraView> = s
        .manager
        .list()
        .into_iter()
        .filter(|c| who.scope.allows(&c.config.id))
        .collect();
    respond(Ok(json!({"cameras": cameras})), StatusCode::OK)
}

/// One camera; one outside the asker's scope does not exist for them.
pub async fn get_one(id: String, who: Principal, s: WebState) -> Response {
    let found = s
        .manager
        .view(&id)
        .filter(|_| who.scope.allows(&id))
        .ok_or_else(|| ChangeError::NotFound(id.chars().take(64).collect()).into());
    // Cluster mode: the revision, to send back as If-Match with a change.
    let etag = found.as_ref().ok().and_then(|v: &CameraView| v.revision);
    let mut res = respond(found, StatusCode::OK);
    if let Some(rev) = etag {
        if let Ok(v) = warp::http::HeaderValue::from_str(&format!("\"{rev}\"")) {
            res.headers_mut().insert(warp::http::header::ETAG, v);
        }
    }
    res
}

/// The revision in an `If-Match` header (`"12"`, or `12`): in a cluster, a change applies only
/// if the camera is still at that revision. Alone, the header is ignored as it always was.
fn if_match(s: &WebState, h: Option<String>) -> Result<Option<u64>, ApiError> {
    let Some(h) = h.filter(|_| s.cluster.is_some()) else {
        return Ok(None);
    };
    let t = h.trim().trim_start_matches("W/").trim_matches('"');
    t.parse().map(Some).map_err(|_| ApiError::bad_if_match())
}

pub async fn add(body: Bytes, s: WebState) -> Response {
    let result = match parse_body(&body) {
        Ok(b) => s.manager.add(b).await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::CREATED)
}

pub async fn replace(id: String, inm: Option<String>, body: Bytes, s: WebState) -> Response {
    let result = match (parse_body(&body), if_match(&s, inm)) {
        (Ok(b), Ok(rev)) => s
            .manager
            .replace_if(&id, b, rev)
            .await
            .map_err(ApiError::from),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    respond(result, StatusCode::OK)
}

pub async fn patch(id: String, inm: Option<String>, body: Bytes, s: WebState) -> Response {
    let result = match (parse_body(&body), if_match(&s, inm)) {
        (Ok(b), Ok(rev)) => s
            .manager
            .patch_if(&id, b, rev)
            .await
            .map_err(ApiError::from),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    respond(result, StatusCode::OK)
}

pub async fn remove(id: String, inm: Option<String>, s: WebState) -> Response {
    let result = match if_match(&s, inm) {
        Ok(rev) => s
            .manager
            .remove_if(&id, rev)
            .await
            .map(|()| json!({"removed": id}))
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    respond(result, StatusCode::OK)
}
