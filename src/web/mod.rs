//! HTTP routes (warp 0.4): the router only. Each kind of client has its own file (`frame`,
//! `mjpeg`, `cameras`, `status`, `files`, `ws`); errors become answers in `error`; the accept
//! loop is `server`. Handlers read the hub and ask `control` for changes; nothing here decides
//! tiers, encodes or supervises cameras.

mod cameras;
pub mod error;
mod files;
mod frame;
mod login;
mod mjpeg;
pub mod params;
mod probe;
mod replay;
pub mod server;
pub mod state;
mod status;
pub mod tls;
mod users;
mod views;
pub mod webrtc;
pub mod ws;

use std::collections::HashMap;
use std::convert::Infallible;

use warp::{Filter, Reply};

use crate::access::auth;
use crate::access::guard::{guard, Access, Principal, Refused};
use error::ApiError;
pub use state::WebState;

/// All routes, with JSON errors for everything that does not match.
pub fn routes(state: WebState) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with_state = {
        let s = state.clone();
        warp::any().map(move || s.clone())
    };
    // Every route passes the one access guard: reading (`view`), changing (`change`: an
    // admin, never from another site's page), the wall's socket. Handlers take the
    // `Principal` it yields: its caps and its camera scope. What shows every camera at once
    // (`unscoped`) needs a principal that may see every camera. Every change is audited.
    let view = || guard(state.guard.clone(), Access::View);
    let unscoped = || {
        view()
            .and_then(|p: Principal| async move {
                if p.scope.is_all() {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Refused::Scoped))
                }
            })
            .untuple_one()
    };
    // Reading what only admins may read: the role is checked, nothing is audited.
    let admin_read = || {
        view()
            .and_then(|p: Principal| async move {
                if p.role >= crate::access::auth::Role::Admin {
                    Ok(())
                } else {
                    Err(warp::reject::custom(Refused::Forbidden))
                }
            })
            .untuple_one()
    };
    let admin = || {
        guard(state.guard.clone(), Access::Change)
            .and(warp::method())
            .and(warp::path::full())
            .map(
                |p: Principal, m: warp::http::Method, path: warp::path::FullPath| {
                    crate::access::audit::change(&p, m.as_str(), path.as_str());
                },
            )
            .untuple_one()
    };

    let health = warp::path!("health")
        .and(warp::get())
        .and(with_state.clone())
        .map(|s: WebState| status::health(&s));

    let status = warp::path!("api" / "ip-cameras" / "status")
        .and(warp::get())
        .and(view())
        .and(with_state.clone())
        .map(|who: Principal, s: WebState| status::status(&s, &who));

    let cluster = warp::path!("api" / "cluster")
        .and(warp::get())
        .and(unscoped())
        .and(with_state.clone())
        .map(|s: WebState| status::cluster(&s));

    let initialize = warp::path!("api" / "ip-cameras" / "initialize")
        .and(warp::post())
        .and(admin())
        .and(with_state.clone())
        .map(|s: WebState| status::initialize(&s));

    let get = || warp::get().or(warp::head()).unify();
    let query = || warp::query::<HashMap<String, String>>();
    let frame = warp::path!("api" / "ip-cameras" / "frame" / String)
        .and(get())
        .and(view())
        .and(query())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state.clone())
        .then(frame::frame);
    // go2rtc's paths, so tools written for go2rtc work unchanged.
    let frame_alias = warp::path!("api" / "frame.jpeg")
        .and(get())
        .and(view())
        .and(query())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(with_state.clone())
        .then(|who, q: HashMap<String, String>, inm, s| async move {
            match q.get("src") {
                Some(id) => frame::frame(id.clone(), who, q, inm, s).await,
                None => ApiError::missing_src().into_response(),
            }
        });
    let mjpeg = warp::path!("api" / "ip-cameras" / "mjpeg" / String)
        .and(get())
        .and(view())
        .and(query())
        .and(with_state.clone())
        .then(mjpeg::mjpeg);
    let mjpeg_alias = warp::path!("api" / "stream.mjpeg")
        .and(get())
        .and(view())
        .and(query())
        .and(with_state.clone())
        .then(|who, q: HashMap<String, String>, s| async move {
            match q.get("src") {
                Some(id) => mjpeg::mjpeg(id.clone(), who, q, s).await,
                None => ApiError::missing_src().into_response(),
            }
        });

    // Bodies are JSON, declared so: forms and text/plain are what other sites can send.
    let body = || {
        warp::body::content_length_limit(cameras::MAX_BODY)
            .and(auth::json_body())
            .and(warp::body::bytes())
    };
    let cams_list = warp::path!("api" / "ip-cameras")
        .and(warp::get())
        .and(view())
        .and(with_state.clone())
        .then(cameras::list);
    let cams_add = warp::path!("api" / "ip-cameras")
        .and(warp::post())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(cameras::add);
    let cams_get = warp::path!("api" / "ip-cameras" / String)
        .and(warp::get())
        .and(view())
        .and(with_state.clone())
        .then(cameras::get_one);
    let cams_put = warp::path!("api" / "ip-cameras" / String)
        .and(warp::put())
        .and(admin())
        .and(warp::header::optional::<String>("if-match"))
        .and(body())
        .and(with_state.clone())
        .then(cameras::replace);
    let cams_patch = warp::path!("api" / "ip-cameras" / String)
        .and(warp::patch())
        .and(admin())
        .and(warp::header::optional::<String>("if-match"))
        .and(body())
        .and(with_state.clone())
        .then(cameras::patch);
    let cams_delete = warp::path!("api" / "ip-cameras" / String)
        .and(warp::delete())
        .and(admin())
        .and(warp::header::optional::<String>("if-match"))
        .and(with_state.clone())
        .then(cameras::remove);
    // Testing a camera before it is saved (no camera path takes POST with an id).
    let probe = warp::path!("api" / "ip-cameras" / "probe")
        .and(warp::post())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(probe::handle);
    let views_list = warp::path!("api" / "views")
        .and(warp::get())
        .and(view())
        .and(with_state.clone())
        .then(views::list);
    let views_add = warp::path!("api" / "views")
        .and(warp::post())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(views::add);
    let views_put = warp::path!("api" / "views" / String)
        .and(warp::put())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(views::replace);
    let views_delete = warp::path!("api" / "views" / String)
        .and(warp::delete())
        .and(admin())
        .and(with_state.clone())
        .then(views::remove);
    // Users: every path an admin's, listing included (names are not for viewers).
    let users_list = warp::path!("api" / "users")
        .and(warp::get())
        .and(admin_read())
        .and(with_state.clone())
        .then(users::list);
    let users_add = warp::path!("api" / "users")
        .and(warp::post())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(users::add);
    let users_put = warp::path!("api" / "users" / String)
        .and(warp::put())
        .and(admin())
        .and(body())
        .and(with_state.clone())
        .then(users::replace);
    let users_delete = warp::path!("api" / "users" / String)
        .and(warp::delete())
        .and(admin())
        .and(with_state.clone())
        .then(users::remove);
    let users = users_list
        .or(users_add)
        .unify()
        .or(users_put)
        .unify()
        .or(users_delete)
        .unify();
    let views = views_list
        .or(views_add)
        .unify()
        .or(views_put)
        .unify()
        .or(views_delete)
        .unify();
    let manage = probe
        .or(cams_list)
        .unify()
        .or(users)
        .unify()
        .or(views)
        .unify()
        .or(cams_add)
        .unify()
        .or(cams_get)
        .unify()
        .or(cams_put)
        .unify()
        .or(cams_patch)
        .unify()
        .or(cams_delete)
        .unify();

    let ws = warp::path!("ws")
        .and(guard(state.guard.clone(), Access::Socket))
        .and(warp::ws())
        .and(warp::ext::optional::<server::SocketFd>())
        .and(with_state.clone())
        .map(ws::upgrade::handle);

    // WHEP: the body is SDP, not JSON. The guard's socket rule applies (a viewer, and a
    // browser only from camwall's pages or an allowed origin), as for the wall's WebSocket.
    let session = || guard(state.guard.clone(), Access::Socket);
    let origin = || warp::header::optional::<String>("origin");
    let whep_post = warp::path!("api" / "ip-cameras" / String / "whep")
        .and(warp::post())
        .and(session())
        .and(warp::header::optional::<String>("content-type"))
        .and(origin())
        .and(warp::ext::optional::<server::LocalAddr>())
        .and(warp::body::content_length_limit(webrtc::whep::MAX_OFFER))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(webrtc::whep::offer);
    let whep_delete = warp::path!("api" / "ip-cameras" / String / "whep" / String)
        .and(warp::delete())
        .and(session())
        .and(origin())
        .and(with_state.clone())
        .map(|id, sid, _: Principal, o, s| webrtc::whep::delete(id, sid, o, s));
    let whep_patch = warp::path!("api" / "ip-cameras" / String / "whep" / String)
        .and(warp::patch())
        .and(session())
        .and(origin())
        .and(with_state.clone())
        .map(|_: String, _: String, _: Principal, o, s| webrtc::whep::patch(o, s));
    // Preflights carry no token: they only say what may be sent.
    // The path first: a method filter that rejects first would turn every unknown path's
    // 404 into a 405.
    let whep_options = warp::path!("api" / "ip-cameras" / String / "whep")
        .map(|_| ())
        .untuple_one()
        .or(warp::path!("api" / "ip-cameras" / String / "whep" / String)
            .map(|_, _| ())
            .untuple_one())
        .unify()
        .and(warp::options())
        .and(origin())
        .and(with_state.clone())
        .map(webrtc::whep::options);
    let whep = whep_post
        .or(whep_delete)
        .unify()
        .or(whep_patch)
        .unify()
        .or(whep_options)
        .unify();

    let replay_span = warp::path!("api" / "ip-cameras" / String / "replay")
        .and(get())
        .and(view())
        .and(with_state.clone())
        .then(replay::span);
    let clip = warp::path!("api" / "ip-cameras" / String / "clip.mp4")
        .and(get())
        .and(view())
        .and(query())
        .and(with_state.clone())
        .then(replay::clip);
    let replay = replay_span.or(clip).unify();

    // Series carry a `camera` label: a principal limited to some cameras is refused rather
    // than shown others' names.
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(unscoped())
        .and(with_state.clone())
        .map(|s: WebState| status::metrics(&s));

    let files = {
        let root = state.public_dir.clone();
        warp::get()
            .and(warp::path::full())
            .and_then(move |p| files::serve(root.clone(), p))
    };

    let all = health
        .or(login::routes(&state))
        .unify()
        .or(metrics)
        .unify()
        .or(status)
        .unify()
        .or(initialize)
        .unify()
        .or(cluster)
        .unify()
        .or(frame)
        .unify()
        .or(frame_alias)
        .unify()
        .or(mjpeg)
        .unify()
        .or(mjpeg_alias)
        .unify()
        .or(ws)
        .unify()
        .or(whep)
        .unify()
        .or(replay)
        .unify()
        .or(manage)
        .unify()
        .or(files)
        .unify()
        // One boxed filter: the chain's type is deep enough to overflow the compiler's
        // recursion limit in release builds once the guards wrap it.
        .map(Reply::into_response)
        .boxed();
    // DNS rebinding: every route, pages included, serves only camwall's own names.
    crate::access::host::check_host(state.allowed_hosts.clone())
        .and(all)
        .recover(error::handle_rejection)
        .unify()
        .with(warp::log::custom(|info: warp::log::Info<'_>| {
            let status = info.status();
            crate::obs::metrics::observe_http(
                info.path(),
                info.method().as_str(),
                status.as_u16(),
                info.elapsed(),
            );
            // Refusals (4xx) and answers like "no frame yet" or "too many clients" (503) are
            // the client's business, not the operator's: debug only. A real fault (500) was
            // already logged once, with its cause, where it happened.
            if !status.is_success() {
                tracing::debug!(
                    method = %info.method(),
                    path = info.path(),
                    status = status.as_u16(),
                    "request answered with an error"
                );
            }
        }))
}
