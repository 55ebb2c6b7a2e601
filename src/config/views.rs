//! `views` in the config file: named sets of cameras in a chosen order with their layout, so
//! every screen in the house shows the same ones. Types, defaults and validation; the file is
//! written by `control::store`, the page draws them.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{is_safe_id, CameraConfig, ConfigIssue};

/// Most views a config may hold: the API adds them, so their number is bounded.
pub const MAX_VIEWS: usize = 64;
/// Largest fixed column count.
pub const MAX_COLUMNS: u32 = 12;
/// The id of the view of every camera the page shows by default; no configured view takes it.
pub const ALL_VIEW_ID: &str = "all";

/// How a view arranges its tiles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Layout {
    /// Equal tiles: `columns` of them per row, or as many as fit best.
    #[default]
    #[serde(rename = "grid")]
    Grid,
    /// One big tile and five small ones around it.
    #[serde(rename = "1+5")]
    OnePlusFive,
    /// One big tile and seven small ones around it.
    #[serde(rename = "1+7")]
    OnePlusSeven,
}

impl Layout {
    fn is_grid(&self) -> bool {
        *self == Layout::Grid
    }
}

/// One entry of `views`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ViewConfig {
    /// Unique, URL-safe id (as camera ids), used in the page's address: `/?view=ID`. Required.
    pub id: String,
    /// Display name in the menu. Default: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Camera ids, in the order shown; each a configured camera, once. Required, at least one.
    pub cameras: Vec<String>,
    /// Fixed number of columns, 1 to 12. Default: automatic (the grid that fits the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<u32>,
    /// `grid` (default), `1+5` or `1+7`.
    #[serde(default, skip_serializing_if = "Layout::is_grid")]
    pub layout: Layout,
}

/// Checks one view against the configured cameras (not uniqueness among views). Returns
/// (field, message) pairs, fields relative to the view (`cameras[2]`, `columns`).
pub fn validate_view(view: &ViewConfig, cameras: &[CameraConfig]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if view.id == ALL_VIEW_ID {
        out.push((
            "id".into(),
            format!("{ALL_VIEW_ID:?} is reserved (the view of every camera)"),
        ));
    } else if !is_safe_id(&view.id) {
        out.push((
            "id".into(),
            format!(
                "{:?} is not a safe id: use 1 to 64 of A-Z a-z 0-9 _ -, starting with a letter or digit",
                view.id.chars().take(80).collect::<String>()
            ),
        ));
    }
    if let Some(problem) = view.name.as_deref().and_then(crate::config::name_problem) {
        out.push(("name".into(), problem));
    }
    if view.cameras.is_empty() {
        out.push(("cameras".into(), "needs at least one camera".into()));
    }
    if view.cameras.len() > cameras.len().max(1) {
        out.push((
            "cameras".into(),
            "lists more cameras than are configured".into(),
        ));
    }
    let known: HashSet<&str> = cameras.iter().map(|c| c.id.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, id) in view.cameras.iter().enumerate() {
        let shown: String = id.chars().take(80).collect();
        if !known.contains(id.as_str()) {
            out.push((
                format!("cameras[{i}]"),
                format!("no camera with id {shown:?}"),
            ));
        } else if !seen.insert(id.as_str()) {
            out.push((
                format!("cameras[{i}]"),
                format!("{shown:?} is listed twice"),
            ));
        }
    }
    if let Some(c) = view.columns {
        if !(1..=MAX_COLUMNS).contains(&c) {
            out.push((
                "columns".into(),
                format!("must be between 1 and {MAX_COLUMNS} (leave it out for automatic)"),
            ));
        }
    }
    out
}

/// Checks every view: each alone, ids unique, at most [`MAX_VIEWS`].
pub fn validate_views(views: &[ViewConfig], cameras: &[CameraConfig]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if views.len() > MAX_VIEWS {
        issues.push(ConfigIssue {
            position: None,
            camera: None,
            field: "views".into(),
            message: format!("{} views exceed the limit of {MAX_VIEWS}", views.len()),
        });
    }
    let mut seen = HashSet::new();
    for (i, v) in views.iter().enumerate() {
        for (field, message) in validate_view(v, cameras) {
            issues.push(ConfigIssue {
                position: None,
                camera: None,
                field: format!("views[{i}].{field}"),
                message,
            });
        }
        if !seen.insert(v.id.as_str()) {
            issues.push(ConfigIssue {
                position: None,
                camera: None,
                field: format!("views[{i}].id"),
                message: "duplicate id: view ids must be unique".into(),
            });
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams(ids: &[&str]) -> Vec<CameraConfig> {
        ids.iter()
            .map(|id| {
                serde_json::from_value(serde_json::json!({"id": id, "url": "lavfi:testsrc2"}))
                    .unwrap()
            })
            .collect()
    }

    fn view(v: serde_json::Value) -> ViewConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_good_view_passes_and_keeps_its_layout() {
        let v = view(
            serde_json::json!({"id": "front", "cameras": ["b", "a"], "columns": 2, "layout": "1+5"}),
        );
        assert_eq!(v.layout, Layout::OnePlusFive);
        assert!(validate_view(&v, &cams(&["a", "b"])).is_empty());
        // Defaults are left out when written back.
        let v = view(serde_json::json!({"id": "x", "cameras": ["a"]}));
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            serde_json::json!({"id": "x", "cameras": ["a"]})
        );
    }

    #[test]
    fn every_problem_names_its_field() {
        let v = view(
            serde_json::json!({"id": "all", "cameras": ["a", "zz", "a"], "columns": 13, "name": " "}),
        );
        let fields: Vec<String> = validate_view(&v, &cams(&["a", "b", "c"]))
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(
            fields,
            ["id", "name", "cameras[1]", "cameras[2]", "columns"]
        );
        let v = view(serde_json::json!({"id": "a b", "cameras": []}));
        let fields: Vec<String> = validate_view(&v, &cams(&["a"]))
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["id", "cameras"]);
        assert!(serde_json::from_value::<ViewConfig>(
            serde_json::json!({"id": "x", "cameras": ["a"], "layout": "2+2"})
        )
        .is_err());
    }

    #[test]
    fn view_ids_are_unique_and_bounded() {
        let v = view(serde_json::json!({"id": "x", "cameras": ["a"]}));
        let issues = validate_views(&[v.clone(), v.clone()], &cams(&["a"]));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].field, "views[1].id");
        let many = vec![v; MAX_VIEWS + 1];
        assert!(validate_views(&many, &cams(&["a"]))
            .iter()
            .any(|i| i.field == "views"));
    }
}
