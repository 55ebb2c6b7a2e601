//! The pages: built into the binary from `public/`, each overridden by a file of the same name
//! in `server.public_dir` when there is one. `/` is index.html, `/advanced_test` the polling
//! page, `/settings` the settings page, `/login` the login page, everything else by name. A
//! request can never leave the directory: `..`, encoded dots, backslashes and NULs are refused, and the resolved path
//! (symlinks followed) must still lie inside it.
//!
//! Why built in: a binary with its config anywhere (`/etc/camwall/cameras.json`) serves the
//! wall with nothing beside it, as go2rtc and MediaMTX do; `public_dir` stays for edited pages.

use std::path::{Path, PathBuf};

use warp::http::{header, HeaderValue};
use warp::reply::Response;

use super::error::ApiError;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "webmanifest" => "application/manifest+json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The pages built into the binary, by file name. A unit test checks that it lists every file
/// of `public/`, so that a new page cannot be forgotten here.
const BUILT_IN: &[(&str, &[u8])] = &[
    (
        "advanced_test.html",
        include_bytes!("../../public/advanced_test.html"),
    ),
    ("index.html", include_bytes!("../../public/index.html")),
    ("interact.js", include_bytes!("../../public/interact.js")),
    ("layout.js", include_bytes!("../../public/layout.js")),
    ("login.html", include_bytes!("../../public/login.html")),
    ("login.js", include_bytes!("../../public/login.js")),
    ("replay.js", include_bytes!("../../public/replay.js")),
    ("session.js", include_bytes!("../../public/session.js")),
    ("settings.css", include_bytes!("../../public/settings.css")),
    (
        "settings.html",
        include_bytes!("../../public/settings.html"),
    ),
    ("settings.js", include_bytes!("../../public/settings.js")),
    ("sound.js", include_bytes!("../../public/sound.js")),
    ("users.js", include_bytes!("../../public/users.js")),
    ("video.js", include_bytes!("../../public/video.js")),
    ("views.js", include_bytes!("../../public/views.js")),
    ("wall.css", include_bytes!("../../public/wall.css")),
    ("wall.js", include_bytes!("../../public/wall.js")),
    ("webrtc.js", include_bytes!("../../public/webrtc.js")),
];

/// The built-in page a request path names.
fn built_in(request_path: &str) -> Option<(&'static str, &'static [u8])> {
    let name = page_name(&percent_decode(request_path.trim_start_matches('/'))?);
    BUILT_IN.iter().find(|(n, _)| *n == name).copied()
}

/// The file a page path names: the short names of the four pages, else the path itself.
fn page_name(decoded: &str) -> String {
    match decoded {
        "" => "index.html".to_string(),
        "advanced_test" => "advanced_test.html".to_string(),
        "settings" => "settings.html".to_string(),
        "login" => "login.html".to_string(),
        other => other.to_string(),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file a request path names inside `root`, or `None` if it names nothing safe.
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(request_path.trim_start_matches('/'))?;
    let rel = page_name(&decoded);
    let mut path = root.to_path_buf();
    for seg in rel.split('/') {
        if seg.is_empty()
            || seg == "."
            || seg == ".."
            || seg.starts_with('.')
            || seg.contains(['\\', '\0'])
        {
            return None;
        }
        path.push(seg);
    }
    // Symlinks may point anywhere: what counts is where the path really leads.
    let real = path.canonicalize().ok()?;
    let real_root = root.canonicalize().ok()?;
    (real.starts_with(&real_root) && real.is_file()).then_some(real)
}

pub async fn serve(
    root: PathBuf,
    full_path: warp::path::FullPath,
) -> Result<Response, warp::Rejection> {
    // canonicalize and stat are file system calls: off the async workers.
    let request = full_path.as_str().to_string();
    let resolved = {
        let request = request.clone();
        tokio::task::spawn_blocking(move || resolve(&root, &request)).await
    };
    let Ok(Some(path)) = resolved else {
        // Nothing in `public_dir` by that name: the page built into the binary, if any.
        return match built_in(&request) {
            Some((name, bytes)) => Ok(page(bytes.into(), Path::new(name))),
            None => Err(warp::reject::not_found()),
        };
    };
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(page(bytes.into(), &path)),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read a public file");
            Ok(ApiError::not_found().into_response())
        }
    }
}

/// A page's answer: its bytes and the headers every page gets.
fn page(body: warp::hyper::body::Bytes, path: &Path) -> Response {
    let mut res = Response::new(body.into());
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    // Pages change with camwall's version: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_public_is_built_in_and_the_short_names_find_theirs() {
        let public = Path::new(env!("CARGO_MANIFEST_DIR")).join("public");
        let mut on_disk: Vec<String> = std::fs::read_dir(&public)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let built: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        assert_eq!(on_disk, built, "public/ and BUILT_IN differ");
        for (path, name) in [
            ("/", "index.html"),
            ("/advanced_test", "advanced_test.html"),
            ("/settings", "settings.html"),
            ("/wall.js", "wall.js"),
        ] {
            assert_eq!(built_in(path).map(|(n, _)| n), Some(name), "{path}");
        }
        for bad in ["/../Cargo.toml", "/nope.html", "/%zz", "/sub/wall.js"] {
            assert!(built_in(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("public");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("index.html"), "i").unwrap();
        std::fs::write(root.join("advanced_test.html"), "a").unwrap();
        std::fs::write(root.join("sub/x.js"), "x").unwrap();
        std::fs::write(dir.path().join("secret.json"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.json"), root.join("link.json")).unwrap();
        assert!(resolve(&root, "/").unwrap().ends_with("index.html"));
        assert!(resolve(&root, "/advanced_test")
            .unwrap()
            .ends_with("advanced_test.html"));
        assert!(resolve(&root, "/sub/x.js").is_some());
        assert!(resolve(&root, "/sub%2fx.js").is_some());
        for bad in [
            "/../secret.json",
            "/%2e%2e/secret.json",
            "/%2E%2E%2Fsecret.json",
            "/sub/../../secret.json",
            "/..%5csecret.json",
            "/link.json",
            "/.hidden",
            "/sub",
            "/nope.html",
            "/%zz",
            "/a%00b",
        ] {
            assert!(resolve(&root, bad).is_none(), "{bad}");
        }
    }
}
