//! WHEP (RFC 9725) routes: `POST /api/ip-cameras/{id}/whep` with an SDP offer answers
//! `201 Created` with the SDP answer and the session's `Location`; `DELETE` on it ends the
//! session; `PATCH` (trickle ICE, ICE restarts) answers 405, which the RFC allows an ICE-lite
//! server; `OPTIONS` answers CORS preflights for `server.allowed_origins`. Errors are JSON.

use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::{OfferError, OpenError};
use crate::access::auth::origin_allowed;
use crate::access::guard::Principal;
use crate::access::limits::ClientKind;
use crate::web::error::ApiError;
use crate::web::server::LocalAddr;
use crate::web::WebState;

/// The largest offer read (browsers send 3-8 KB).
pub const MAX_OFFER: u64 = 64 * 1024;

/// What WHEP players may send and read across origins.
const ALLOW_METHODS: &str = "POST, DELETE, PATCH, OPTIONS";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match";
const EXPOSE_HEADERS: &str = "Location, ETag, Accept-Patch, Link";

/// The headers of a CORS answer for `origin`, when it may read camwall's answers (another
/// origin in `server.allowed_origins`; camwall's own pages need none).
fn cors(mut r: Response, origin: Option<&str>, s: &WebState) -> Response {
    let allowed = s.hub.server_config().allowed_origins.as_slice();
    if let Some(o) = origin.filter(|o| origin_allowed(Some(o), None, allowed)) {
        if let Ok(v) = HeaderValue::from_str(o) {
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    r
}

/// `POST /api/ip-cameras/{id}/whep`.
pub async fn offer(
    id: String,
    who: Principal,
    content_type: Option<String>,
    origin: Option<String>,
    local: Option<LocalAddr>,
    body: Bytes,
    s: WebState,
) -> Response {
    let r = offer_inner(&id, who, content_type, local, body, &s).await;
    cors(r, origin.as_deref(), &s)
}

async fn offer_inner(
    id: &str,
    who: Principal,
    content_type: Option<String>,
    local: Option<LocalAddr>,
    body: Bytes,
    s: &WebState,
) -> Response {
    let is_sdp = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/sdp"));
    if !is_sdp {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the SDP offer with Content-Type: application/sdp",
        )
        .into_response();
    }
    let Some(stream) = s.hub.stream(id).filter(|_| who.scope.allows(id)) else {
        return ApiError::unknown_camera(id).into_response();
    };
    let Some(rtc) = s.webrtc.clone() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webrtc_unavailable",
            "WebRTC is off on this server (server.webrtc, or its UDP port could not be bound)",
        )
        .into_response();
    };
    let Ok(offer) = std::str::from_utf8(&body) else {
        return bad_offer(OfferError::Malformed("not UTF-8".into()));
    };
    let slot = match who.admit(ClientKind::WebRtc) {
        Ok(slot) => slot,
        Err(refused) => return ApiError::from(refused).into_response(),
    };
    let request_ip = local.map(|l| l.0.ip());
    let client = who.peer.map(|p| p.ip().to_canonical());
    match rtc
        .open(s.hub.clone(), stream, offer, request_ip, client, slot)
        .await
    {
        Ok((session, answer)) => {
            let location = format!("/api/ip-cameras/{id}/whep/{session}");
            let mut r = warp::reply::with_status(answer, StatusCode::CREATED).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/sdp"),
            );
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            r
        }
        Err(OpenError::Offer(e)) => bad_offer(e),
        Err(OpenError::NoVideo) => ApiError::new(
            StatusCode::CONFLICT,
            "no_video",
            OpenError::NoVideo.to_string(),
        )
        .into_response(),
        Err(OpenError::TooMany) => ApiError::too_many_clients().into_response(),
    }
}

fn bad_offer(e: OfferError) -> Response {
    let code = match e {
        OfferError::Malformed(_) => "bad_offer",
        OfferError::NoVideo => "offer_without_video",
        OfferError::NoCodec(_) => "unsupported_codec",
    };
    ApiError::new(StatusCode::BAD_REQUEST, code, e.to_string()).into_response()
}

/// `DELETE /api/ip-cameras/{id}/whep/{session}`.
pub fn delete(id: String, session: String, origin: Option<String>, s: WebState) -> Response {
    let closed = s.webrtc.as_ref().is_some_and(|r| r.close(&id, &session));
    let r = if closed {
        StatusCode::OK.into_response()
    } else {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no such WebRTC session (it may have ended already)",
        )
        .into_response()
    };
    cors(r, origin.as_deref(), &s)
}

/// `PATCH` on a session: trickle ICE and ICE restarts are not taken (camwall is ICE-lite and
/// gives every candidate in its answer).
pub fn patch(origin: Option<String>, s: WebState) -> Response {
    let mut r = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "trickle_not_supported",
        "this server takes no trickled candidates: every candidate is in the answer",
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    cors(r, origin.as_deref(), &s)
}

/// `OPTIONS` on the endpoint or a session: a CORS preflight, or (RFC 9725) what it accepts.
pub fn options(origin: Option<String>, s: WebState) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW_METHODS));
    h.insert("accept-post", HeaderValue::from_static("application/sdp"));
    let allowed = s.hub.server_config().allowed_origins.as_slice();
    if origin
        .as_deref()
        .is_some_and(|o| origin_allowed(Some(o), None, allowed))
    {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    cors(r, origin.as_deref(), &s)
}
