//! Views at run time (`/api/views`): list, add, replace and remove the named sets of cameras,
//! each change an edit of the config file like a camera change alone (`file.rs`: atomically,
//! never over a hand edit); and the views' share of a camera's removal (the camera leaves
//! every view).

use serde_json::Value;
use tracing::info;

use super::{path_id, ChangeError, Manager};
use crate::config::views::{validate_view, ViewConfig, MAX_VIEWS};
use crate::config::CameraConfig;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ChangeError {
    ChangeError::InvalidView {
        field: field.into(),
        message: message.into(),
    }
}

/// The views a validated document holds (none when it has no `views`).
pub(super) fn views_of(doc: &Value) -> Vec<ViewConfig> {
    doc.get("views")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn views_mut(doc: &mut Value) -> Option<&mut Vec<Value>> {
    let o = doc.as_object_mut()?;
    let v = o.entry("views").or_insert_with(|| Value::Array(Vec::new()));
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    v.as_array_mut()
}

fn position(doc: &Value, id: &str) -> Option<usize> {
    doc.get("views")?
        .as_array()?
        .iter()
        .position(|v| v.get("id").and_then(Value::as_str) == Some(id))
}

/// Parses a view body, naming the field on error, and checks it against `cameras`.
pub fn parse_view(body: &Value, cameras: &[CameraConfig]) -> Result<ViewConfig, ChangeError> {
    let view: ViewConfig = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "(body)".into() } else { path };
        invalid(field, e.inner().to_string())
    })?;
    if let Some((field, message)) = validate_view(&view, cameras).into_iter().next() {
        return Err(invalid(field, message));
    }
    Ok(view)
}

impl Manager {
    /// The configured views, in the file's order.
    pub fn views(&self) -> Vec<ViewConfig> {
        self.file.views()
    }

    fn camera_configs(&self) -> Vec<CameraConfig> {
        self.hub
            .cameras()
            .iter()
            .map(|c| (*c.config()).clone())
            .collect()
    }

    /// Adds a view (`POST /api/views`).
    pub async fn add_view(&self, body: Value) -> Result<ViewConfig, ChangeError> {
        // Views are checked against the cameras: no camera change may slip in between.
        let _serial = self.changes.lock().await;
        let view = parse_view(&body, &self.camera_configs())?;
        let count = self.views().len();
        self.file
            .edit(|doc| {
                if position(doc, &view.id).is_some() {
                    return Err(ChangeError::DuplicateView(view.id.clone()));
                }
                if count >= MAX_VIEWS {
                    return Err(invalid(
                        "id",
                        format!("there are {MAX_VIEWS} views already, the most a config may hold"),
                    ));
                }
                views_mut(doc)
                    .ok_or_else(|| invalid("(body)", "the config file is not a JSON object"))?
                    .push(serde_json::to_value(&view).unwrap_or(body));
                Ok(())
            })
            .await?;
        info!(view = %view.id, "view added");
        Ok(view)
    }

    /// Replaces a view (`PUT /api/views/{id}`); the id stays.
    pub async fn replace_view(&self, id: &str, mut body: Value) -> Result<ViewConfig, ChangeError> {
        path_id(&mut body, id).map_err(|m| invalid("id", m))?;
        let _serial = self.changes.lock().await;
        let cameras = self.camera_configs();
        let view = self
            .file
            .edit(|doc| {
                let pos = position(doc, id).ok_or_else(|| ChangeError::UnknownView(short(id)))?;
                let view = parse_view(&body, &cameras)?;
                if let Some(views) = views_mut(doc) {
                    views[pos] = serde_json::to_value(&view).unwrap_or(body);
                }
                Ok(view)
            })
            .await?;
        info!(view = %id, "view changed");
        Ok(view)
    }

    /// Removes a view (`DELETE /api/views/{id}`).
    pub async fn remove_view(&self, id: &str) -> Result<(), ChangeError> {
        let _serial = self.changes.lock().await;
        self.file
            .edit(|doc| {
                let pos = position(doc, id).ok_or_else(|| ChangeError::UnknownView(short(id)))?;
                if let Some(views) = views_mut(doc) {
                    views.remove(pos);
                }
                Ok(())
            })
            .await?;
        info!(view = %id, "view removed");
        Ok(())
    }
}

fn short(id: &str) -> String {
    id.chars().take(64).collect()
}

/// `doc` without camera `id` in any view; a view left with no camera goes (a view needs one).
/// Returns the ids of the views removed so.
pub(super) fn drop_camera_from_views(doc: &mut Value, id: &str) -> Vec<String> {
    let Some(views) = doc.get_mut("views").and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    let mut emptied = Vec::new();
    views.retain_mut(|v| {
        let Some(cams) = v.get_mut("cameras").and_then(Value::as_array_mut) else {
            return true;
        };
        cams.retain(|c| c.as_str() != Some(id));
        if cams.is_empty() {
            let name = v.get("id").and_then(Value::as_str).unwrap_or_default();
            emptied.push(name.to_string());
            return false;
        }
        true
    });
    if views.is_empty() {
        if let Some(o) = doc.as_object_mut() {
            o.remove("views");
        }
    }
    emptied
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_removed_camera_leaves_every_view_and_empty_views_go() {
        let mut doc = json!({"cameras": [], "views": [
            {"id": "one", "cameras": ["a"]},
            {"id": "two", "cameras": ["b", "a", "c"]}
        ]});
        assert_eq!(drop_camera_from_views(&mut doc, "a"), ["one"]);
        assert_eq!(doc["views"], json!([{"id": "two", "cameras": ["b", "c"]}]));
        drop_camera_from_views(&mut doc, "b");
        drop_camera_from_views(&mut doc, "c");
        assert!(doc.get("views").is_none(), "{doc}");
    }

    #[test]
    fn view_bodies_are_checked_with_the_field_named() {
        let cams: Vec<CameraConfig> =
            vec![serde_json::from_value(json!({"id": "a", "url": "lavfi:testsrc2"})).unwrap()];
        let field = |b: Value| match parse_view(&b, &cams) {
            Err(ChangeError::InvalidView { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(json!({"id": "v", "cameras": ["nope"]})), "cameras[0]");
        assert_eq!(
            field(json!({"id": "v", "cameras": ["a"], "columns": 0})),
            "columns"
        );
        assert_eq!(field(json!({"id": "v", "cameras": "a"})), "cameras");
        assert_eq!(
            field(json!({"id": "v", "cameras": ["a"], "size": 1})),
            "size"
        );
        assert!(parse_view(&json!({"id": "v", "cameras": ["a"]}), &cams).is_ok());
    }
}
