//! Secrets sent back as the API showed them. A camera is read with its credentials redacted
//! (`obs::redact`), and an edit form sends the whole camera back: a value that is exactly the
//! stored one as shown (`rtsp://***@host/x`, an option shown as `***`) means "unchanged" and the
//! stored secret is kept; any other value is taken as given, so a new password replaces the old
//! one. A mask that matches nothing stored (a changed host behind `***@`, a new camera) is
//! refused rather than written as a password, which also keeps a stored password from being
//! sent to another address without the one changing it knowing it.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{invalid, ChangeError};
use crate::config::CameraConfig;
use crate::obs::redact::{option_carries_mask, redact_option, redact_url, url_carries_mask};

/// Puts the stored secrets of `stored` (the camera as it is now, if any) back into `body`
/// wherever the body holds them as shown; refuses a mask that matches nothing stored.
pub(super) fn restore(body: &mut Value, stored: Option<&CameraConfig>) -> Result<(), ChangeError> {
    let Some(o) = body.as_object_mut() else {
        // Not an object: parsing the camera names that error.
        return Ok(());
    };
    restore_source(o, stored.map(|c| (c.url.as_str(), &c.options)), "")?;
    if let Some(Value::Object(sub)) = o.get_mut("sub") {
        let stored_sub = stored
            .and_then(|c| c.sub.as_ref())
            .map(|s| (s.url.as_str(), &s.options));
        restore_source(sub, stored_sub, "sub.")?;
    }
    Ok(())
}

/// One source's `url` and `options` (the camera's, or its `sub`'s with `prefix` "sub.").
fn restore_source(
    o: &mut Map<String, Value>,
    stored: Option<(&str, &BTreeMap<String, String>)>,
    prefix: &str,
) -> Result<(), ChangeError> {
    if let Some(Value::String(url)) = o.get_mut("url") {
        match stored {
            Some((s, _)) if url == s => {}
            Some((s, _)) if *url == redact_url(s) => *url = s.to_string(),
            _ if url_carries_mask(url) => {
                return Err(invalid(
                    format!("{prefix}url"),
                    "holds a hidden credential (***) but is not the stored URL as shown: send \
                     it exactly as shown to keep the stored credentials, or type them in full",
                ))
            }
            _ => {}
        }
    }
    if let Some(Value::Object(options)) = o.get_mut("options") {
        for (key, value) in options.iter_mut() {
            let Value::String(v) = value else { continue };
            match stored.and_then(|(_, opts)| opts.get(key)) {
                Some(s) if v == s => {}
                Some(s) if *v == redact_option(key, s) => *v = s.clone(),
                _ if option_carries_mask(key, v) => {
                    return Err(invalid(
                        format!("{prefix}options.{key}"),
                        "holds a hidden value (***) but is not the stored value as shown: send \
                         it exactly as shown to keep it, or type it in full",
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> CameraConfig {
        serde_json::from_value(json!({
            "id": "sec",
            "url": "rtsp://u:secret1@127.0.0.1:9/x",
            "options": {"headers": "Authorization: Basic c2VjcmV0", "rtsp_transport": "tcp"},
            "sub": {"url": "srt://127.0.0.1:9?passphrase=secret2secret", "options": {"passphrase": "p3"}}
        }))
        .expect("a camera")
    }

    #[test]
    fn values_as_shown_keep_the_stored_secrets() {
        let s = stored();
        let mut body =
            serde_json::to_value(crate::control::CameraView::of(&s).config).expect("json");
        body["name"] = json!("New name");
        restore(&mut body, Some(&s)).expect("restored");
        let back: CameraConfig = serde_json::from_value(body).expect("a camera");
        assert_eq!(back.url, s.url);
        assert_eq!(back.options, s.options);
        assert_eq!(back.sub, s.sub);
        assert_eq!(back.name.as_deref(), Some("New name"));
    }

    #[test]
    fn new_secrets_replace_and_stray_masks_are_refused() {
        let s = stored();
        let mut body = json!({"id": "sec", "url": "rtsp://u:new@127.0.0.1:9/x"});
        restore(&mut body, Some(&s)).expect("a new password");
        assert_eq!(body["url"], "rtsp://u:new@127.0.0.1:9/x");
        let mut body = json!({"id": "sec", "url": "rtsp://***@127.0.0.2:9/x"});
        let e = restore(&mut body, Some(&s)).expect_err("another host behind the mask");
        assert!(matches!(e, ChangeError::Invalid { ref field, .. } if field == "url"));
        let mut body = json!({"id": "new", "url": "rtsp://h/x", "sub": {"url": "rtsp://h/y", "options": {"cookies": "***"}}});
        let e = restore(&mut body, None).expect_err("nothing stored");
        assert!(
            matches!(e, ChangeError::Invalid { ref field, .. } if field == "sub.options.cookies")
        );
    }
}
